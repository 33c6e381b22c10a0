from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster

from core.bootstrap import init_data_dir
from core.data_dir import STORE_URL_ENV
from core.sealing import MASTER_KEY_ENV
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


# Folders and files of tests/ whose tests run on SQLite and on PostgreSQL.
BOTH_STORES = (
    "engine",
    "as2",
    "conversion",
    "rules",
    "test_service.py",
    "test_service_ui_doors.py",
    "test_activity_states.py",
    "test_concurrency.py",
    "test_demo_data.py",
    "test_cli_rules.py",
)


def _on_both_stores(path: Path) -> bool:
    return path.relative_to(PROJECT_ROOT / "tests").parts[0] in BOTH_STORES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every engine and AS2 test runs on both stores: SQLite in the data directory, and
    PostgreSQL (a fresh database on the suite's server), unless it is about the SQLite file
    itself (or about several nodes, PostgreSQL only)."""
    if "data_dir" not in metafunc.fixturenames or not _on_both_stores(metafunc.definition.path):
        return
    if metafunc.definition.get_closest_marker("postgres_only"):
        metafunc.parametrize("backend", ["postgres"], indirect=True)
    elif not metafunc.definition.get_closest_marker("sqlite_only"):
        metafunc.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store the test's data directory uses ("" : SQLite), through DOCBRIDGE_STORE_URL so
    that a test's own docbridge.toml and its child processes keep it."""
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else ""
    if url:
        monkeypatch.setenv(STORE_URL_ENV, url)
        # The cluster's keys are sealed in the store with the nodes' master key.
        monkeypatch.setenv(MASTER_KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    return url


@pytest.fixture
async def data_dir(tmp_path: Path, store_url: str) -> Path:
    """A data directory with the demo account loaded, on the test's store."""
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
