"""One customer cannot use up the server: sessions per mailbox and open files are bounded."""

from __future__ import annotations

import contextlib

import asyncssh
import pytest

from tests.sftp.conftest import MAILBOX_B, Harness, HarnessFactory


async def test_a_mailbox_gets_at_most_its_sessions_and_others_still_log_in(
    make_harness: HarnessFactory,
) -> None:
    harness = await make_harness(max_sessions_per_mailbox=3)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(3):
            await stack.enter_async_context(await harness.connect())
        with pytest.raises(asyncssh.PermissionDenied):
            await harness.connect()
        async with await harness.connect(MAILBOX_B) as other:  # another mailbox is not held up
            assert await (await other.start_sftp_client()).listdir("/")
        assert not harness.throttle.is_banned("127.0.0.1")  # a full mailbox is no failed login
    async with await harness.connect() as again:  # sessions closed: room again
        assert await (await again.start_sftp_client()).listdir("/")


async def test_open_files_of_all_sessions_share_one_budget(harness: Harness) -> None:
    """Files held open by any session count against the server's budget (half its descriptor
    limit); when it is used up, an open is refused with a message, and closing frees it."""
    harness.server._files.capacity = 2
    async with await harness.connect() as conn, conn.start_sftp_client() as sftp:
        first = await sftp.open("/outbox/a.xml", "wb")
        second = await sftp.open("/outbox/b.xml", "wb")
        with pytest.raises(asyncssh.SFTPFailure, match="too many files open"):
            await sftp.open("/outbox/c.xml", "wb")
        await first.write(b"<a/>")
        await first.close()
        third = await sftp.open("/outbox/c.xml", "wb")
        await third.close()
        await second.close()
    assert harness.server._files.in_use == 0
    assert sorted(harness.visible_files()) == ["outbox/a.xml", "outbox/b.xml", "outbox/c.xml"]


def test_the_budget_is_half_the_descriptor_limit() -> None:
    import resource

    from core.sftp.server import open_file_budget

    budget = open_file_budget()  # also raises the soft limit to the hard one
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert budget == max(16, soft // 2) or soft == resource.RLIM_INFINITY
