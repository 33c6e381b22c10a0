"""Logins: wrong and unknown refused alike, bans per address, sessions closed on demand."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import asyncssh
import pytest
from argon2 import PasswordHasher

from core.config import SftpConfig
from core.sftp.server import SftpServer
from core.sftp.throttle import LoginThrottle
from tests.sftp.conftest import (
    CHEAP,
    MAILBOX_A,
    MAILBOX_B,
    PASSWORDS,
    THRESHOLD,
    DictBackend,
    Harness,
    needs_openssh,
)


async def _refused(
    harness: Harness, mailbox: str, password: str, source: str | None = None
) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        async with await harness.connect(mailbox, password, source):
            pass


async def test_wrong_password_unknown_login_and_integration_off_are_refused(
    harness: Harness,
) -> None:
    await _refused(harness, MAILBOX_A, "wrong")
    await _refused(harness, "no-such-mailbox", PASSWORDS[MAILBOX_A])
    del harness.backend.hashes[MAILBOX_B]  # integration switched off: the backend says None
    harness.throttle.unban("127.0.0.1")
    await _refused(harness, MAILBOX_B, PASSWORDS[MAILBOX_B])
    async with await harness.connect(MAILBOX_A) as conn:
        assert [s.mailbox_uuid for s in harness.server.sessions()] == [MAILBOX_A]
        assert harness.server.sessions()[0].address == "127.0.0.1"
        conn.close()


async def test_ban_after_failures_is_per_address_and_can_be_lifted(harness: Harness) -> None:
    for _ in range(THRESHOLD):
        await _refused(harness, MAILBOX_A, "guess")
    [ban] = harness.throttle.bans()
    assert (ban.address, ban.failures) == ("127.0.0.1", THRESHOLD)
    assert ban.banned_until > time.time()
    # The right password from the banned address is refused too...
    await _refused(harness, MAILBOX_A, PASSWORDS[MAILBOX_A])
    await _refused(harness, MAILBOX_B, PASSWORDS[MAILBOX_B])
    # ...while the account itself is not locked: another address logs in fine.
    async with (
        await harness.connect(MAILBOX_A, source="127.0.0.2") as conn,
        conn.start_sftp_client() as sftp,
    ):
        assert "outbox" in await sftp.listdir("/")
    assert harness.throttle.unban("127.0.0.1")
    assert harness.throttle.bans() == []
    async with await harness.connect(MAILBOX_A):
        pass


async def test_close_sessions_ends_only_that_mailboxs_sessions(harness: Harness) -> None:
    a1 = await harness.connect(MAILBOX_A)
    a2 = await harness.connect(MAILBOX_A, source="127.0.0.2")
    b = await harness.connect(MAILBOX_B)
    sftp_a = await a1.start_sftp_client()
    upload = await sftp_a.open("/outbox/unfinished.xml", "wb")
    await upload.write(b"u" * 50_000)
    assert len(harness.server.sessions()) == 3
    assert harness.server.close_sessions(MAILBOX_A) == 2
    await asyncio.wait_for(a1.wait_closed(), 5)
    await asyncio.wait_for(a2.wait_closed(), 5)
    async with b.start_sftp_client() as sftp_b:
        assert "inbox" in await sftp_b.listdir("/")
    assert [s.mailbox_uuid for s in harness.server.sessions()] == [MAILBOX_B]
    b.close()
    await harness.wait_for_no_sessions()
    assert harness.visible_files(MAILBOX_A) == []  # the cut upload left nothing
    assert harness.backend.arrived == []


@needs_openssh
async def test_openssh_wrong_password_counts_and_ban_applies(harness: Harness) -> None:
    (harness.tmp / "f.xml").write_bytes(b"<f/>")
    for _ in range(THRESHOLD):
        result = await harness.openssh("ls\n", password="not-it")
        assert result.returncode != 0
    assert [ban.address for ban in harness.throttle.bans()] == ["127.0.0.1"]
    result = await harness.openssh("put f.xml /outbox/f.xml\n")
    assert result.returncode != 0
    assert harness.backend.arrived == []


async def test_unknown_login_costs_as_much_as_a_wrong_password(tmp_path: Path) -> None:
    """Real argon2 parameters here: with cheap ones the difference would be lost in noise."""
    backend = DictBackend({MAILBOX_A: PasswordHasher().hash(PASSWORDS[MAILBOX_A])})
    server = SftpServer(
        SftpConfig(port=0),
        tmp_path / "mailboxes",
        tmp_path / "keys" / "host",
        backend,
        LoginThrottle(threshold=1000),
    )
    await server.start()
    try:

        async def attempt(login: str) -> float:
            start = time.perf_counter()
            ok = await server._check_login("127.0.0.1", login, "wrong password")
            assert not ok
            return time.perf_counter() - start

        wrong, unknown = [], []
        for _ in range(3):
            wrong.append(await attempt(MAILBOX_A))
            unknown.append(await attempt("0a1b2c3d-ffff-4000-8000-000000000000"))
        # Without the dummy check an unknown login answers ~100× faster; the bounds leave room
        # for a noisy machine.
        ratio = statistics.median(unknown) / statistics.median(wrong)
        assert 0.4 < ratio < 2.5, (wrong, unknown)
    finally:
        await server.stop()


async def test_password_reset_during_the_check_refuses_the_old_password(harness: Harness) -> None:
    """The hash changes while argon2 runs (a reset): the login must not slip through."""
    old = harness.backend.hashes[MAILBOX_A]
    calls = 0

    async def resetting_lookup(login: str) -> str | None:
        nonlocal calls
        calls += 1
        return old if calls == 1 else CHEAP.hash("the new password")

    harness.backend.password_hash = resetting_lookup  # type: ignore[method-assign]
    await _refused(harness, MAILBOX_A, PASSWORDS[MAILBOX_A])
    assert harness.server.sessions() == []


async def test_banned_address_is_told_why(harness: Harness) -> None:
    banners: list[str] = []

    class Client(asyncssh.SSHClient):
        def auth_banner_received(self, msg: str, lang: str) -> None:
            banners.append(msg)

    for _ in range(THRESHOLD):
        await _refused(harness, MAILBOX_A, "guess")
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(
            "127.0.0.1",
            harness.port,
            username=MAILBOX_A,
            password=PASSWORDS[MAILBOX_A],
            known_hosts=None,
            client_factory=Client,
        )
    assert banners and "Too many failed logins" in banners[0]


async def test_the_attempt_that_gets_an_address_banned_is_told_why(harness: Harness) -> None:
    banners: list[str] = []

    class Client(asyncssh.SSHClient):
        def auth_banner_received(self, msg: str, lang: str) -> None:
            banners.append(msg)

    for attempt in range(THRESHOLD):
        with pytest.raises(asyncssh.PermissionDenied):
            await asyncssh.connect(
                "127.0.0.1",
                harness.port,
                username=MAILBOX_A,
                password="guess",
                known_hosts=None,
                client_keys=None,
                preferred_auth="password",
                local_addr=("127.0.0.3", 0),
                client_factory=Client,
            )
        assert len(banners) == (1 if attempt == THRESHOLD - 1 else 0)
    assert "Too many failed logins" in banners[0]
