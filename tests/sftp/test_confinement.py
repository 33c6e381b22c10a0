"""Nothing a client sends reaches outside its own mailbox root."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import asyncssh
import pytest

from core.sftp.folders import ensure_mailbox_root, write_atomically
from core.sftp.quota import scan_usage
from tests.sftp.conftest import MAILBOX_A, MAILBOX_B, Harness, needs_openssh

ESCAPES = [
    "../x",
    "/../../etc/passwd",
    "../../../../etc/passwd",
    "/inbox/../../etc/passwd",
    "//etc/passwd",
    "/.staging",
    "/inbox/sub/file",
]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A secret next to the mailboxes, and a folder full of them."""
    secret_dir = tmp_path / "outside"
    secret_dir.mkdir()
    (secret_dir / "secret.txt").write_text("top secret")
    return secret_dir


@pytest.mark.parametrize("path", ESCAPES)
async def test_dot_dot_and_absolute_paths_stay_inside(harness: Harness, path: str) -> None:
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPError):
            await sftp.get(path, str(harness.tmp / "stolen"))
        with pytest.raises(asyncssh.SFTPError):
            await sftp.put(__file__, path)
        assert await sftp.realpath("/../..") == "/"
        assert sorted(await sftp.listdir("/..")) == sorted(await sftp.listdir("/"))
    assert not (harness.tmp / "stolen").exists()


async def test_planted_file_symlink_is_neither_listed_nor_followed(
    harness: Harness, outside: Path
) -> None:
    root = await asyncio.to_thread(ensure_mailbox_root, harness.mailboxes_dir, MAILBOX_A)
    os.symlink(outside / "secret.txt", root / "inbox" / "secret.txt")
    os.symlink("/etc/passwd", root / "error" / "passwd")
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        assert await sftp.listdir("/inbox") == [".", ".."]
        assert await sftp.listdir("/error") == [".", ".."]
        for path in ("/inbox/secret.txt", "/error/passwd"):
            with pytest.raises(asyncssh.SFTPError):
                await sftp.get(path, str(harness.tmp / "stolen"))
            with pytest.raises(asyncssh.SFTPError):
                await sftp.stat(path)
            with pytest.raises(asyncssh.SFTPError):
                await sftp.readlink(path)
            with pytest.raises(asyncssh.SFTPError):
                await sftp.rename(path, "/outbox/stolen.txt")
    assert not (harness.tmp / "stolen").exists()
    assert harness.backend.arrived == []


async def test_planted_directory_symlink_is_refused(harness: Harness, outside: Path) -> None:
    root = await asyncio.to_thread(ensure_mailbox_root, harness.mailboxes_dir, MAILBOX_A)
    (root / "cinbox").rmdir()
    os.symlink(outside, root / "cinbox")
    (root / "outbox").rmdir()
    os.symlink(outside, root / "outbox")
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        assert "cinbox" not in await sftp.listdir("/")
        with pytest.raises(asyncssh.SFTPError):
            await sftp.listdir("/cinbox")
        with pytest.raises(asyncssh.SFTPError):
            await sftp.get("/cinbox/secret.txt", str(harness.tmp / "stolen"))
        with pytest.raises(asyncssh.SFTPError):
            await sftp.put(__file__, "/outbox/planted.py")
    assert not (harness.tmp / "stolen").exists()
    assert os.listdir(outside) == ["secret.txt"]


async def test_planted_hard_link_is_neither_listed_nor_served(
    harness: Harness, outside: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file with another name on disk may be a file from outside the mailbox (planted by
    someone with shell access): it does not show, cannot be read, moved or deleted, and does
    not count against the quota. docbridge itself never leaves a hard link in a folder."""
    root = await asyncio.to_thread(ensure_mailbox_root, harness.mailboxes_dir, MAILBOX_A)
    await asyncio.to_thread(write_atomically, root, "inbox", "mine.xml", b"<mine/>")
    os.link(outside / "secret.txt", root / "inbox" / "alias.txt")
    os.link(outside / "secret.txt", root / "error" / "alias.txt")
    caplog.set_level(logging.WARNING, "docbridge.sftp")
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        assert await sftp.listdir("/inbox") == [".", "..", "mine.xml"]
        assert await sftp.listdir("/error") == [".", ".."]
        for path in ("/inbox/alias.txt", "/error/alias.txt"):
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="hard link"):
                await sftp.get(path, str(harness.tmp / "stolen"))
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="hard link"):
                await sftp.stat(path)
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="hard link"):
                async with sftp.open(path) as remote:
                    await remote.read()
            with pytest.raises(asyncssh.SFTPError):
                await sftp.rename(path, "/outbox/stolen.txt")
            with pytest.raises(asyncssh.SFTPError):
                await sftp.remove(path)
    assert not (harness.tmp / "stolen").exists()
    assert (outside / "secret.txt").read_text() == "top secret"
    assert harness.backend.arrived == []
    assert await asyncio.to_thread(scan_usage, root) == len(b"<mine/>")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("inbox/alias.txt" in w and MAILBOX_A in w for w in warnings), warnings
    assert any("error/alias.txt" in w for w in warnings), warnings


async def test_link_creation_is_refused(harness: Harness) -> None:
    root = await asyncio.to_thread(ensure_mailbox_root, harness.mailboxes_dir, MAILBOX_A)
    await asyncio.to_thread(write_atomically, root, "inbox", "in.xml", b"<x/>")
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        for target in ("/etc/passwd", "../../../etc/passwd", "/inbox/in.xml"):
            with pytest.raises(asyncssh.SFTPError):
                await sftp.symlink(target, "/outbox/link.xml")
        with pytest.raises(asyncssh.SFTPError):
            await sftp.link("/inbox/in.xml", "/outbox/hard.xml")  # hardlink@openssh.com
    assert harness.visible_files() == ["inbox/in.xml"]


async def test_one_mailbox_never_sees_another(harness: Harness) -> None:
    async with (
        await harness.connect(MAILBOX_A) as conn,
        conn.start_sftp_client() as sftp,
        sftp.open("/outbox/a-only.xml", "wb") as remote,
    ):
        await remote.write(b"<a/>")
    await asyncio.to_thread(
        write_atomically, harness.root(MAILBOX_A), "inbox", "for-a.xml", b"<a/>"
    )
    async with await harness.connect(MAILBOX_B) as conn, conn.start_sftp_client() as sftp:
        assert await sftp.listdir("/outbox") == [".", ".."]
        assert await sftp.listdir("/inbox") == [".", ".."]
        for path in (
            f"/../{MAILBOX_A}/inbox/for-a.xml",
            f"../{MAILBOX_A}/inbox/for-a.xml",
            f"/{MAILBOX_A}/inbox/for-a.xml",
        ):
            with pytest.raises(asyncssh.SFTPError):
                await sftp.get(path, str(harness.tmp / "stolen"))
    assert not (harness.tmp / "stolen").exists()
    assert harness.visible_files(MAILBOX_B) == []


@needs_openssh
async def test_openssh_cannot_escape_or_link(harness: Harness, outside: Path) -> None:
    root = await asyncio.to_thread(ensure_mailbox_root, harness.mailboxes_dir, MAILBOX_A)
    os.symlink(outside / "secret.txt", root / "inbox" / "secret.txt")
    (root / "cinbox").rmdir()
    os.symlink(outside, root / "cinbox")
    await asyncio.to_thread(write_atomically, root, "error", "e.xml", b"<e/>")
    attempts = [
        "get ../x stolen",
        "get /../../etc/passwd stolen",
        "get ../outside/secret.txt stolen",
        "get /inbox/secret.txt stolen",
        "get /cinbox/secret.txt stolen",
        "ls /cinbox",
        "get /.staging stolen",
        "ln -s /etc/passwd /outbox/link",
        "ln /error/e.xml /outbox/hard",
        "symlink ../../etc /outbox/etc",
        "mkdir /outbox/sub",
    ]
    for command in attempts:
        result = await harness.openssh(f"{command}\n")
        assert result.returncode != 0, (command, result.stdout)
    listing = await harness.openssh("ls -a /\ncd ..\npwd\nls -a /inbox\n")
    assert listing.returncode == 0, listing.stderr
    assert ".staging" not in listing.stdout and "secret" not in listing.stdout
    assert "Remote working directory: /" in listing.stdout
    assert not (harness.tmp / "stolen").exists()
    assert harness.visible_files() == ["error/e.xml", "inbox/secret.txt"]  # only the planted link
