"""Temp files left in staging by killed processes are removed; an upload in progress never is."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from core.sftp import server as sftp_server
from core.sftp.folders import ensure_mailbox_root
from tests.sftp.conftest import MAILBOX_A, Harness, HarnessFactory

HOURS_AGO_2 = time.time() - 2 * 3600


def _plant(root: Path, name: str, *, old: bool) -> None:
    path = root / ".staging" / name
    path.write_bytes(b"left behind")
    if old:
        os.utime(path, (HOURS_AGO_2, HOURS_AGO_2))


def _staged(root: Path) -> set[str]:
    return {p.name for p in (root / ".staging").iterdir()}


async def _eventually_staged(root: Path, expected: set[str], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while (staged := await asyncio.to_thread(_staged, root)) != expected:
        assert time.monotonic() < deadline, staged
        await asyncio.sleep(0.01)


async def test_server_start_removes_what_killed_processes_left(
    make_harness: HarnessFactory, tmp_path: Path
) -> None:
    root = await asyncio.to_thread(ensure_mailbox_root, tmp_path / "mailboxes", MAILBOX_A)
    await asyncio.to_thread(_plant, root, ".upload-killed-server", old=False)
    await asyncio.to_thread(_plant, root, ".write-killed-engine", old=True)
    await asyncio.to_thread(_plant, root, ".write-being-written", old=False)
    await make_harness()
    assert await asyncio.to_thread(_staged, root) == {".write-being-written"}


async def test_periodic_sweep_removes_orphans_but_never_an_open_upload(
    make_harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``docbridge serve`` runs for months: orphans must not wait for the next start. An
    upload whose client has been idle for hours keeps its temp file until it is closed."""
    monkeypatch.setattr(sftp_server, "STAGING_SWEEP_INTERVAL_S", 0.02)
    harness: Harness = await make_harness()
    root = harness.root()
    payload = b"<envelope>" + b"x" * 100_000 + b"</envelope>"
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        remote = await sftp.open("/outbox/slow.xml", "wb")
        await remote.write(payload[:50_000])
        (upload_temp,) = await asyncio.to_thread(_staged, root)
        temp_path = root / ".staging" / upload_temp
        await asyncio.to_thread(os.utime, temp_path, (HOURS_AGO_2, HOURS_AGO_2))
        await asyncio.to_thread(_plant, root, ".write-killed-engine", old=True)
        # The sweep that removes the orphan saw the idle upload's temp file as old too.
        await _eventually_staged(root, {upload_temp})
        await remote.write(payload[50_000:], 50_000)
        await remote.close()
    assert (root / "outbox" / "slow.xml").read_bytes() == payload
    assert harness.backend.arrived == [(MAILBOX_A, "outbox", "slow.xml")]
    await _eventually_staged(root, set())
