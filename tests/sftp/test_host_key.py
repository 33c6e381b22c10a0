"""The host key: private from the first byte, complete or absent, and the same across restarts.

Loose permissions and damaged keys stop the server with the command that fixes them, as OpenSSH's
sshd does: they are never tightened or regenerated behind the admin's back.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from core.config import SftpConfig
from core.sftp.host_key import HostKeyUnusable, load_or_create_host_key
from core.sftp.server import SftpServer
from core.sftp.throttle import LoginThrottle
from tests.conftest import run_cli
from tests.sftp.conftest import MAILBOX_A, PASSWORDS, DictBackend, Harness, HarnessFactory


async def _client_seen_fingerprint(port: int) -> str:
    async with asyncssh.connect(
        "127.0.0.1",
        port,
        username=MAILBOX_A,
        password=PASSWORDS[MAILBOX_A],
        known_hosts=None,
    ) as conn:
        key = conn.get_server_host_key()
        assert key is not None
        return key.get_fingerprint("sha256")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _same_key(path: Path, key: asyncssh.SSHKey) -> bool:
    """The file holds exactly ``key`` (the OpenSSH format itself is salted: compare PKCS#8)."""
    stored = asyncssh.import_private_key(path.read_bytes())
    return bool(stored.export_private_key("pkcs8-pem") == key.export_private_key("pkcs8-pem"))


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "sftp_host_ed25519"


@pytest.fixture
def strict_umask() -> Iterator[None]:
    """A umask that would leave a folder unusable (0500) if its mode were not set exactly."""
    old = os.umask(0o277)
    try:
        yield
    finally:
        os.umask(old)


async def test_host_key_is_0600_in_a_0700_dir_and_stable(
    harness: Harness, make_harness: HarnessFactory
) -> None:
    key_path = harness.server.host_key_path
    assert await asyncio.to_thread(_mode, key_path) == 0o600
    assert await asyncio.to_thread(_mode, key_path.parent) == 0o700
    first = harness.server.host_key_fingerprint
    assert first.startswith("SHA256:")
    assert await _client_seen_fingerprint(harness.port) == first
    await harness.server.stop()
    restarted = await make_harness()
    assert restarted.server.host_key_fingerprint == first
    assert await _client_seen_fingerprint(restarted.port) == first
    assert await asyncio.to_thread(os.listdir, key_path.parent) == [key_path.name]  # no temp


async def test_rsa_key_offered_for_old_clients(tmp_path: Path) -> None:
    server = SftpServer(
        SftpConfig(port=0),
        tmp_path / "mailboxes",
        tmp_path / "keys" / "ed25519",
        DictBackend(),
        LoginThrottle(),
        rsa_host_key_path=tmp_path / "keys" / "rsa",
    )
    port = await server.start()
    try:
        assert set(server.host_key_fingerprints) == {"ssh-ed25519", "ssh-rsa"}
        assert await asyncio.to_thread(_mode, tmp_path / "keys" / "rsa") == 0o600
        key = await asyncssh.get_server_host_key(
            "127.0.0.1", port, server_host_key_algs=["rsa-sha2-256"]
        )
        assert key is not None
        assert key.get_fingerprint("sha256") == server.host_key_fingerprints["ssh-rsa"]
    finally:
        await server.stop()


# -- writing a new key -------------------------------------------------------------------------


def test_new_key_is_complete_0600_in_a_0700_dir_even_with_a_strict_umask(
    key_path: Path, strict_umask: None
) -> None:
    key = load_or_create_host_key(key_path)
    assert _mode(key_path.parent) == 0o700
    assert _mode(key_path) == 0o600
    assert _same_key(key_path, key)
    assert os.listdir(key_path.parent) == [key_path.name]


def test_short_writes_still_give_a_complete_key(
    key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write() that takes a few bytes at a time (signals, pipes, network file systems)."""
    real_write = os.write
    calls = 0

    def short_write(fd: int, data: bytes | memoryview) -> int:
        nonlocal calls
        calls += 1
        return real_write(fd, bytes(data[:7]))

    monkeypatch.setattr(os, "write", short_write)
    key = load_or_create_host_key(key_path)
    monkeypatch.undo()
    assert calls > 10
    assert _same_key(key_path, key)


def test_a_failed_write_leaves_no_key_and_no_temp_file(
    key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_path.parent.mkdir(mode=0o700)

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(HostKeyUnusable) as raised:
        load_or_create_host_key(key_path)
    monkeypatch.undo()
    assert str(key_path) in str(raised.value)
    assert "No space left on device" in str(raised.value)
    assert os.listdir(key_path.parent) == []  # neither the key nor a temp file
    assert load_or_create_host_key(key_path) is not None  # space again: a key is made


def test_two_processes_starting_at_once_end_with_one_key(key_path: Path) -> None:
    """Both generate a key; the one linked first wins and the other reads it, never replaces."""
    barrier = threading.Barrier(4)
    seen: list[str] = []

    def start() -> None:
        barrier.wait()
        seen.append(load_or_create_host_key(key_path).get_fingerprint("sha256"))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(seen) == 4
    assert len(set(seen)) == 1
    assert os.listdir(key_path.parent) == [key_path.name]


# -- loose permissions: refused, with the command that fixes them --------------------------------


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o705, 0o777])
def test_a_key_dir_others_can_enter_is_refused_and_left_alone(key_path: Path, mode: int) -> None:
    key_path.parent.mkdir()
    os.chmod(key_path.parent, mode)
    with pytest.raises(HostKeyUnusable) as raised:
        load_or_create_host_key(key_path)
    message = str(raised.value)
    assert str(key_path.parent) in message
    assert f"chmod 700 {key_path.parent}" in message
    assert f"{mode:04o}" in message
    assert _mode(key_path.parent) == mode  # not tightened behind the admin's back
    assert os.listdir(key_path.parent) == []  # and no key generated in it
    os.chmod(key_path.parent, 0o700)  # the fix the message gives works
    load_or_create_host_key(key_path)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_others_can_read_is_refused_and_left_alone(key_path: Path, mode: int) -> None:
    first = load_or_create_host_key(key_path).get_fingerprint("sha256")
    os.chmod(key_path, mode)  # e.g. restored from a backup with cp under umask 022
    with pytest.raises(HostKeyUnusable) as raised:
        load_or_create_host_key(key_path)
    assert f"chmod 600 {key_path}" in str(raised.value)
    assert _mode(key_path) == mode
    os.chmod(key_path, 0o600)
    assert load_or_create_host_key(key_path).get_fingerprint("sha256") == first


def test_a_stricter_key_is_accepted(key_path: Path) -> None:
    first = load_or_create_host_key(key_path).get_fingerprint("sha256")
    os.chmod(key_path, 0o400)
    assert load_or_create_host_key(key_path).get_fingerprint("sha256") == first


async def test_the_server_does_not_start_on_a_loose_key_dir(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    await asyncio.to_thread(keys.mkdir)
    await asyncio.to_thread(os.chmod, keys, 0o755)
    server = SftpServer(
        SftpConfig(port=0), tmp_path / "mailboxes", keys / "ed25519", DictBackend(), LoginThrottle()
    )
    with pytest.raises(HostKeyUnusable, match="chmod 700"):
        await server.start()
    assert server.port == 0  # never listened


def test_serve_says_which_directory_and_the_fix_instead_of_a_traceback(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_cli(home, "init").returncode == 0
    config = home / "docbridge.toml"
    config.write_text(config.read_text().replace("port = 2222", "port = 0"))
    keys = home / "keys"
    keys.mkdir(exist_ok=True)
    os.chmod(keys, 0o755)
    result = run_cli(home, "serve")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"chmod 700 {keys}" in result.stderr
    assert not (keys / "sftp_host_ed25519").exists()


# -- what is in the key's place -----------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"not a key\n", "half", "ends early", "base64 damaged"],
    ids=["empty", "garbage", "first-half", "no-footer", "damaged"],
)
def test_a_damaged_key_is_a_clear_error_and_never_replaced(
    key_path: Path, content: bytes | str
) -> None:
    good = load_or_create_host_key(key_path).export_private_key("openssh")
    if content == "half":
        content = good[: len(good) // 2]
    elif content == "ends early":
        content = good[:-60] + b"\n"
    elif content == "base64 damaged":
        lines = good.splitlines(keepends=True)
        lines[2] = b"%" * (len(lines[2]) - 1) + b"\n"
        content = b"".join(lines)
    assert isinstance(content, bytes)
    key_path.write_bytes(content)
    with pytest.raises(HostKeyUnusable) as raised:
        load_or_create_host_key(key_path)
    message = str(raised.value)
    assert str(key_path) in message
    assert "damaged" in message
    assert "backup" in message
    assert key_path.read_bytes() == content  # kept for the admin, not regenerated
    assert os.listdir(key_path.parent) == [key_path.name]


def test_a_huge_file_is_refused_without_reading_it_whole(key_path: Path) -> None:
    key_path.parent.mkdir(mode=0o700)
    with open(key_path, "wb") as file:
        file.truncate(1024 * 1024 * 1024)  # sparse: 1 GB that costs no disk
    os.chmod(key_path, 0o600)
    with pytest.raises(HostKeyUnusable, match="not a host key"):
        load_or_create_host_key(key_path)


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-key", "dangling"])
def test_a_symlink_in_the_keys_place_is_refused(
    key_path: Path, tmp_path: Path, dangling: bool
) -> None:
    target = tmp_path / "elsewhere" / "key"
    if not dangling:
        load_or_create_host_key(target)  # a perfectly good key, 0600, in a 0700 dir
    key_path.parent.mkdir(mode=0o700)
    key_path.symlink_to(target)
    with pytest.raises(HostKeyUnusable, match="regular file"):
        load_or_create_host_key(key_path)
    if dangling:
        assert not target.exists()  # nothing written through the link


def test_a_key_dir_that_is_a_file_is_refused(key_path: Path) -> None:
    key_path.parent.write_text("not a directory")
    with pytest.raises(HostKeyUnusable, match="must be a directory"):
        load_or_create_host_key(key_path)
