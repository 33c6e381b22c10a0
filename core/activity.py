"""What the engine is doing, in words a person reads: "retrying 3/8 in 40 s", "parked after 8/8".

The queue and the activity log store terse states ("ready" is what a failed envelope goes back
to); shown raw they mislead ("ready" for a failure). This module turns one consistent read of
the store into :class:`core.models.ActivityView`, with states as enums and their labels, so the
TUI and the CLI say the same thing. Times come from :func:`core.clock.unix_now`, which snapshots
pin.
"""

from __future__ import annotations

import math

from core.clock import unix_now
from core.models import (
    ActivityRecord,
    ActivityView,
    AttemptOutcome,
    AttemptView,
    BanView,
    ItemState,
    ItemView,
    Job,
    JobKind,
    JobState,
)
from core.storage import accounts, as2_messages, bans, jobs, logs
from core.storage.db import Tx
from core.storage.engine_state import read_engine_status

_DONE_OUTCOMES = {
    "delivered": AttemptOutcome.DELIVERED,
    "notified": AttemptOutcome.NOTIFIED,
    "rejected": AttemptOutcome.REJECTED,
    "sent": AttemptOutcome.SENT,
    "mailed": AttemptOutcome.MAILED,
    "gone": AttemptOutcome.GONE,
    "error": AttemptOutcome.FAILED,  # a customer file moved to error/: no retry
}
_MAIL_PREFIX = "mail "


def read_activity(tx: Tx, mailbox_uuid: str | None = None, limit: int = 100) -> ActivityView:
    """Engine status, items needing attention, the latest ``limit`` attempts, the bans and the
    latest ``limit`` AS2 messages (in and out, with their MDNs).

    A unit for ``Database.read``: one snapshot, so the lines and the jobs they name agree.
    """
    now = unix_now()
    status = read_engine_status(tx)
    names = {m.uuid: m.name for m in accounts.list_mailboxes(tx)}
    troubled = jobs.list_troubled(tx)
    records = logs.list_activity(tx, mailbox_uuid, limit)
    keys = {key for key in map(job_key, records) if key is not None}
    by_key = jobs.find_jobs(tx, keys) if keys else {}
    current = bans.list_bans(tx, now)
    messages = as2_messages.list_messages(tx, mailbox_uuid, limit)
    if mailbox_uuid is not None:
        troubled = [job for job in troubled if job.mailbox_uuid == mailbox_uuid]
    return ActivityView(
        now=now,
        status=status,
        items=tuple(
            item_view(job, names.get(job.mailbox_uuid, job.mailbox_uuid), now) for job in troubled
        ),
        attempts=attempt_views(records, by_key, names, now),
        bans=tuple(
            BanView(ban, ban.banned_until - now, duration(ban.banned_until - now))
            for ban in current
        ),
        mailbox_names=names,
        as2_messages=tuple(messages),
    )


def job_key(record: ActivityRecord) -> tuple[JobKind, str] | None:
    """The queue job an activity line belongs to (customer files have none worth showing)."""
    if not record.envelope_uuid or not record.rule.startswith("default:"):
        return None
    if record.status.startswith(_MAIL_PREFIX) or record.status == AttemptOutcome.MAILED:
        return (JobKind.MAIL, record.envelope_uuid)
    return (JobKind.ENVELOPE, record.envelope_uuid)


def item_view(job: Job, mailbox_name: str, now: float) -> ItemView:
    tries = fraction(job.attempts or None, job.max_attempts)
    due_in: float | None = None
    if job.state == JobState.PARKED:
        state, label = ItemState.PARKED, f"parked after {tries}" if tries else "parked"
    elif job.state == JobState.RUNNING:
        state, label = ItemState.RUNNING, f"running try {tries}" if tries else "running"
    elif job.state == JobState.DONE:
        state, label = ItemState.DONE, "done"
    elif job.attempts == 0:
        state, label = ItemState.QUEUED, "queued"
    else:
        due_in = max(0.0, job.next_attempt_at - now)
        state, label = ItemState.RETRYING, retry_label(tries, due_in)
    return ItemView(job, state, mailbox_name, due_in, label)


def attempt_views(
    records: list[ActivityRecord],
    by_key: dict[tuple[JobKind, str], Job],
    names: dict[str, str],
    now: float,
) -> tuple[AttemptView, ...]:
    """Label each attempt (``records`` newest first). Attempt numbers count back from the job's
    current count: each try writes one line; lines from before a reprocess get no number."""
    next_number: dict[tuple[str, str], int] = {}
    views: list[AttemptView] = []
    for record in records:
        key = job_key(record)
        job = by_key.get(key) if key is not None else None
        number: int | None = None
        newest = False
        if key is not None and job is not None:
            newest = key not in next_number
            if newest:
                running = job.state == JobState.RUNNING
                next_number[key] = job.attempts - 1 if running else job.attempts
            number = next_number[key] if next_number[key] > 0 else None
            next_number[key] -= 1
        maximum = job.max_attempts if job is not None else None
        outcome, label = _outcome(record, job, newest, fraction(number, maximum), now)
        views.append(
            AttemptView(
                record=record,
                outcome=outcome,
                mailbox_name=names.get(record.mailbox_uuid, record.mailbox_uuid),
                job_id=job.id if job is not None else None,
                attempt=number,
                max_attempts=maximum,
                label=label,
            )
        )
    return tuple(views)


def _outcome(
    record: ActivityRecord, job: Job | None, newest: bool, tries: str, now: float
) -> tuple[AttemptOutcome, str]:
    status = record.status.removeprefix(_MAIL_PREFIX)
    if status in _DONE_OUTCOMES:
        outcome = _DONE_OUTCOMES[status]
        suffix = " (moved to error/)" if status == "error" else ""
        return outcome, f"{outcome.value}{suffix}"
    if status == JobState.PARKED:
        return AttemptOutcome.PARKED, f"parked after {tries}" if tries else "parked"
    if status == JobState.READY:
        waiting = newest and job is not None and job.state == JobState.READY and job.attempts > 0
        if waiting and job is not None:
            return AttemptOutcome.RETRYING, retry_label(tries, max(0.0, job.next_attempt_at - now))
        return AttemptOutcome.FAILED, f"failed {tries}, retried" if tries else "failed, retried"
    return AttemptOutcome.OTHER, record.status


def fraction(number: int | None, maximum: int | None) -> str:
    if number is None:
        return ""
    return f"{number}/{maximum}" if maximum else f"try {number}"


def retry_label(tries: str, due_in: float) -> str:
    when = "now" if due_in < 1 else f"in {duration(due_in)}"
    return f"retrying {tries} {when}" if tries else f"retrying {when}"


def duration(seconds: float) -> str:
    """``40 s``, ``4 min 40 s``, ``25 min``, ``3 h 5 min`` (rounded up: never ``0 s`` early)."""
    total = max(0, math.ceil(seconds))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 10:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
