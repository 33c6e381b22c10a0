"""How an AS2 payload becomes a claim (core.engine.file_handler.place_claim) while the engine's
scan runs: never refused by the race, a repeat lands on the same claim, and what a crash left
half written is cleared."""

from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path

from core.engine.file_handler import (
    NEW_CLAIM_PREFIX,
    STALE_NEW_CLAIM_S,
    TAKING,
    claim_path,
    place_claim,
    remove_claim,
    scan,
)

MAILBOX = "981eeb6b-6b4e-435d-87a2-3dde5688a956"


def test_claims_placed_while_the_scan_runs_are_never_refused(tmp_path: Path) -> None:
    """Before: the scan removed a claim folder made a moment before and still empty, and the
    message was refused (found by the AS2 crash test: about 1 in 250)."""
    place_claim(tmp_path, MAILBOX, "outbox", "0" * 16, "x.xml", b"x")
    stop = threading.Event()

    def scanner() -> None:
        while not stop.is_set():
            scan(tmp_path, MAILBOX)

    thread = threading.Thread(target=scanner)
    thread.start()
    errors: list[str] = []
    try:
        for _ in range(3000):
            token = secrets.token_hex(8)
            try:
                claim = place_claim(tmp_path, MAILBOX, "outbox", token, "o.xml", b"<envelope/>")
            except OSError as exc:
                errors.append(repr(exc))
            else:
                remove_claim(claim_path(tmp_path, MAILBOX, "outbox", claim.token, claim.name))
    finally:
        stop.set()
        thread.join()
    assert errors == []


def test_a_repeat_lands_on_the_same_claim_with_the_whole_payload(tmp_path: Path) -> None:
    first = place_claim(tmp_path, MAILBOX, "coutbox", "a" * 16, "order.csv", b"1;2;3\n")
    again = place_claim(tmp_path, MAILBOX, "coutbox", "a" * 16, "order.csv", b"1;2;3\n")
    assert again == first
    path = claim_path(tmp_path, MAILBOX, "coutbox", first.token, first.name)
    assert path.read_bytes() == b"1;2;3\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["order.csv"]
    assert [c.ref for c in scan(tmp_path, MAILBOX)] == [first.ref]


def test_what_a_crash_left_half_written_is_cleared_after_an_hour(tmp_path: Path) -> None:
    place_claim(tmp_path, MAILBOX, "outbox", "b" * 16, "o.xml", b"<envelope/>")
    taking = tmp_path / MAILBOX / TAKING
    fresh = taking / f"{NEW_CLAIM_PREFIX}{'c' * 16}-0001"
    stale = taking / f"{NEW_CLAIM_PREFIX}{'d' * 16}-0002"
    for aside in (fresh, stale):
        aside.mkdir()
        (aside / "o.xml").write_bytes(b"<enve")  # the kill came mid-write
    old = time.time() - STALE_NEW_CLAIM_S - 60
    os.utime(stale, (old, old))
    claims = scan(tmp_path, MAILBOX)
    assert [c.token for c in claims] == ["b" * 16]  # half-written ones are never claims
    assert fresh.exists() and not stale.exists()
