"""Everyday transfers with asyncssh's client and OpenSSH's sftp: put, get, ls, rename, rm."""

from __future__ import annotations

import asyncio
import os
import subprocess

import asyncssh
import pytest

from core.sftp.folders import ensure_mailbox_root, move_to_error, write_atomically
from tests.sftp.conftest import MAILBOX_A, OPENSSH_OPTIONS, PASSWORDS, Harness, needs_openssh


async def test_root_lists_the_five_folders_and_hides_staging(harness: Harness) -> None:
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        assert sorted(await sftp.listdir("/")) == sorted(
            [".", "..", "inbox", "cinbox", "outbox", "coutbox", "error"]
        )
        assert await sftp.realpath(".") == "/"
        assert await sftp.isdir("/outbox")
    assert (harness.root() / ".staging").is_dir()


async def test_asyncssh_upload_lands_complete_and_is_announced(harness: Harness) -> None:
    payload = bytes(range(256)) * 4000
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("/outbox/order.xml", "wb") as remote:
            await remote.write(payload)
        assert "order.xml" in await sftp.listdir("/outbox")
        assert (await sftp.stat("/outbox/order.xml")).size == len(payload)
    assert (harness.root() / "outbox" / "order.xml").read_bytes() == payload
    assert harness.backend.arrived == [(MAILBOX_A, "outbox", "order.xml")]
    assert not list((harness.root() / ".staging").iterdir())


async def test_asyncssh_download_rename_and_delete_in_inbox(harness: Harness) -> None:
    root = await asyncio.to_thread(ensure_mailbox_root, harness.mailboxes_dir, MAILBOX_A)
    await asyncio.to_thread(write_atomically, root, "inbox", "invoice.xml", b"<envelope/>" * 10_000)
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        local = harness.tmp / "got.xml"
        await sftp.get("/inbox/invoice.xml", str(local))
        assert local.read_bytes() == b"<envelope/>" * 10_000
        await sftp.rename("/inbox/invoice.xml", "/inbox/invoice.xml.done")
        assert await sftp.listdir("/inbox") == [".", "..", "invoice.xml.done"]
        await sftp.remove("/inbox/invoice.xml.done")
        assert await sftp.listdir("/inbox") == [".", ".."]
    assert harness.backend.arrived == []


async def test_rename_from_error_back_to_outbox_retries_the_file(harness: Harness) -> None:
    root = await asyncio.to_thread(ensure_mailbox_root, harness.mailboxes_dir, MAILBOX_A)
    await asyncio.to_thread(write_atomically, root, "outbox", "bad.xml", b"<broken")
    assert (
        await asyncio.to_thread(move_to_error, root, "outbox", "bad.xml", "Not well-formed XML.")
        == "bad.xml"
    )
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        assert sorted(await sftp.listdir("/error")) == [".", "..", "bad.xml", "bad.xml.error.txt"]
        async with sftp.open("/error/bad.xml.error.txt") as reason:
            assert await reason.read() == "Not well-formed XML.\n"
        await sftp.rename("/error/bad.xml", "/outbox/bad.xml")
        # The explanation went with the failure.
        assert await sftp.listdir("/error") == [".", ".."]
        assert await sftp.listdir("/outbox") == [".", "..", "bad.xml"]
    assert harness.backend.arrived == [(MAILBOX_A, "outbox", "bad.xml")]
    assert not (root / "error" / "bad.xml.error.txt").exists()


async def test_what_customers_may_not_change(harness: Harness) -> None:
    root = await asyncio.to_thread(ensure_mailbox_root, harness.mailboxes_dir, MAILBOX_A)
    await asyncio.to_thread(write_atomically, root, "inbox", "in.xml", b"x")
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("/outbox/mine.xml", "wb") as remote:
            await remote.write(b"mine")
        refused = [
            sftp.put(__file__, "/inbox/upload.xml"),  # platform → customer folders are read-only
            sftp.get("/outbox/mine.xml", str(harness.tmp / "x")),  # uploads are not served back
            sftp.remove("/outbox/mine.xml"),  # waiting to be picked up
            sftp.rename("/inbox/in.xml", "/outbox/in.xml"),  # no bouncing envelopes back
            sftp.rename("/inbox/in.xml", "/cinbox/in.xml"),
            sftp.mkdir("/outbox/sub"),
            sftp.rmdir("/error"),
            sftp.remove("/inbox"),
        ]
        for attempt in refused:
            with pytest.raises(asyncssh.SFTPError):
                await attempt
        with pytest.raises(asyncssh.SFTPError, match="appended"):
            async with sftp.open("/outbox/mine.xml", "ab") as remote:
                await remote.write(b"more")
    assert harness.visible_files() == ["inbox/in.xml", "outbox/mine.xml"]


@needs_openssh
async def test_openssh_put_ls_get_rename_rm(harness: Harness) -> None:
    root = await asyncio.to_thread(ensure_mailbox_root, harness.mailboxes_dir, MAILBOX_A)
    await asyncio.to_thread(write_atomically, root, "cinbox", "report.csv", b"a;b\n1;2\n")
    (harness.tmp / "upload.csv").write_bytes(b"x" * 300_000)
    result = await harness.openssh(
        "cd coutbox\n"
        "put upload.csv\n"
        "ls -l\n"
        "cd /cinbox\n"
        "get report.csv fetched.csv\n"
        "rename report.csv report.csv.read\n"
        "ls\n"
        "rm report.csv.read\n"
        "ls /cinbox\n"
    )
    assert result.returncode == 0, result.stderr
    assert "upload.csv" in result.stdout
    assert (harness.tmp / "fetched.csv").read_bytes() == b"a;b\n1;2\n"
    assert (root / "coutbox" / "upload.csv").read_bytes() == b"x" * 300_000
    assert harness.visible_files() == ["coutbox/upload.csv"]
    assert harness.backend.arrived == [(MAILBOX_A, "coutbox", "upload.csv")]


@needs_openssh
async def test_openssh_retry_from_error_and_refused_upload_folder(harness: Harness) -> None:
    root = await asyncio.to_thread(ensure_mailbox_root, harness.mailboxes_dir, MAILBOX_A)
    await asyncio.to_thread(write_atomically, root, "coutbox", "rows.csv", b"1;2\n")
    await asyncio.to_thread(
        move_to_error, root, "coutbox", "rows.csv", "Rule 'orders' found no matching template."
    )
    retried = await harness.openssh("rename /error/rows.csv /coutbox/rows.csv\n")
    assert retried.returncode == 0, retried.stderr
    assert harness.backend.arrived == [(MAILBOX_A, "coutbox", "rows.csv")]
    (harness.tmp / "local.xml").write_bytes(b"<x/>")
    refused = await harness.openssh("put local.xml /inbox/local.xml\n")
    assert refused.returncode != 0
    assert harness.visible_files() == ["coutbox/rows.csv"]


async def _scp(harness: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    """Run OpenSSH's scp (SFTP protocol, its default since OpenSSH 9.0) against the server."""
    process = await asyncio.create_subprocess_exec(
        "sshpass",
        "-e",
        "scp",
        *OPENSSH_OPTIONS,
        "-P",
        str(harness.port),
        *args,
        env={**os.environ, "SSHPASS": PASSWORDS[MAILBOX_A]},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=harness.tmp,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return subprocess.CompletedProcess([], process.returncode, out.decode(), err.decode())


@needs_openssh  # scp comes with sftp, in openssh-client
async def test_openssh_scp_upload_and_download_exit_0(harness: Harness) -> None:
    """scp speaks SFTP and reports the channel's exit status: without one it exits 1 after a
    successful upload, and scripts that retry on failure deliver the file twice."""
    (harness.tmp / "order.xml").write_bytes(b"<envelope/>" * 1000)
    remote = f"{MAILBOX_A}@127.0.0.1"
    sent = await _scp(harness, "order.xml", f"{remote}:/outbox/x.xml")
    assert sent.returncode == 0, sent.stderr
    assert (harness.root() / "outbox" / "x.xml").read_bytes() == b"<envelope/>" * 1000
    assert harness.backend.arrived == [(MAILBOX_A, "outbox", "x.xml")]
    await asyncio.to_thread(write_atomically, harness.root(), "inbox", "in.xml", b"<in/>")
    fetched = await _scp(harness, f"{remote}:/inbox/in.xml", "fetched.xml")
    assert fetched.returncode == 0, fetched.stderr
    assert (harness.tmp / "fetched.xml").read_bytes() == b"<in/>"
    refused = await _scp(harness, "order.xml", f"{remote}:/inbox/x.xml")
    assert refused.returncode != 0  # a real failure still says so
