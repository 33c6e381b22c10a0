"""Claim cost with a backlog: claim 100 due jobs and complete them, with 1,000 and with 50,000
jobs waiting, side by side in interleaved rounds; the claim as it is (walking the jobs_claim
index) against the claim before it (the planner's choice: sort every ready job by id).

One job in ten is not due yet (a retry waiting), as in a real queue. Each measurement runs in
a transaction that is rolled back, so every round sees the same backlog. The last line is one
JSON object; its key ``ratio`` is the per-job cost at 50,000 over the cost at 1,000 (aim <=
1.25, issue 11).
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from core.models import JobKind
from core.storage import jobs
from core.storage.schema import migrate

SIZES = (1_000, 50_000)
BATCH = 100
REPEATS = 20  # claims per size per round
# What jobs.claim ran before the jobs_claim index (kept here as the baseline).
BEFORE = (
    "UPDATE jobs SET state = 'running', lease_owner = ?, lease_until = ?, "
    "attempts = attempts + 1, updated_at = ? WHERE id IN ("
    " SELECT j.id FROM jobs j JOIN integrations i ON i.mailbox_uuid = j.mailbox_uuid"
    " WHERE j.kind = ? AND j.state = 'ready' AND j.next_attempt_at <= ? AND i.enabled = 1"
    " ORDER BY j.id LIMIT ?) "
    f"RETURNING {jobs._JOB_ROW}, payload"  # the same rows back as jobs.claim reads
)


def store(directory: Path, size: int) -> sqlite3.Connection:
    conn = sqlite3.connect(directory / f"backlog-{size}.sqlite3", isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    migrate(conn)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute(
        "INSERT INTO integrations (mailbox_uuid, enabled, saved, protocol, default_rule) "
        "VALUES ('m', 1, 1, 'sftp', 'copy')"
    )
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO jobs (kind, ref, mailbox_uuid, payload, next_attempt_at) "
        "VALUES ('envelope', ?, 'm', '{}', ?)",
        ((f"envelope-{n}", 1e12 if n % 10 == 0 else 0.0) for n in range(size)),
    )
    conn.execute("COMMIT")
    return conn


def per_job_ms(conn: sqlite3.Connection, before: bool) -> float:
    """Median over REPEATS of claim(BATCH) + complete each, per job, in milliseconds."""
    costs = []
    for _ in range(REPEATS):
        conn.execute("BEGIN IMMEDIATE")
        began = time.perf_counter()
        if before:
            now = time.time()
            ids = [
                r[0] for r in conn.execute(BEFORE, ("b", now + 60, "now", "envelope", now, BATCH))
            ]
        else:
            ids = [job.id for job in jobs.claim(conn, JobKind.ENVELOPE, "b", 60.0, BATCH)]
        for job_id in ids:
            jobs.complete(conn, job_id)
        costs.append((time.perf_counter() - began) * 1000 / max(len(ids), 1))
        conn.execute("ROLLBACK")
    return statistics.median(costs)


def spread(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 4),
        "median": round(statistics.median(values), 4),
        "max": round(max(values), 4),
    }


def main() -> None:
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    with tempfile.TemporaryDirectory() as tmp:
        stores = {size: store(Path(tmp), size) for size in SIZES}
        figures: dict[str, list[float]] = {}
        for _ in range(rounds):  # interleaved: each round measures every variant once
            for size in SIZES:
                for variant, before in (("now", False), ("before", True)):
                    figures.setdefault(f"{variant}_{size}", []).append(
                        per_job_ms(stores[size], before)
                    )
        for conn in stores.values():
            conn.close()
    ratios = {
        variant: [
            big / small
            for big, small in zip(
                figures[f"{variant}_{SIZES[1]}"], figures[f"{variant}_{SIZES[0]}"], strict=True
            )
        ]
        for variant in ("now", "before")
    }
    for key, values in figures.items():
        shown = spread(values)
        print(
            f"  claim+complete ms/job {key:>12}: min {shown['min']}  "
            f"median {shown['median']}  max {shown['max']}"
        )
    for variant, values in ratios.items():
        shown = spread(values)
        print(
            f"  {SIZES[1]:,} / {SIZES[0]:,} waiting ({variant}): min {shown['min']}  "
            f"median {shown['median']}  max {shown['max']}  (aim <= 1.25)"
        )
    result = {
        "bench": "backlog",
        "rounds": rounds,
        "ms_per_job": {key: spread(values) for key, values in figures.items()},
        "ratio": spread(ratios["now"])["median"],
        "ratio_before": spread(ratios["before"])["median"],
        "aim_held": spread(ratios["now"])["median"] <= 1.25,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
