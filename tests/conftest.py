from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster

from core.bootstrap import init_data_dir
from core.service import Service
from tests.blocking import make_guard
from tests.pg_server import PostgresServer, start_server

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
DOCBRIDGE = Path(sys.executable).parent / "docbridge"


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Every test fails if the product blocks a running event loop (tests/blocking.py says what
    is checked and what is still allowed). Plain tests without a loop are not affected."""
    guard = make_guard()
    guard.activate()
    try:
        yield guard
    finally:
        guard.deactivate()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole run, started by the first test that needs it (the
    tests start their own: initdb + pg_ctl in a temporary folder, a free loopback port)."""
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the test server, for this test alone."""
    return postgres_server.new_database()


@pytest.fixture
async def data_dir(tmp_path: Path) -> Path:
    """A data directory with the demo account loaded."""
    directory = tmp_path / "home"
    await init_data_dir(directory, with_demo=True, actor="test@setup")
    return directory


@pytest.fixture
async def service(data_dir: Path) -> AsyncIterator[Service]:
    opened = await Service.open(data_dir, actor="test@pytest")
    yield opened
    await opened.close()


def run_cli(data_dir: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """The real console script, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if k != "DOCBRIDGE_HOME"}
    return subprocess.run(
        [str(DOCBRIDGE), "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )
