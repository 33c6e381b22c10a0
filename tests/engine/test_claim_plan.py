"""The claim never sorts the whole backlog: it walks the jobs_claim index in id order and
stops at its limit (bench/backlog.py measures it: flat from 1,000 to 50,000 waiting)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.models import JobKind
from core.storage import jobs
from core.storage.schema import migrate


def test_the_claim_walks_its_index_in_order_without_sorting(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "store.sqlite3", isolation_level=None)
    migrate(conn)
    plan = [
        str(row[-1])
        for row in conn.execute(
            f"EXPLAIN QUERY PLAN {jobs.CLAIMABLE}", (JobKind.ENVELOPE, 0.0, 100)
        ).fetchall()
    ]
    assert any("USING INDEX jobs_claim" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


def test_claims_come_oldest_first_and_skip_jobs_not_yet_due(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "store.sqlite3", isolation_level=None)
    conn.row_factory = sqlite3.Row
    migrate(conn)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute(
        "INSERT INTO integrations (mailbox_uuid, enabled, saved, protocol, default_rule) "
        "VALUES ('m', 1, 1, 'sftp', 'copy')"
    )
    for number in range(10):
        jobs.enqueue(conn, JobKind.ENVELOPE, f"e{number}", "m")
    conn.execute("UPDATE jobs SET next_attempt_at = 1e12 WHERE ref IN ('e0', 'e3')")
    claimed = jobs.claim(conn, JobKind.ENVELOPE, "owner", 60, 4)
    assert [job.ref for job in claimed] == ["e1", "e2", "e4", "e5"]
