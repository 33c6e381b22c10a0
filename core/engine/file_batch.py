"""Customer files a batch at a time: read together, converted side by side, recorded together.

The claimed files of a batch are read in one worker-thread hop; ``coutbox/`` files go through
the OUT rules concurrently (the conversion pool has a worker per core); then one transaction
takes in every ``outbox/`` envelope and every conversion's envelopes, each file in its own
savepoint, so a file whose envelopes are refused leaves the others recorded. Files taken in
leave ``.taking/`` in one more hop; the rest go to ``error/`` with their reason, recorded in a
last transaction. Per file the effects and their order are those of one file alone, so the
crash reasoning of :mod:`core.engine.file_handler` holds for every file of the batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from core.config import Config
from core.conversion.apply import CONTENT_MATCH_BYTES, Limits
from core.conversion.pool import TransformPool
from core.engine import file_handler, out_conversion
from core.engine.file_handler import FileWork
from core.models import Job
from core.storage import jobs
from core.storage.connection import Tx, savepoint
from core.storage.store import Store

log = logging.getLogger("docbridge.engine")
BATCH_BYTES = 64 * 1024 * 1024  # files read together, at most (a larger file alone)


@dataclass(frozen=True)
class Failure:
    """A file that goes to error/: why, and its conversion attempt (None: an outbox/ file)."""

    work: FileWork
    reason: str
    attempt: out_conversion.OutAttempt | None = None


async def handle(
    db: Store, config: Config, transforms: TransformPool, limits: Limits, claimed: list[Job]
) -> list[tuple[Job, str]]:
    """Take in a batch of claimed files; returns the jobs that could not even be moved to
    error/ (the caller fails them, to be retried), with the error.

    The batch is taken in parts of at most BATCH_BYTES on disk (a larger file alone), so the
    memory a batch holds stays bounded however large its files are.
    """
    stuck: list[tuple[Job, str]] = []
    for part in await asyncio.to_thread(batch_parts, config, claimed):
        stuck += await _handle_part(db, config, transforms, limits, part)
    return stuck


def batch_parts(config: Config, claimed: list[Job]) -> list[list[Job]]:
    """The claimed files in order, in parts of at most BATCH_BYTES on disk (a larger one alone)."""
    parts: list[list[Job]] = [[]]
    total = 0
    for job in claimed:
        size = _size_on_disk(file_handler.work_for(config.mailboxes_dir, job).path)
        if parts[-1] and total + size > BATCH_BYTES:
            parts.append([])
            total = 0
        parts[-1].append(job)
        total += size
    return parts


def _size_on_disk(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0  # gone or unreadable: reading it says which


async def _handle_part(
    db: Store, config: Config, transforms: TransformPool, limits: Limits, claimed: list[Job]
) -> list[tuple[Job, str]]:
    works = await asyncio.to_thread(_read_all, config, claimed)
    gone = [w.job for w in works if w.gone]
    ready = [w for w in works if not w.gone]
    failures = [Failure(w, w.error) for w in ready if w.error is not None]
    ready = [w for w in ready if w.error is None]
    attempts = await _convert(db, config, transforms, limits, [w for w in ready if _is_source(w)])
    outbox = [w for w in ready if not _is_source(w)]
    keep = config.conversion.keep_bytes
    reasons = await db.write(_take_in, gone, outbox, attempts, keep)
    attempt_of = {a.work.job.id: a for a in attempts}
    taken = [w for w in ready if reasons[w.job.id] is None]
    failures += [
        Failure(w, reason, attempt_of.get(w.job.id))
        for w in ready
        if (reason := reasons[w.job.id]) is not None
    ]
    await asyncio.to_thread(_remove_taken, taken)
    moved, stuck = await asyncio.to_thread(_send_to_error, failures)
    if moved:
        await db.write(_record_failures, moved, keep)
    return stuck


def _is_source(work: FileWork) -> bool:
    return work.folder == "coutbox"


def _read_all(config: Config, claimed: list[Job]) -> list[FileWork]:
    size = config.sftp.max_file_size
    head = source_head(config)
    return [file_handler.read_file(config.mailboxes_dir, job, size, head) for job in claimed]


def source_head(config: Config) -> int:
    """How much of a coutbox/ source is read before a rule is chosen: what content patterns
    search and what the conversion log keeps, and one byte more to tell a longer file."""
    return max(CONTENT_MATCH_BYTES, config.conversion.keep_bytes) + 1


async def _convert(
    db: Store,
    config: Config,
    transforms: TransformPool,
    limits: Limits,
    sources: list[FileWork],
) -> list[out_conversion.OutAttempt]:
    """Every source through its mailbox's OUT rules, side by side (rules read once each)."""
    rules: dict[str, out_conversion.OutRules] = {}
    for mailbox_uuid in dict.fromkeys(w.job.mailbox_uuid for w in sources):
        rules[mailbox_uuid] = await db.read(out_conversion.load_rules, mailbox_uuid)
    database = config.lookup_database
    return await out_conversion.convert_all(
        transforms, limits, database, rules, sources, config.sftp.max_file_size
    )


def _take_in(
    tx: Tx,
    gone: list[Job],
    outbox: list[FileWork],
    attempts: list[out_conversion.OutAttempt],
    keep_bytes: int,
) -> dict[int, str | None]:
    """One transaction for the batch: each file recorded (None) or refused (its reason)."""
    reasons: dict[int, str | None] = {}
    for job in gone:
        jobs.complete(tx, job)
    for work in outbox:
        reasons[work.job.id] = file_handler.take_in(tx, work)
    for attempt in attempts:
        job_id = attempt.work.job.id
        if attempt.error is not None:
            reasons[job_id] = attempt.error
            continue
        try:
            with savepoint(tx):
                out_conversion.take_in(tx, attempt, keep_bytes)
        except out_conversion.EnvelopeRefused as exc:
            reasons[job_id] = str(exc)
        else:
            reasons[job_id] = None
    return reasons


def _remove_taken(taken: list[FileWork]) -> None:
    for work in taken:
        file_handler.remove_taken(work)
        if work.job.payload.get("reprocess"):
            file_handler.clear_resolved_error(work)


def _send_to_error(failures: list[Failure]) -> tuple[list[Failure], list[tuple[Job, str]]]:
    moved: list[Failure] = []
    stuck: list[tuple[Job, str]] = []
    for failure in failures:
        work = failure.work
        try:
            file_handler.send_to_error(work, failure.reason)
        except OSError as exc:
            stuck.append((work.job, f"Cannot move the file to error/: {exc}"))
        else:
            moved.append(failure)
            reason = failure.reason.splitlines()[0] if failure.reason else ""
            log.warning(
                "refused %s/%s of mailbox %s (to error/): %s",
                work.folder,
                work.name,
                work.job.mailbox_uuid,
                reason,
            )
    return moved, stuck


def _record_failures(tx: Tx, moved: list[Failure], keep_bytes: int) -> None:
    for failure in moved:
        if failure.attempt is not None:
            out_conversion.record_failure(tx, failure.attempt, failure.reason, keep_bytes)
        else:
            file_handler.record_error(tx, failure.work, failure.reason)
