"""Cost with a backlog, 1,000 vs 50,000 waiting, side by side in interleaved rounds (issue 11:
within 1.25x), two ways:

- claim: claim 100 due jobs and complete them (the queue alone);
- engine: the real engine (in this process) delivers 2,000 envelopes to inbox/ under default
  rule 1 while 1,000 or 50,000 more wait behind them; per-envelope time from its start until
  the 2,000th file is in inbox/. Each round runs on a fresh copy of the prepared data directory.

One job in ten is not due yet (a retry waiting), as in a real queue. Each measurement runs in a
transaction that is rolled back, so every round sees the same backlog. Everything goes through
the storage door (core/storage), as the engine's claims do. The last line is one JSON object;
its key ``ratio`` is the per-job claim cost at 50,000 over the cost at 1,000, ``engine_ratio``
the same for the engine's per-envelope cost.

For the record: the query before the jobs_claim index (the planner sorting every ready job by
id) measured 9.16 on this machine with this method (0.028 -> 0.26 ms per job).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from bench.intake import drain_seconds, filled
from core.bootstrap import init_data_dir
from core.config import load_config
from core.models import IntegrationForm, JobKind
from core.service import Service
from core.storage import integrations, jobs
from core.storage.db import connect, write_transaction

SIZES = (1_000, 50_000)
BATCH = 100
REPEATS = 20  # claims per size per round
DRAIN = 2_000  # envelopes the engine delivers per measurement


class _Undo(Exception):
    """Raised to roll a measured transaction back."""


async def data_dir(directory: Path) -> tuple[Path, str]:
    """A demo data directory and the uuid of a mailbox whose integration is on."""
    await init_data_dir(directory, with_demo=True, actor="bench")
    service = await Service.open(directory, actor="bench")
    mailbox = (await service.resolve_mailbox("Purchasing")).uuid
    await service.save_integration(mailbox, IntegrationForm())
    await service.set_enabled(mailbox, True)
    await service.close()
    return directory, mailbox


def store(directory: Path, mailbox: str, size: int) -> sqlite3.Connection:
    conn = connect(load_config(directory).database_path)
    with write_transaction(conn):
        for number in range(size):
            jobs.enqueue(conn, JobKind.FILE, f"backlog-{number}", mailbox)
    with write_transaction(conn):
        for number in range(0, size, 10):  # a retry waiting, not due
            jobs.postpone(conn, JobKind.FILE, f"backlog-{number}", 1e12)
    assert integrations.get_integration(conn, mailbox).enabled
    return conn


def per_job_ms(conn: sqlite3.Connection) -> float:
    """Median over REPEATS of claim(BATCH) + complete each, per job, in milliseconds."""
    costs = []
    for _ in range(REPEATS):
        with contextlib.suppress(_Undo), write_transaction(conn):
            began = time.perf_counter()
            claimed = jobs.claim(conn, JobKind.FILE, "bench", 60.0, BATCH)
            for job in claimed:
                jobs.complete(conn, job)
            costs.append((time.perf_counter() - began) * 1000 / max(len(claimed), 1))
            raise _Undo
    return statistics.median(costs)


async def envelope_store(directory: Path, behind: int) -> Path:
    """DRAIN + ``behind`` envelopes waiting for Purchasing (integration on); its inbox/."""
    return await filled(directory, DRAIN + behind)


async def engine_ms_per_envelope(home: Path, inbox: Path) -> float:
    """The engine's time per envelope for the first DRAIN envelopes of the queue."""
    return await drain_seconds(home, inbox, DRAIN) * 1000 / DRAIN


def engine_round(prepared: Path, inbox: Path, copy: Path) -> float:
    """One measurement on a fresh copy of a prepared data directory (the same queue each
    round), removed afterwards."""
    shutil.copytree(prepared, copy)
    # The copy's dirty pages on disk first: the engine's inbox writes flush the file system,
    # and a bigger store's fresh copy would otherwise be flushed on its account.
    os.sync()
    try:
        return asyncio.run(engine_ms_per_envelope(copy, copy / inbox.relative_to(prepared)))
    finally:
        shutil.rmtree(copy)


def spread(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 4),
        "median": round(statistics.median(values), 4),
        "max": round(max(values), 4),
    }


def main() -> None:
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    with tempfile.TemporaryDirectory() as tmp:
        stores = {}
        for size in SIZES:
            directory, mailbox = asyncio.run(data_dir(Path(tmp) / f"backlog-{size}"))
            stores[size] = store(directory, mailbox, size)
        prepared: dict[int, tuple[Path, Path]] = {}
        for size in SIZES:
            home = Path(tmp) / f"engine-{size}"
            prepared[size] = (home, asyncio.run(envelope_store(home, size)))
        claims: dict[int, list[float]] = {size: [] for size in SIZES}
        engine: dict[int, list[float]] = {size: [] for size in SIZES}
        for _ in range(rounds):  # interleaved: each round measures each size both ways
            for size in SIZES:
                claims[size].append(per_job_ms(stores[size]))
                home, inbox = prepared[size]
                engine[size].append(engine_round(home, inbox, Path(tmp) / "round"))
        for conn in stores.values():
            conn.close()
    claim_ratio = report("claim+complete ms/job", claims)
    engine_ratio = report(f"engine ms/envelope (first {DRAIN:,} delivered)", engine)
    result = {
        "bench": "backlog",
        "rounds": rounds,
        "ms_per_job": {str(size): spread(values) for size, values in claims.items()},
        "engine_ms_per_envelope": {str(size): spread(values) for size, values in engine.items()},
        "ratio": claim_ratio["median"],
        "ratio_range": claim_ratio,
        "engine_ratio": engine_ratio["median"],
        "engine_ratio_range": engine_ratio,
        "aim_held": claim_ratio["median"] <= 1.25 and engine_ratio["median"] <= 1.25,
    }
    print(json.dumps(result))


def report(label: str, figures: dict[int, list[float]]) -> dict[str, float]:
    """Print each size's spread and the per-round ratio big/small; returns the ratio's."""
    small, big = SIZES
    for size, values in figures.items():
        shown = spread(values)
        print(
            f"  {label}, {size:>6,} waiting: min {shown['min']}  median {shown['median']}  "
            f"max {shown['max']}"
        )
    ratios = [b / s for b, s in zip(figures[big], figures[small], strict=True)]
    shown = spread(ratios)
    print(
        f"  {label}, {big:,} / {small:,} waiting: min {shown['min']}  "
        f"median {shown['median']}  max {shown['max']}  (aim <= 1.25)"
    )
    return shown


if __name__ == "__main__":
    main()
