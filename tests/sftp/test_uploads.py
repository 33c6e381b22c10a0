"""Uploads appear complete or not at all: interrupted, too big or over quota, they leave nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time

import asyncssh
import pytest

from core.sftp.folders import ensure_mailbox_root, write_atomically
from core.sftp.session import MAX_OPEN_FILES
from tests.sftp.conftest import MAILBOX_A, Harness, HarnessFactory, needs_openssh

CHUNK = 10_000


async def _write_50_kb(remote: asyncssh.SFTPClientFile) -> None:
    for offset in range(0, 50_000, CHUNK):
        await remote.write(b"z" * CHUNK, offset)


def _staged(harness: Harness) -> list[str]:
    return sorted(p.name for p in (harness.root() / ".staging").iterdir())


async def test_connection_dropped_mid_upload_leaves_nothing(harness: Harness) -> None:
    conn = await harness.connect()
    sftp = await conn.start_sftp_client()
    remote = await sftp.open("/outbox/cut.xml", "wb")
    await _write_50_kb(remote)
    assert len(_staged(harness)) == 1  # the upload really is in flight, out of sight
    conn.abort()  # TCP connection gone without a goodbye
    await harness.wait_for_no_sessions()
    assert harness.visible_files() == []
    assert harness.backend.arrived == []


async def test_session_closed_without_closing_the_file_leaves_nothing(harness: Harness) -> None:
    async with await harness.connect() as conn:
        sftp = await conn.start_sftp_client()
        remote = await sftp.open("/coutbox/cut.csv", "wb")
        await _write_50_kb(remote)
        sftp.exit()  # the SFTP channel closes; the handle was never closed (no FXP_CLOSE)
        await sftp.wait_closed()
        for _ in range(100):
            if not _staged(harness):
                break
            await asyncio.sleep(0.01)
        async with conn.start_sftp_client() as again:
            assert await again.listdir("/coutbox") == [".", ".."]
    assert harness.visible_files() == []
    assert harness.backend.arrived == []


@needs_openssh
async def test_openssh_client_killed_mid_upload_leaves_nothing(harness: Harness) -> None:
    await asyncio.to_thread(ensure_mailbox_root, harness.mailboxes_dir, MAILBOX_A)
    (harness.tmp / "big.bin").write_bytes(os.urandom(4_000_000))
    batch = harness.tmp / "batch-kill"
    batch.write_text("put big.bin /outbox/big.bin\n")
    # -l: bandwidth limit in Kbit/s, so the upload is still running when the kill comes.
    argv = harness.openssh_argv(batch, MAILBOX_A, ("-l", "4000"))
    process = await asyncio.create_subprocess_exec(
        *argv,
        env={**os.environ, "SSHPASS": "password-of-a"},
        cwd=harness.tmp,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        staging = harness.root() / ".staging"
        deadline = time.monotonic() + 20
        while not any(entry.stat().st_size >= 50_000 for entry in os.scandir(staging)):
            assert time.monotonic() < deadline and process.returncode is None
            await asyncio.sleep(0.005)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # sftp and its ssh: no FXP_CLOSE ever comes
        await process.wait()
    await harness.wait_for_no_sessions()
    assert harness.visible_files() == []
    assert harness.backend.arrived == []


async def test_listing_during_an_upload_never_shows_the_partial_file(harness: Harness) -> None:
    async with (
        await harness.connect() as writer,
        writer.start_sftp_client() as upload_sftp,
        await harness.connect() as reader,
        reader.start_sftp_client() as list_sftp,
    ):
        async with upload_sftp.open("/outbox/slow.xml", "wb") as remote:
            for offset in range(0, 200_000, CHUNK):
                await remote.write(b"y" * CHUNK, offset)
                assert await list_sftp.listdir("/outbox") == [".", ".."]
                assert not await list_sftp.exists("/outbox/slow.xml")
        assert await list_sftp.listdir("/outbox") == [".", "..", "slow.xml"]
        assert (await list_sftp.stat("/outbox/slow.xml")).size == 200_000


async def test_size_limit_refuses_while_bytes_arrive(make_harness: HarnessFactory) -> None:
    harness = await make_harness(max_file_size=100_000)
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPFailure, match="File too large"):
            async with sftp.open("/outbox/huge.xml", "wb") as remote:
                for offset in range(0, 150_000, CHUNK):
                    await remote.write(b"h" * CHUNK, offset)
        assert await sftp.listdir("/outbox") == [".", ".."]
        async with sftp.open("/outbox/fits.xml", "wb") as remote:  # exactly the limit is fine
            await remote.write(b"f" * 100_000)
    assert harness.visible_files() == ["outbox/fits.xml"]
    assert harness.backend.arrived == [(MAILBOX_A, "outbox", "fits.xml")]


async def test_quota_counts_every_folder_and_frees_up_on_delete(
    make_harness: HarnessFactory,
) -> None:
    harness = await make_harness(mailbox_quota=200_000)
    root = await asyncio.to_thread(ensure_mailbox_root, harness.mailboxes_dir, MAILBOX_A)
    await asyncio.to_thread(write_atomically, root, "inbox", "waiting.xml", b"w" * 150_000)
    payload = harness.tmp / "payload.xml"
    payload.write_bytes(b"p" * 100_000)
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPError, match="quota"):
            await sftp.put(str(payload), "/outbox/payload.xml")
        assert await sftp.listdir("/outbox") == [".", ".."]
        assert _staged(harness) == []
        await sftp.remove("/inbox/waiting.xml")  # picked up: the space is free again
        await sftp.put(str(payload), "/outbox/payload.xml")
    assert harness.visible_files() == ["outbox/payload.xml"]
    assert harness.backend.arrived == [(MAILBOX_A, "outbox", "payload.xml")]


@needs_openssh
async def test_openssh_sees_size_limit_failures(make_harness: HarnessFactory) -> None:
    harness = await make_harness(max_file_size=100_000)
    (harness.tmp / "huge.bin").write_bytes(b"h" * 1_000_000)
    result = await harness.openssh("put huge.bin /outbox/huge.bin\n")
    assert result.returncode != 0
    assert harness.visible_files() == []
    assert harness.backend.arrived == []


async def test_large_upload_in_big_blocks_arrives_intact(harness: Harness) -> None:
    """40 MB in 1 MiB blocks: writes go through a thread and are written back early."""
    source = harness.tmp / "large.bin"
    source.write_bytes(os.urandom(1024 * 1024) * 40)
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        await sftp.put(str(source), "/outbox/large.bin", block_size=1024 * 1024)
    stored = harness.root() / "outbox" / "large.bin"
    assert stored.stat().st_size == source.stat().st_size
    assert stored.read_bytes() == source.read_bytes()
    assert _staged(harness) == []
    assert harness.backend.arrived == [(MAILBOX_A, "outbox", "large.bin")]


async def test_open_files_per_session_are_bounded(harness: Harness) -> None:
    root = await asyncio.to_thread(ensure_mailbox_root, harness.mailboxes_dir, MAILBOX_A)
    await asyncio.to_thread(write_atomically, root, "inbox", "a.xml", b"<a/>")
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        handles = [await sftp.open("/inbox/a.xml") for _ in range(MAX_OPEN_FILES)]
        with pytest.raises(asyncssh.SFTPFailure, match="open at once"):
            await sftp.open("/outbox/b.xml", "wb")
        await handles.pop().close()
        async with sftp.open("/outbox/b.xml", "wb") as remote:
            await remote.write(b"<b/>")
        for handle in handles:
            await handle.close()
    assert harness.backend.arrived == [(MAILBOX_A, "outbox", "b.xml")]


@pytest.mark.parametrize("name", [".hidden.xml", "..x.xml", ".write-123"])
async def test_a_dot_file_upload_is_refused_with_a_clear_message(
    harness: Harness, name: str
) -> None:
    """docbridge never picks up dot files: accepting one acknowledged an upload that was never
    processed, never moved to error/ and could not be deleted."""
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="without the leading dot"):
            async with sftp.open(f"/outbox/{name}", "wb") as remote:
                await remote.write(b"<envelope/>")
        async with sftp.open("/outbox/visible.xml", "wb") as remote:  # others still upload
            await remote.write(b"<envelope/>")
    assert harness.visible_files() == ["outbox/visible.xml"]
    assert _staged(harness) == []


async def test_a_rename_into_a_dot_name_is_refused(harness: Harness) -> None:
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("/outbox/order.xml", "wb") as remote:
            await remote.write(b"<envelope/>")
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="without the leading dot"):
            await sftp.rename("/outbox/order.xml", "/outbox/.order.xml")
    assert harness.visible_files() == ["outbox/order.xml"]


async def test_an_upload_never_replaces_a_waiting_file_of_its_name(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first upload was acknowledged: a second one of the same name, while nobody takes the
    first in, is refused with a message saying why, and the first stays as it was."""
    monkeypatch.setattr("core.sftp.session.NAME_BUSY_WAIT_S", 0.3)
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("/outbox/order.xml", "wb") as remote:
            await remote.write(b"<first/>")
        with pytest.raises(asyncssh.SFTPFailure, match="still waiting to be picked up"):
            async with sftp.open("/outbox/order.xml", "wb") as remote:
                await remote.write(b"<second/>")
        assert sorted(await sftp.listdir("/outbox")) == [".", "..", "order.xml"]
    waiting = harness.root() / "outbox" / "order.xml"
    assert await asyncio.to_thread(waiting.read_bytes) == b"<first/>"
    assert _staged(harness) == []
    # Woken twice: once for the first upload, then again while the second waited for the name.
    assert harness.backend.arrived.count((MAILBOX_A, "outbox", "order.xml")) >= 2


async def test_an_upload_waits_for_the_engine_to_take_the_waiting_file_in(
    harness: Harness,
) -> None:
    """When whoever is woken takes the waiting file in, the second upload lands after it."""
    root = harness.root()

    taken: list[str] = []

    async def take_in(mailbox_uuid: str, folder: str, name: str) -> None:
        if not taken:  # the first file only: the second stays for the test to read
            taken.append(name)
            await asyncio.to_thread((root / folder / name).unlink)

    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("/outbox/order.xml", "wb") as remote:
            await remote.write(b"<first/>")
        harness.backend.file_arrived = take_in  # type: ignore[method-assign]
        async with sftp.open("/outbox/order.xml", "wb") as remote:
            await remote.write(b"<second/>")
    assert taken == ["order.xml"]
    assert await asyncio.to_thread((root / "outbox" / "order.xml").read_bytes) == b"<second/>"


async def test_a_retry_from_error_never_replaces_a_waiting_file(harness: Harness) -> None:
    root = harness.root()
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        await asyncio.to_thread(write_atomically, root, "error", "order.xml", b"<old/>")
        async with sftp.open("/outbox/order.xml", "wb") as remote:
            await remote.write(b"<waiting/>")
        with pytest.raises(asyncssh.SFTPError, match="still waiting to be picked up"):
            await sftp.posix_rename("/error/order.xml", "/outbox/order.xml")
    assert await asyncio.to_thread((root / "outbox" / "order.xml").read_bytes) == b"<waiting/>"
    assert await asyncio.to_thread((root / "error" / "order.xml").read_bytes) == b"<old/>"


async def test_an_upload_cut_short_by_truncate_is_stored_that_long(harness: Harness) -> None:
    """A client that truncates its upload (rewrites, trims trailing junk) gets exactly those
    bytes stored; before, the request was acknowledged and ignored."""
    good = b"<order>1</order>"
    async with (
        await harness.connect() as conn,
        conn.start_sftp_client() as sftp,
        sftp.open("/outbox/shrink.xml", "wb") as remote,
    ):
        await remote.write(good + b"GARBAGE" * 10)
        await remote.truncate(len(good))
    stored = harness.root() / "outbox" / "shrink.xml"
    assert await asyncio.to_thread(stored.read_bytes) == good


async def test_size_changes_that_cannot_be_honoured_are_refused(harness: Harness) -> None:
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("/outbox/grow.xml", "wb") as remote:
            await remote.write(b"<a/>")
            with pytest.raises(asyncssh.SFTPError, match="shortened but not grown"):
                await remote.truncate(10**12)
        with pytest.raises(asyncssh.SFTPError, match="cannot be changed"):
            await sftp.truncate("/outbox/grow.xml", 1)
    stored = harness.root() / "outbox" / "grow.xml"
    assert await asyncio.to_thread(stored.read_bytes) == b"<a/>"
