"""The job queue's contract, on both backends: what the engine relies on when one or several
engines share a store (docs/scale-out.md, "Job guarantees")."""

from __future__ import annotations

import asyncio
import sys

import pytest

from core.models import AttemptOutcome, Job, JobKind, JobState
from core.storage import jobs, logs
from core.storage.connection import Tx
from core.storage.store import Store
from tests.conftest import PROJECT_ROOT
from tests.engine.test_default_rules import eventually
from tests.storage.conftest import StoreTarget, add_mailbox


def _seed(tx: Tx, count: int, mailbox_uuid: str = "mb-1") -> None:
    add_mailbox(tx, mailbox_uuid)
    for number in range(count):
        jobs.enqueue(tx, JobKind.ENVELOPE, f"env-{number:05d}", mailbox_uuid)


async def test_enqueuing_twice_gives_one_job(store: Store) -> None:
    await store.write(add_mailbox, "mb-1")
    assert await store.write(jobs.enqueue, JobKind.ENVELOPE, "env-1", "mb-1") is True
    assert await store.write(jobs.enqueue, JobKind.ENVELOPE, "env-1", "mb-1") is False
    assert len(await store.read(jobs.list_jobs, (JobState.READY,))) == 1


async def test_a_claim_takes_due_jobs_of_enabled_mailboxes_oldest_first(store: Store) -> None:
    await store.write(_seed, 5)
    await store.write(add_mailbox, "mb-off", enabled=False)
    await store.write(jobs.enqueue, JobKind.ENVELOPE, "env-off", "mb-off")
    first = await store.write(jobs.claim, JobKind.ENVELOPE, "node-a", 60.0, 3)
    assert [job.ref for job in first] == ["env-00000", "env-00001", "env-00002"]
    assert all(job.attempts == 1 and job.state is JobState.RUNNING for job in first)
    rest = await store.write(jobs.claim, JobKind.ENVELOPE, "node-b", 60.0, 10)
    assert [job.ref for job in rest] == ["env-00003", "env-00004"]  # never the switched-off one
    assert await store.write(jobs.claim, JobKind.ENVELOPE, "node-b", 60.0, 10) == []


def _complete_and_log(tx: Tx, job: Job) -> None:
    logs.append_activity(tx, job.mailbox_uuid, "Default rule", AttemptOutcome.DELIVERED)
    jobs.complete(tx, job)


async def test_ending_a_claim_that_was_taken_over_fails_and_undoes_its_bookkeeping(
    store: Store,
) -> None:
    await store.write(_seed, 1)
    (stalled,) = await store.write(jobs.claim, JobKind.ENVELOPE, "node-a", 0.0, 1)
    await _until_released(store)
    (taken,) = await store.write(jobs.claim, JobKind.ENVELOPE, "node-b", 60.0, 1)
    assert taken.id == stalled.id and taken.attempts == 2

    with pytest.raises(jobs.ClaimLost):
        await store.write(_complete_and_log, stalled)
    with pytest.raises(jobs.ClaimLost):
        await store.write(jobs.fail, stalled, "late")
    assert await store.read(logs.list_activity) == []  # rolled back with the lost completion

    await store.write(_complete_and_log, taken)
    (row,) = await store.read(jobs.list_jobs, (JobState.DONE,))
    assert row.id == taken.id
    assert len(await store.read(logs.list_activity)) == 1


async def _until_released(store: Store) -> None:
    """A zero lease runs out as soon as the store's clock moves on."""

    async def released() -> bool:
        return bool(await store.write(jobs.release_expired))

    await eventually(released)


async def test_two_processes_claiming_one_queue_take_disjoint_sets_and_finish_it(
    store: Store, store_target: StoreTarget
) -> None:
    await store.write(_seed, 1000)
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.storage.claimer",
            *store_target.argv(),
            owner,
            cwd=PROJECT_ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        for owner in ("node-a", "node-b")
    ]
    outputs = await asyncio.gather(*(child.communicate() for child in children))
    assert [child.returncode for child in children] == [0, 0]
    taken = [{int(line) for line in out.split()} for out, _ in outputs]
    assert taken[0].isdisjoint(taken[1])
    assert len(taken[0]) + len(taken[1]) == 1000
    done = await store.read(jobs.list_jobs, (JobState.DONE,), 2000)
    assert len(done) == 1000
    assert {job.attempts for job in done} == {1}  # nobody took a job twice


async def test_ending_a_batch_with_one_claim_taken_over_names_it_and_ends_none(
    store: Store,
) -> None:
    """The engine ends a batch's claims in one statement: still fenced, job by job."""
    await store.write(_seed, 3)
    batch = await store.write(jobs.claim, JobKind.ENVELOPE, "node-a", 60.0, 3)
    stalled = batch[1]
    await store.write(jobs.fail, stalled, "handed back")  # as a lease expiry would, then
    await store.write(jobs.due_now, stalled.kind, stalled.ref)
    (taken,) = await store.write(jobs.claim, JobKind.ENVELOPE, "node-b", 60.0, 1)  # re-claimed
    assert taken.id == stalled.id
    with pytest.raises(jobs.ClaimLost) as lost:
        await store.write(jobs.complete_many, batch)
    assert lost.value.job.id == stalled.id
    assert await store.read(jobs.list_jobs, (JobState.DONE,)) == []  # none of the batch ended
    await store.write(jobs.complete_many, [batch[0], batch[2], taken])
    assert len(await store.read(jobs.list_jobs, (JobState.DONE,))) == 3
