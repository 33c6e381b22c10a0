"""A child process that claims jobs until none is left and completes each (the contract test of
two processes sharing one queue). Prints the ids it completed, one per line.

Usage: python -m tests.storage.claimer DATABASE_PATH URL OWNER
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from core.models import Job, JobKind
from core.storage import jobs
from core.storage.connection import Tx, concurrent_write
from core.storage.store import open_store


@concurrent_write
def _complete_all(tx: Tx, claimed: list[Job]) -> None:
    for job in claimed:
        jobs.complete(tx, job)


async def main(database_path: str, url: str, owner: str) -> None:
    store = open_store(Path(database_path), url)
    done: list[int] = []
    try:
        while True:
            claimed = await store.write(jobs.claim, JobKind.ENVELOPE, owner, 60.0, 10)
            if not claimed:
                break
            await store.write(_complete_all, claimed)
            done += [job.id for job in claimed]
    finally:
        await store.close()
    sys.stdout.write("".join(f"{job_id}\n" for job_id in done))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
