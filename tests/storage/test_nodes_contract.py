"""Node leases, on both backends: one live process per node name, and the claims of a node that
died go back to the queue once its lease runs out, while live nodes keep theirs."""

from __future__ import annotations

import os
import socket

from core.models import JobKind, JobState
from core.storage import jobs, lease
from core.storage.connection import Tx
from core.storage.store import Store
from tests.engine.test_default_rules import eventually
from tests.storage.conftest import add_mailbox

HOST = socket.gethostname()
FAR_AWAY = "other-host.example"  # a holder on another host: its pid cannot be checked here


def _seed(tx: Tx) -> None:
    add_mailbox(tx, "mb-1")
    for ref in ("env-a", "env-b"):
        jobs.enqueue(tx, JobKind.ENVELOPE, ref, "mb-1")


async def test_a_live_node_name_is_refused_to_a_second_process(store: Store) -> None:
    holder = await store.write(lease.try_acquire, "a", "a-1", 4242, FAR_AWAY, 60.0)
    assert holder is None
    holder = await store.write(lease.try_acquire, "a", "a-2", os.getpid(), HOST, 60.0)
    assert holder is not None and (holder.owner, holder.host) == ("a-1", FAR_AWAY)
    other = await store.write(lease.try_acquire, "b", "b-1", os.getpid(), HOST, 60.0)
    assert other is None  # another name is another node


async def test_a_dead_nodes_claims_go_back_once_its_lease_runs_out(store: Store) -> None:
    await store.write(_seed)
    await store.write(lease.try_acquire, "a", "a-1", 4242, FAR_AWAY, 0.3)
    await store.write(lease.try_acquire, "b", "b-1", 4343, FAR_AWAY, 60.0)
    (of_a,) = await store.write(jobs.claim, JobKind.ENVELOPE, "a-1", 60.0, 1)
    (of_b,) = await store.write(jobs.claim, JobKind.ENVELOPE, "b-1", 60.0, 1)
    assert await store.write(jobs.release_dead_claims) == 0  # both nodes live

    async def a_released() -> bool:  # node a stops renewing (killed): its lease runs out
        return await store.write(jobs.release_dead_claims) == 1

    await eventually(a_released)
    ready = await store.read(jobs.list_jobs, (JobState.READY,))
    running = await store.read(jobs.list_jobs, (JobState.RUNNING,))
    assert [job.id for job in ready] == [of_a.id]
    assert [job.id for job in running] == [of_b.id]  # node b is alive: its claim stays
    (again,) = await store.write(jobs.claim, JobKind.ENVELOPE, "b-1", 60.0, 1)
    assert again.id == of_a.id and again.attempts == 2


async def test_a_renewed_lease_keeps_the_nodes_claims(store: Store) -> None:
    await store.write(_seed)
    await store.write(lease.try_acquire, "a", "a-1", 4242, FAR_AWAY, 0.3)
    await store.write(jobs.claim, JobKind.ENVELOPE, "a-1", 60.0, 2)
    for _ in range(3):
        assert await store.write(lease.renew, "a", "a-1", 60.0)
    assert await store.write(jobs.release_dead_claims) == 0
    assert not await store.write(lease.renew, "a", "someone-else", 60.0)


async def test_a_singleton_lease_has_one_holder_until_it_runs_out_or_is_released(
    store: Store,
) -> None:
    """Pruning and certificate mails run on one node of the store, whatever their number."""
    assert await store.write(lease.hold_singleton, "maintenance", "a", 0.3)
    assert not await store.write(lease.hold_singleton, "maintenance", "b", 60.0)
    assert await store.write(lease.hold_singleton, "maintenance", "a", 0.3)  # a renews

    async def b_took_over() -> bool:  # a stops renewing (killed): b takes it once it runs out
        return bool(await store.write(lease.hold_singleton, "maintenance", "b", 60.0))

    await eventually(b_took_over)
    assert not await store.write(lease.hold_singleton, "maintenance", "a", 60.0)
    await store.write(lease.try_acquire, "b", "b-1", 4343, FAR_AWAY, 60.0)
    await store.write(lease.release, "b", "b-1")  # b stops cleanly: a may take it at once
    assert await store.write(lease.hold_singleton, "maintenance", "a", 60.0)


async def test_a_late_heartbeat_keeps_the_nodes_own_claims(store: Store) -> None:
    """A node whose heartbeat comes after its lease ran out (its loop stalled) renews first:
    its own claims are not handed back as a dead node's."""
    from core.engine import node_lease

    await store.write(_seed)
    await store.write(lease.try_acquire, "a", "a-1", 4242, FAR_AWAY, 0.0)  # already run out
    await store.write(jobs.claim, JobKind.ENVELOPE, "a-1", 60.0, 2)
    renewed, released, _ = await store.write(node_lease.renew, "a", "a-1", 60.0, {})
    assert (renewed, released) == (True, 0)
    assert len(await store.read(jobs.list_jobs, (JobState.RUNNING,))) == 2
