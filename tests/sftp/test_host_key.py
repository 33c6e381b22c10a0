"""The host key: private from the first byte, and the same across restarts."""

from __future__ import annotations

import stat
from pathlib import Path

import asyncssh

from core.config import SftpConfig
from core.sftp.server import SftpServer
from core.sftp.throttle import LoginThrottle
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


async def test_host_key_is_0600_in_a_0700_dir_and_stable(
    harness: Harness, make_harness: HarnessFactory
) -> None:
    key_path = harness.server.host_key_path
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_path.parent.stat().st_mode) == 0o700
    first = harness.server.host_key_fingerprint
    assert first.startswith("SHA256:")
    assert await _client_seen_fingerprint(harness.port) == first
    await harness.server.stop()
    restarted = await make_harness()
    assert restarted.server.host_key_fingerprint == first
    assert await _client_seen_fingerprint(restarted.port) == first
    assert [p.name for p in key_path.parent.iterdir()] == [key_path.name]  # no temp left


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
        assert stat.S_IMODE((tmp_path / "keys" / "rsa").stat().st_mode) == 0o600
        key = await asyncssh.get_server_host_key(
            "127.0.0.1", port, server_host_key_algs=["rsa-sha2-256"]
        )
        assert key is not None
        assert key.get_fingerprint("sha256") == server.host_key_fingerprints["ssh-rsa"]
    finally:
        await server.stop()
