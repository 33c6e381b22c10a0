"""The durable work queue: claim with a lease, finish in the same transaction as the effect's
record, retry with growing delays, park after too many failures.

Hot path: plain statements, batched; the caller owns the transaction. Both backends: on
PostgreSQL several nodes claim from one queue (``FOR UPDATE SKIP LOCKED``), leases and due times
follow the database clock, and a claim ends only while it is still ours (fenced by attempt).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.clock import utc_now
from core.models import Job, JobKind, JobState
from core.storage.connection import Tx, concurrent_write, is_postgres, notify_job, store_now

MAX_ATTEMPTS = 8
MAX_DELAY_S = 300.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a kind of job is retried before it is parked."""

    max_attempts: int = MAX_ATTEMPTS
    max_delay_s: float = MAX_DELAY_S


class ClaimLost(Exception):
    """The job is no longer ours: its lease ran out and it was handed back, or another node
    claims it now. The unit that tried to end it rolls back; whoever holds it records it."""

    def __init__(self, job: Job) -> None:
        super().__init__(
            f"job {job.id} ({job.kind} {job.ref}, attempt {job.attempts}) is no longer ours"
        )
        self.job = job


def enqueue(
    conn: Tx,
    kind: JobKind,
    ref: str,
    mailbox_uuid: str,
    payload: dict[str, Any] | None = None,
) -> bool:
    """Add a job unless one with the same (kind, ref) exists: enqueuing is idempotent."""
    cursor = conn.execute(
        "INSERT INTO jobs (kind, ref, mailbox_uuid, payload, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(kind, ref) DO NOTHING",
        (kind, ref, mailbox_uuid, json.dumps(payload or {}), utc_now(), utc_now()),
    )
    added = cursor.rowcount > 0
    if added:
        notify_job(conn, kind)
    return added


def job_row(conn: Tx, kind: JobKind, ref: str) -> Job | None:
    """The job with this (kind, ref), or None (its payload is left out)."""
    row = conn.execute(
        f"SELECT {_JOB_ROW} FROM jobs WHERE kind = ? AND ref = ?", (kind, ref)
    ).fetchone()
    return _job(row) if row else None


# The due jobs of a kind, oldest first. INDEXED BY: left to itself the planner takes the
# (state, kind, next_attempt_at) index and sorts every ready job by id, a cost that grows with
# the backlog; this index is walked in id order and the walk stops at the limit.
CLAIMABLE = (
    "SELECT j.id FROM jobs j INDEXED BY jobs_claim"
    " JOIN integrations i ON i.mailbox_uuid = j.mailbox_uuid"
    " WHERE j.kind = ? AND j.state = 'ready' AND j.next_attempt_at <= ? AND i.enabled = 1"
    " ORDER BY j.id LIMIT ?"
)
# PostgreSQL: claimers pass over each other's locked rows instead of queueing behind them
# (SKIP LOCKED); at READ COMMITTED a row another node claimed meanwhile is re-checked and left.
CLAIMABLE_SHARED = (
    "SELECT j.id FROM jobs j JOIN integrations i ON i.mailbox_uuid = j.mailbox_uuid"
    " WHERE j.kind = ? AND j.state = 'ready' AND j.next_attempt_at <= ? AND i.enabled = 1"
    " ORDER BY j.id LIMIT ? FOR UPDATE OF j SKIP LOCKED"
)


@concurrent_write
def claim(conn: Tx, kind: JobKind, owner: str, lease_s: float, limit: int) -> list[Job]:
    """Take up to ``limit`` due jobs of enabled integrations, oldest first, with payloads."""
    now = store_now(conn)
    claimable = CLAIMABLE_SHARED if is_postgres(conn) else CLAIMABLE
    rows = conn.execute(
        "UPDATE jobs SET state = 'running', lease_owner = ?, lease_until = ?, "
        f"attempts = attempts + 1, updated_at = ? WHERE id IN ({claimable}) "
        f"RETURNING {_JOB_ROW}, payload",
        (owner, now + lease_s, utc_now(), kind, now, limit),
    ).fetchall()
    return sorted((_job(r, with_payload=True) for r in rows), key=lambda job: job.id)


# A claim is still ours while the job runs at the attempt we claimed: a claim handed back (its
# lease ran out) and taken again has a higher attempt, so a stalled holder cannot end it.
_STILL_OURS = "id = ? AND state = 'running' AND attempts = ?"


def complete(conn: Tx, job: Job) -> None:
    """Done, in the transaction that records the effect; :class:`ClaimLost` if no longer ours."""
    cursor = conn.execute(
        "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_until = NULL, "
        f"last_error = NULL, updated_at = ? WHERE {_STILL_OURS}",
        (utc_now(), job.id, job.attempts),
    )
    if cursor.rowcount != 1:
        raise ClaimLost(job)


def complete_many(conn: Tx, done: list[Job]) -> None:
    """:func:`complete` for a batch, one statement per 400 jobs (a statement per job costs a
    networked store more than the work); :class:`ClaimLost` names a job that is no longer ours
    (then nothing of the unit stands: it rolls back)."""
    now = utc_now()
    for start in range(0, len(done), 400):
        chunk = done[start : start + 400]
        pairs = ",".join("(?, ?)" for _ in chunk)
        cursor = conn.execute(
            "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_until = NULL, "
            "last_error = NULL, updated_at = ? "
            f"WHERE state = 'running' AND (id, attempts) IN (VALUES {pairs})",
            (now, *(value for job in chunk for value in (job.id, job.attempts))),
        )
        if cursor.rowcount != len(chunk):
            raise ClaimLost(_first_lost(conn, chunk))


def _first_lost(conn: Tx, chunk: list[Job]) -> Job:
    """The first job of ``chunk`` that is not done at its attempt (after a partial update)."""
    found = find_jobs(conn, {(job.kind, job.ref) for job in chunk})
    for job in chunk:
        row = found.get((job.kind, job.ref))
        if row is None or row.state is not JobState.DONE or row.attempts != job.attempts:
            return job
    return chunk[0]


def close_parked(conn: Tx, job: Job) -> None:
    """A parked job whose item was handed back to the customer is done; :class:`ClaimLost` if
    it is no longer parked (another node handed it back first, or it was reprocessed)."""
    cursor = conn.execute(
        "UPDATE jobs SET state = 'done', updated_at = ? WHERE id = ? AND state = 'parked'",
        (utc_now(), job.id),
    )
    if cursor.rowcount != 1:
        raise ClaimLost(job)


def fail(
    conn: Tx,
    job: Job,
    error: str,
    policy: RetryPolicy = RetryPolicy(),
    *,
    permanent: bool = False,
) -> JobState:
    """Schedule a retry with a growing delay, or park the job; returns the new state.

    ``permanent``: retrying cannot help (the item itself is unusable): park it now.
    """
    if permanent or job.attempts >= policy.max_attempts:
        state, due = JobState.PARKED, 0.0
    else:
        due = store_now(conn) + retry_delay(job.attempts, policy.max_delay_s)
        state = JobState.READY
    cursor = conn.execute(
        "UPDATE jobs SET state = ?, next_attempt_at = ?, lease_owner = NULL, lease_until = NULL, "
        f"last_error = ?, max_attempts = ?, updated_at = ? WHERE {_STILL_OURS}",
        (state, due, error, policy.max_attempts, utc_now(), job.id, job.attempts),
    )
    if cursor.rowcount != 1:
        raise ClaimLost(job)
    return state


def defer(conn: Tx, job: Job, until: float) -> None:
    """Back in the queue at ``until`` without counting a try (it waits for something, such
    as a partner's MDN; it did not fail); :class:`ClaimLost` if no longer ours."""
    cursor = conn.execute(
        "UPDATE jobs SET state = 'ready', next_attempt_at = ?, "
        "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, "
        f"lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE {_STILL_OURS}",
        (until, utc_now(), job.id, job.attempts),
    )
    if cursor.rowcount != 1:
        raise ClaimLost(job)


def postpone(conn: Tx, kind: JobKind, ref: str, until: float) -> None:
    """A waiting job is not due before ``until`` (a retry waiting, as the backlog bench sets)."""
    conn.execute(
        "UPDATE jobs SET next_attempt_at = ? WHERE kind = ? AND ref = ? AND state = 'ready'",
        (until, kind, ref),
    )


def due_now(conn: Tx, kind: JobKind, ref: str) -> None:
    """A waiting job runs at the next claim (what it waited for has come)."""
    conn.execute(
        "UPDATE jobs SET next_attempt_at = 0 WHERE kind = ? AND ref = ? AND state = 'ready'",
        (kind, ref),
    )
    notify_job(conn, kind)


def count_refs(conn: Tx, kind: JobKind, prefix: str) -> int:
    """How many jobs of ``kind`` have a ref starting with ``prefix``."""
    row = conn.execute(
        "SELECT count(*) FROM jobs WHERE kind = ? AND substr(ref, 1, ?) = ?",
        (kind, len(prefix), prefix),
    ).fetchone()
    return int(row[0])


def retry_delay(attempts: int, max_delay_s: float = MAX_DELAY_S) -> float:
    """1 s, 2 s, 4 s, ... capped (five minutes by default)."""
    return float(min(2 ** max(attempts - 1, 0), max_delay_s))


Policies = Mapping[JobKind, RetryPolicy]
_STOPPED = re.compile(r"^The engine stopped (\d+) times? while handling this")


def release_dead_claims(conn: Tx, policies: Policies | None = None) -> int:
    """Hand back the claims of owners that are no live node: a node that crashed or was
    killed (its node lease ran out), or this node's previous run. Live nodes' claims stay
    theirs.

    A claim that ends this way counts as a failed attempt: an item that stops the engine each
    time it is handled (it crashes the process, exhausts the memory) is parked once its
    retry policy's attempts are used up, instead of stopping every engine that takes it.
    """
    return _release(
        conn,
        "state = 'running' AND (lease_owner IS NULL OR lease_owner NOT IN "
        "(SELECT owner FROM nodes WHERE lease_until >= ?))",
        (store_now(conn),),
        policies or {},
    )


def release_expired(conn: Tx, policies: Policies | None = None) -> int:
    """Hand back claims whose lease ran out (the engine stalled on them); counted as for
    :func:`release_dead_claims`."""
    return _release(
        conn, "state = 'running' AND lease_until < ?", (store_now(conn),), policies or {}
    )


def _release(conn: Tx, where: str, args: tuple[Any, ...], policies: Policies) -> int:
    rows = conn.execute(
        f"SELECT id, kind, attempts, last_error FROM jobs WHERE {where}", args
    ).fetchall()
    for job_id, kind, attempts, last_error in rows:
        policy = policies.get(JobKind(kind), RetryPolicy())
        earlier = _STOPPED.match(last_error or "")
        stops = int(earlier.group(1)) + 1 if earlier else 1
        said = f"The engine stopped {stops} {'time' if stops == 1 else 'times'} while handling this"
        if attempts >= policy.max_attempts:
            state = JobState.PARKED
            error = (
                f"{said} (attempt {attempts} of {policy.max_attempts}): set aside so that it "
                "cannot stop the engine again. Look for the cause in the engine's log, then "
                "reprocess it."
            )
        else:
            state, error = JobState.READY, f"{said}; it is tried again."
        conn.execute(
            "UPDATE jobs SET state = ?, next_attempt_at = 0, lease_owner = NULL, "
            "lease_until = NULL, last_error = ?, max_attempts = ?, updated_at = ? WHERE id = ?",
            (state, error, policy.max_attempts, utc_now(), job_id),
        )
    if rows:
        notify_job(conn, "")
    return len(rows)


def give_back(conn: Tx, owner: str) -> int:
    """An engine that stops cleanly returns its claims: ready at once, the attempt not counted
    (stopping the engine is nothing the item did)."""
    cursor = conn.execute(
        "UPDATE jobs SET state = 'ready', "
        "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, lease_owner = NULL, "
        "lease_until = NULL, updated_at = ? WHERE state = 'running' AND lease_owner = ?",
        (utc_now(), owner),
    )
    if cursor.rowcount:
        notify_job(conn, "")  # another node may take them at once
    return cursor.rowcount


def reprocess(conn: Tx, job_ids: list[int]) -> int:
    """Put parked (or failed-and-waiting) jobs back at the front: due now, attempts reset."""
    marks = ",".join("?" * len(job_ids))
    cursor = conn.execute(
        f"UPDATE jobs SET state = 'ready', attempts = 0, next_attempt_at = 0, updated_at = ? "
        f"WHERE id IN ({marks}) AND state IN ('parked', 'ready')",
        (utc_now(), *job_ids),
    )
    notify_job(conn, "")
    return cursor.rowcount


_JOB_ROW = (
    "id, kind, ref, mailbox_uuid, state, attempts, next_attempt_at, last_error, updated_at, "
    "max_attempts"
)


def _job(row: Any, with_payload: bool = False) -> Job:
    """A job from its ``_JOB_ROW`` columns (and ``payload``, when selected)."""
    return Job(
        id=row["id"],
        kind=JobKind(row["kind"]),
        ref=row["ref"],
        mailbox_uuid=row["mailbox_uuid"],
        state=JobState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        updated_at=row["updated_at"],
        max_attempts=row["max_attempts"],
        payload=json.loads(row["payload"] or "{}") if with_payload else {},
    )


def list_jobs(conn: Tx, states: tuple[JobState, ...], limit: int = 200) -> list[Job]:
    marks = ",".join("?" * len(states))
    rows = conn.execute(
        f"SELECT {_JOB_ROW} FROM jobs WHERE state IN ({marks}) ORDER BY id LIMIT ?",
        (*states, limit),
    ).fetchall()
    return [_job(r) for r in rows]


def list_troubled(conn: Tx, limit: int = 200) -> list[Job]:
    """Jobs a person may want to look at: parked, or not done and failed at least once."""
    rows = conn.execute(
        f"SELECT {_JOB_ROW} FROM jobs WHERE state = 'parked' "
        "OR (state IN ('ready', 'running') AND last_error IS NOT NULL) ORDER BY id LIMIT ?",
        (limit,),
    ).fetchall()
    return [_job(r) for r in rows]


def find_jobs(conn: Tx, keys: set[tuple[JobKind, str]]) -> dict[tuple[JobKind, str], Job]:
    """The jobs with these (kind, ref) keys, by key (missing ones are left out)."""
    found: dict[tuple[JobKind, str], Job] = {}
    ordered = sorted(keys)
    for start in range(0, len(ordered), 400):  # well under SQLite's variable limit
        chunk = ordered[start : start + 400]
        where = " OR ".join("(kind = ? AND ref = ?)" for _ in chunk)
        args = [value for key in chunk for value in key]
        for r in conn.execute(f"SELECT {_JOB_ROW} FROM jobs WHERE {where}", args).fetchall():
            job = _job(r)
            found[(job.kind, job.ref)] = job
    return found


def requeue(conn: Tx, kind: JobKind, ref: str, payload_update: Mapping[str, Any]) -> bool:
    """Queue a job again whatever its state (done, parked, waiting), due now with fresh
    attempts and ``payload_update`` merged into its payload; False if it is running (or gone)."""
    row = conn.execute(
        "SELECT id, payload FROM jobs WHERE kind = ? AND ref = ? AND state != 'running'",
        (kind, ref),
    ).fetchone()
    if row is None:
        return False
    payload = dict(json.loads(row["payload"] or "{}"), **payload_update)
    conn.execute(
        "UPDATE jobs SET state = 'ready', attempts = 0, next_attempt_at = 0, payload = ?, "
        "last_error = NULL, updated_at = ? WHERE id = ?",
        (json.dumps(payload), utc_now(), row["id"]),
    )
    notify_job(conn, kind)
    return True


def set_payloads(conn: Tx, payloads: Mapping[int, Mapping[str, Any]]) -> None:
    """Replace the payloads of jobs (what a retry must reuse, e.g. the file name chosen)."""
    conn.executemany(
        "UPDATE jobs SET payload = ? WHERE id = ?",
        [(json.dumps(dict(payload)), job_id) for job_id, payload in payloads.items()],
    )
