"""The mailbox layout on disk, atomic writes, error files and the login throttle's rules."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from core.clock import iso_from_timestamp
from core.errors import InvalidInput
from core.models import Ban
from core.sftp.folders import (
    FOLDERS,
    ensure_mailbox_root,
    move_to_error,
    staging_path,
    sweep_mailboxes,
    sweep_staging,
    upload_prefix,
    validate_name,
    write_atomically,
)
from core.sftp.throttle import LoginThrottle, address_key
from tests.sftp.conftest import MAILBOX_A, MAILBOX_B, Harness


def test_mailbox_root_has_private_folders_and_staging(tmp_path: Path) -> None:
    root = ensure_mailbox_root(tmp_path / "mailboxes", MAILBOX_A)
    assert root == tmp_path / "mailboxes" / MAILBOX_A
    for name in (*FOLDERS, ".staging"):
        assert stat.S_IMODE((root / name).stat().st_mode) == 0o700
    assert ensure_mailbox_root(tmp_path / "mailboxes", MAILBOX_A) == root  # idempotent


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a/b", "../x", "a\\b", "a\nb", "a\x00b", "é" * 200]
)
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        validate_name(name)


def test_write_atomically_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    root = ensure_mailbox_root(tmp_path, MAILBOX_A)
    write_atomically(root, "inbox", "a.xml", b"one")
    path = write_atomically(root, "inbox", "a.xml", b"two")
    assert path.read_bytes() == b"two"
    assert list((root / ".staging").iterdir()) == []
    with pytest.raises(InvalidInput):
        write_atomically(root, "nowhere", "a.xml", b"x")


def test_move_to_error_keeps_older_failures(tmp_path: Path) -> None:
    root = ensure_mailbox_root(tmp_path, MAILBOX_A)
    write_atomically(root, "outbox", "o.xml", b"first")
    assert move_to_error(root, "outbox", "o.xml", "First reason.") == "o.xml"
    write_atomically(root, "outbox", "o.xml", b"second")
    assert move_to_error(root, "outbox", "o.xml", "Second reason.") == "o (2).xml"
    error = root / "error"
    assert sorted(p.name for p in error.iterdir()) == [
        "o (2).xml",
        "o (2).xml.error.txt",
        "o.xml",
        "o.xml.error.txt",
    ]
    assert (error / "o (2).xml.error.txt").read_text() == "Second reason.\n"
    assert list((root / "outbox").iterdir()) == []


HOURS_AGO_2 = time.time() - 2 * 3600


def _plant(root: Path, name: str, *, old: bool) -> Path:
    path = root / ".staging" / name
    path.write_bytes(b"x")
    if old:
        os.utime(path, (HOURS_AGO_2, HOURS_AGO_2))
    return path


def _staged(root: Path) -> list[str]:
    return sorted(p.name for p in (root / ".staging").iterdir())


def test_sweep_removes_what_interrupted_processes_left_and_nothing_in_use(tmp_path: Path) -> None:
    """A killed engine leaves .write-* files, a killed server .upload-* files. Older than an
    hour they are orphans, unless an upload that is still open (an idle client) owns one."""
    root = ensure_mailbox_root(tmp_path, MAILBOX_A)
    for name in (".upload-dead", ".write-dead", ".upload-idle-client"):
        _plant(root, name, old=True)
    for name in (".upload-running", ".write-running"):
        _plant(root, name, old=False)
    other = _plant(root, "kept-by-an-admin", old=True)  # not a docbridge temp name
    (root / ".staging" / ".write-dir").mkdir()
    os.utime(root / ".staging" / ".write-dir", (HOURS_AGO_2, HOURS_AGO_2))
    assert sweep_staging(root, in_use={".upload-idle-client"}) == 2
    assert _staged(root) == [
        ".upload-idle-client",
        ".upload-running",
        ".write-dir",
        ".write-running",
        "kept-by-an-admin",
    ]
    assert other.exists()
    # At server start no upload can be open: every upload temp is an orphan, whatever its age.
    assert sweep_staging(root, all_uploads=True) == 2
    assert _staged(root) == [".write-dir", ".write-running", "kept-by-an-admin"]


def test_nodes_sharing_a_mailbox_tree_sweep_only_their_own_uploads(tmp_path: Path) -> None:
    """Several nodes, one mailbox tree: node a's start must not delete the uploads node b's
    customers are sending right now (b's sessions are invisible to a), nor node "a-b"'s."""
    root = ensure_mailbox_root(tmp_path, MAILBOX_A)
    own = upload_prefix("a")
    a_orphan = staging_path(root, own).name
    b_live = staging_path(root, upload_prefix("b")).name
    ab_live = staging_path(root, upload_prefix("a-b")).name
    b_forgotten = staging_path(root, upload_prefix("b")).name
    _plant(root, a_orphan, old=False)
    _plant(root, b_live, old=True)  # idle for two hours: its session may still be open on b
    _plant(root, ab_live, old=False)
    _plant(root, b_forgotten, old=False)
    os.utime(root / ".staging" / b_forgotten, (time.time() - 8 * 86400,) * 2)  # b is long gone
    assert sweep_staging(root, all_uploads=True, own_uploads=own) == 2
    assert _staged(root) == sorted([b_live, ab_live])


def test_sweep_never_follows_a_planted_staging_link(tmp_path: Path) -> None:
    root = ensure_mailbox_root(tmp_path / "mailboxes", MAILBOX_A)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".write-precious").write_bytes(b"x")
    os.utime(elsewhere / ".write-precious", (HOURS_AGO_2, HOURS_AGO_2))
    (root / ".staging").rmdir()
    os.symlink(elsewhere, root / ".staging")
    assert sweep_staging(root, all_uploads=True) == 0
    assert sweep_mailboxes(tmp_path / "mailboxes", all_uploads=True) == {}
    assert (elsewhere / ".write-precious").exists()


def test_sweep_mailboxes_reports_per_mailbox(tmp_path: Path) -> None:
    mailboxes = tmp_path / "mailboxes"
    root_a = ensure_mailbox_root(mailboxes, MAILBOX_A)
    root_b = ensure_mailbox_root(mailboxes, MAILBOX_B)
    _plant(root_a, ".write-dead", old=True)
    _plant(root_b, ".upload-fresh", old=False)
    os.symlink(root_a, mailboxes / "alias")  # a link among the mailboxes is not followed
    assert sweep_mailboxes(mailboxes) == {MAILBOX_A: 1}
    assert sweep_mailboxes(mailboxes, all_uploads=True) == {MAILBOX_B: 1}
    assert sweep_mailboxes(tmp_path / "none-yet") == {}


async def test_symlinked_mailbox_root_refuses_login(harness: Harness, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    harness.mailboxes_dir.mkdir(exist_ok=True)
    os.symlink(elsewhere, harness.root())
    with pytest.raises(Exception, match="[Pp]ermission denied"):
        async with await harness.connect():
            pass
    assert list(elsewhere.iterdir()) == []
    assert harness.throttle.bans() == []


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_counts_within_the_window_and_bans_past_the_threshold() -> None:
    clock = FakeClock()
    seen: list[Ban] = []
    throttle = LoginThrottle(3, window_s=60, ban_s=300, clock=clock, on_ban=seen.append)
    throttle.record_failure("10.0.0.1")
    clock.now += 61  # the first failure has left the window
    throttle.record_failure("10.0.0.1")
    throttle.record_failure("10.0.0.1")
    assert not throttle.is_banned("10.0.0.1")
    ban = throttle.record_failure("10.0.0.1")
    assert ban == Ban("10.0.0.1", 3, iso_from_timestamp(clock.now), clock.now + 300)
    assert seen == [ban]
    assert throttle.is_banned("10.0.0.1") and not throttle.is_banned("10.0.0.2")
    clock.now += 301
    assert not throttle.is_banned("10.0.0.1")
    assert throttle.bans() == []


def test_throttle_restore_unban_and_ipv6_prefixes() -> None:
    clock = FakeClock()
    lifted: list[str] = []
    throttle = LoginThrottle(2, clock=clock, on_unban=lifted.append)
    throttle.restore(
        [Ban("10.0.0.9", 7, "", clock.now + 10), Ban("10.0.0.8", 7, "", clock.now - 1)]
    )
    assert [b.address for b in throttle.bans()] == ["10.0.0.9"]
    assert throttle.unban("10.0.0.9") and lifted == ["10.0.0.9"]
    assert not throttle.unban("10.0.0.9")
    throttle.record_failure("2001:db8::1")
    throttle.record_failure("2001:db8::ffff")  # same /64: same attacker
    assert throttle.is_banned("2001:db8::1234")
    assert not throttle.is_banned("2001:db8:0:1::1")
    assert address_key("::ffff:10.1.2.3") == "10.1.2.3"


def test_move_to_error_shortens_names_that_leave_no_room_for_the_reason(tmp_path: Path) -> None:
    root = ensure_mailbox_root(tmp_path, MAILBOX_A)
    long_name = "n" * 250 + ".xml"
    write_atomically(root, "outbox", long_name, b"x")
    final = move_to_error(root, "outbox", long_name, "Too long.")
    assert final.endswith(".xml") and len(f"{final}.error.txt") <= 255
    assert (root / "error" / final).read_bytes() == b"x"
    assert (root / "error" / f"{final}.error.txt").read_text() == "Too long.\n"
