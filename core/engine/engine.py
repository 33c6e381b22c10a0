"""The engine: one per data directory, in the TUI process or headless (``docbridge serve``).

It holds the engine lease, works the durable queue with separate loops per kind of job (so an
SMTP outage delays mails only), watches the customer folders, and runs the SFTP listener. All
state lives in SQLite; the engine keeps nothing that a crash could lose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from core.clock import timestamp, utc_datetime, utc_days_ago
from core.config import Config
from core.conversion.apply import Limits
from core.conversion.pool import TransformPool
from core.engine import (
    as2_queue,
    envelope_handler,
    file_batch,
    file_handler,
    in_conversion,
    mail_handler,
    node_lease,
)
from core.engine.as2_component import As2Component
from core.engine.intake_listener import IntakeListener
from core.engine.sftp_component import SftpComponent
from core.errors import DocbridgeError, StoreError
from core.models import AttemptOutcome, Job, JobKind
from core.storage import conversions, integrations, jobs, lease
from core.storage.connection import Tx
from core.storage.store import Store, open_store

log = logging.getLogger("docbridge.engine")
PRUNE_INTERVAL_S = 600.0
# Uploads are taken in once they pause for UPLOAD_QUIET_S (at the latest UPLOAD_MAX_WAIT_S after
# the first): a burst of small files becomes one batch, and the engine does not compete for the
# loop and the disk with each upload it reacts to.
UPLOAD_QUIET_S = 0.25
UPLOAD_MAX_WAIT_S = 2.0  # the folder scan's own interval: no file waits longer than before


class EngineBusy(DocbridgeError):
    """Another engine holds this data directory."""

    def __init__(self, holder: lease.LeaseHolder) -> None:
        super().__init__(
            f"An engine already runs as node '{holder.name}' on this store (pid {holder.pid} on "
            f"{holder.host}, since {holder.started_at}).",
            "Stop it first, use this process as a client of it, or give this one another "
            "name (docbridge serve --node-name).",
        )
        self.holder = holder


class EngineLoop(StrEnum):
    """The engine's working loops, whose passes :meth:`Engine.wait_for_cycles` counts."""

    ENVELOPE = "envelope"
    FILE = "file"
    MAIL = "mail"
    SCAN = "scan"  # the customer folders of enabled mailboxes
    HEARTBEAT = "heartbeat"  # lease, pruning, certificate warnings, sessions
    AS2_SEND = "as2_send"
    AS2_MDN = "as2_mdn"


@dataclass(frozen=True)
class EngineSettings:
    lease_s: float = 5.0
    heartbeat_s: float = 1.0
    idle_poll_s: float = 0.25
    scan_interval_s: float = 2.0
    batch_size: int = 100
    claim_lease_s: float = 60.0
    node_name: str = ""  # "" : the host's name (docbridge serve --node-name)
    envelope_retry: jobs.RetryPolicy = field(default_factory=jobs.RetryPolicy)
    file_retry: jobs.RetryPolicy = field(default_factory=jobs.RetryPolicy)
    mail_retry: jobs.RetryPolicy = field(
        default_factory=lambda: jobs.RetryPolicy(max_attempts=40, max_delay_s=300.0)
    )
    # Partners are often down for hours: AS2 messages and MDNs are retried for about a day.
    as2_retry: jobs.RetryPolicy = field(
        default_factory=lambda: jobs.RetryPolicy(max_attempts=300, max_delay_s=300.0)
    )
    run_sftp: bool = True
    run_as2: bool = True
    certificate_check_s: float = 3600.0  # AS2 certificate expiry warnings by mail

    @property
    def policies(self) -> dict[JobKind, jobs.RetryPolicy]:
        return {
            JobKind.ENVELOPE: self.envelope_retry,
            JobKind.FILE: self.file_retry,
            JobKind.MAIL: self.mail_retry,
            JobKind.AS2_SEND: self.as2_retry,
            JobKind.AS2_MDN: self.as2_retry,
        }


class Engine:
    def __init__(self, config: Config, settings: EngineSettings | None = None) -> None:
        self.config = config
        self.settings = settings or EngineSettings()
        self.db: Store = open_store(config.database_path, config.store_url)
        self.node_name = self.settings.node_name or node_lease.default_node_name()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.listeners: dict[str, str] = {}
        self.sftp: SftpComponent | None = None  # while the SFTP listener runs
        self.as2: As2Component | None = None  # while the AS2 endpoint runs
        self.intake = IntakeListener(self.db, config.data_dir, config.sftp.max_file_size)
        # Conversion maps run in worker processes, started on the first conversion.
        self.transforms = TransformPool(
            time_limit=float(config.conversion.time_limit_seconds),
            max_output=config.conversion.max_output,
        )
        self.limits = Limits()  # the pool's own bounds, from the config
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = {kind: asyncio.Event() for kind in JobKind}
        self._scan_now = asyncio.Event()
        self._uploads_waiting: asyncio.TimerHandle | None = None  # the settled uploads' wake
        self._first_upload_waiting = 0.0
        self._stopping = asyncio.Event()
        self._closed = False
        self.lost_lease = asyncio.Event()
        self._cycles = dict.fromkeys(EngineLoop, 0)
        self._cycle_done = asyncio.Condition()
        self._scan_failures: dict[str, str] = {}  # mailbox -> last error, logged once
        self._hand_back_failures: set[int] = set()  # parked file jobs error/ refused, logged once
        self._next_prune = 0.0  # when kept conversion payloads are next pruned
        self._next_certificate_check = 0.0

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Take the lease (or raise EngineBusy), recover a crashed engine's claims, start."""
        holder, released = await self.db.write(
            node_lease.acquire,
            self.node_name,
            self.owner,
            self.settings.lease_s,
            self.settings.policies,
        )
        if holder is not None:
            await self.db.close()
            raise EngineBusy(holder)
        if released:
            log.info("recovered %d claims of engines that stopped", released)
        try:
            if self.settings.run_sftp:
                shared = self.node_name if self.config.store_url else ""
                sftp = SftpComponent(self.db, self.config, self._upload_arrived, shared)
                self.listeners.update(await sftp.start())
                self.sftp = sftp
            if self.settings.run_as2:
                as2 = As2Component(self.db, self.config, self.settings.as2_retry, self.wake)
                self.listeners.update(await as2.start())
                self.as2 = as2
            await self.intake.start()
            await self._publish()
        except BaseException:
            # e.g. the SFTP port is taken: give the lease back so another engine can run.
            await self.stop()
            raise
        loops: list[Callable[[], Awaitable[None]]] = [
            self._wake_up_loop,
            self._heartbeat_loop,
            self._envelope_loop,
            self._file_loop,
            self._mail_loop,
            self._scan_loop,
        ]
        if self.as2 is not None:
            loops += [self._as2_send_loop, self._as2_mdn_loop]
        self._tasks = [asyncio.create_task(self._guard(loop)) for loop in loops]
        log.info("engine started (%s)", ", ".join(f"{k} {v}" for k, v in self.listeners.items()))

    async def stop(self) -> None:
        """Stop the loops and listeners and give the lease back; calling it again is harmless."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        if self._uploads_waiting is not None:
            self._uploads_waiting.cancel()
        for task in self._tasks:
            task.cancel()
        # Not a suppress(CancelledError) per task: that would also swallow a cancellation of
        # stop() itself.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.sftp is not None:
            await self.sftp.stop()
            self.sftp = None
        if self.as2 is not None:
            await self.as2.stop()
            self.as2 = None
        await self.intake.stop()
        await self.transforms.close()
        # A store that cannot be written (busy, full, gone) must not stop the shutdown: the
        # claims and the lease then simply expire.
        with contextlib.suppress(sqlite3.Error, StoreError):
            await self.db.write(node_lease.give_back, self.node_name, self.owner)
        await self.db.close()
        log.info("engine stopped")

    def wake(self, kind: JobKind | None = None) -> None:
        """Look for work now instead of at the next poll (new envelope, new upload)."""
        for key, event in self._wake.items():
            if kind is None or key == kind:
                event.set()
        if kind in (None, JobKind.FILE):
            self._scan_now.set()

    def _upload_arrived(self) -> None:
        """Wake the file loop once the uploads pause (see UPLOAD_QUIET_S)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._uploads_waiting is None:
            self._first_upload_waiting = now
        else:
            self._uploads_waiting.cancel()
        at = min(now + UPLOAD_QUIET_S, self._first_upload_waiting + UPLOAD_MAX_WAIT_S)
        self._uploads_waiting = loop.call_at(at, self._take_uploads_in)

    def _take_uploads_in(self) -> None:
        self._uploads_waiting = None
        self.wake(JobKind.FILE)

    # -- cycle counts: what tests wait on instead of sleeping -------------------------------

    def cycles(self, loop: EngineLoop) -> int:
        """How many passes ``loop`` has finished since the engine started."""
        return self._cycles[loop]

    async def wait_for_cycles(self, loop: EngineLoop, n: int = 2, timeout_s: float = 10.0) -> None:
        """Until ``loop`` finishes ``n`` more passes (TimeoutError after ``timeout_s``).

        To know the engine has seen a change, wait for two: the pass running now may have
        started before the change. A dead engine finishes none, so "nothing happened" after
        this is a finding, not a pause that a stopped engine passes too.
        """
        target = self._cycles[loop] + n
        async with asyncio.timeout(timeout_s), self._cycle_done:
            await self._cycle_done.wait_for(lambda: self._cycles[loop] >= target)

    async def _passed(self, loop: EngineLoop) -> None:
        async with self._cycle_done:
            self._cycles[loop] += 1
            self._cycle_done.notify_all()

    # -- loops -------------------------------------------------------------------------------

    async def _publish(self) -> None:
        sessions = [
            {
                "mailbox": s.mailbox_uuid,
                "address": s.address,
                "since": datetime.fromtimestamp(s.started_at, UTC).isoformat(timespec="seconds"),
            }
            for s in (self.sftp.sessions() if self.sftp is not None else [])
        ]
        await self.db.write(lease.publish, self.node_name, self.owner, self.listeners, sessions)

    async def _guard(self, loop: Callable[[], Awaitable[None]]) -> None:
        """Keep a loop alive: an unexpected error is logged and the loop restarts.

        Every loop also checks ``_stopping`` at each turn: a library may swallow the
        cancellation ``stop()`` sends (``asyncio.wait_for`` on Python 3.11, which aiosmtplib
        uses), and the loop must end anyway rather than keep ``stop()`` waiting forever.
        """
        while not self._stopping.is_set():
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("engine loop %s failed; restarting in 1 s", loop.__name__)
                await asyncio.sleep(1)

    async def _wake_up_loop(self) -> None:
        """Work queued by other processes wakes the loops at once where the store tells
        (PostgreSQL); the loops' polling stays underneath."""
        await self.db.wake_ups(self._notified)

    def _notified(self, kind: str) -> None:
        if kind in JobKind.__members__.values():
            self.wake(JobKind(kind))
        else:
            self.wake()

    async def _idle(self, kind: JobKind) -> None:
        event = self._wake[kind]
        await _wait(event, self.settings.idle_poll_s)
        event.clear()

    async def _claim(self, kind: JobKind) -> list[Job]:
        limit = self.settings.batch_size if kind in (JobKind.ENVELOPE, JobKind.FILE) else 10
        return await self.db.write(jobs.claim, kind, self.owner, self.settings.claim_lease_s, limit)

    async def _heartbeat_loop(self) -> None:
        while not self._stopping.is_set():
            renewed, released, maintainer = await self.db.write(
                node_lease.renew,
                self.node_name,
                self.owner,
                self.settings.lease_s,
                self.settings.policies,
            )
            if released:
                log.info("recovered %d claims of engines that stopped", released)
                for kind in (JobKind.ENVELOPE, JobKind.FILE):
                    self._wake[kind].set()
            if not renewed:
                log.error("engine lease lost to another engine; stopping")
                self.lost_lease.set()
                return
            if maintainer and timestamp() >= self._next_prune:
                # Kept conversion inputs and outputs are bounded by age (conversion.keep_days).
                cutoff = utc_days_ago(self.config.conversion.keep_days)
                await self.db.write(conversions.prune_payloads, cutoff)
                self._next_prune = timestamp() + PRUNE_INTERVAL_S
            if maintainer and timestamp() >= self._next_certificate_check:
                await self._warn_of_expiring_certificates()
            if self.sftp is not None:
                # Sessions the kill switch or a password reset ended close; sessions published.
                await self.sftp.maintain()
                await self._publish()
            await self._passed(EngineLoop.HEARTBEAT)
            await asyncio.sleep(self.settings.heartbeat_s)

    async def _warn_of_expiring_certificates(self) -> None:
        """One mail per AS2 certificate and threshold (30/14/7/1 days) to the notify address."""
        from core.as2.expiry import queue_expiry_mails  # cryptography: only when it runs

        self._next_certificate_check = timestamp() + self.settings.certificate_check_s
        queued = await self.db.write(queue_expiry_mails, utc_datetime(), self.config.smtp.sender)
        if queued:
            log.info("%d certificate expiry warning(s) queued for mailing", queued)
            self._wake[JobKind.MAIL].set()

    async def _envelope_loop(self) -> None:
        while not self._stopping.is_set():
            claimed = await self._claim(JobKind.ENVELOPE)
            if claimed:
                try:
                    notified = await self._handle_envelopes(claimed)
                except jobs.ClaimLost as lost:
                    log.info("%s; handling the batch's items one by one", lost)
                    notified = await self._handle_envelopes_alone(claimed)
                except Exception:
                    # A defect somewhere in the batch: each item again on its own, so only the
                    # culprit fails, with its own error (effects are idempotent: repeating is
                    # safe).
                    log.exception("envelope batch failed; handling its items one by one")
                    notified = await self._handle_envelopes_alone(claimed)
                if notified:
                    self._wake[JobKind.MAIL].set()
            await self._passed(EngineLoop.ENVELOPE)
            if not claimed:
                await self._idle(JobKind.ENVELOPE)

    async def _handle_envelopes(self, claimed: list[Job]) -> bool:
        """Load, perform and record a batch; True if a mail was queued."""
        loaded = await self.db.call(envelope_handler.load_work, claimed)
        work = [w for w in loaded if isinstance(w, envelope_handler.EnvelopeWork)]
        gone = [w for w in loaded if isinstance(w, Job)]
        outcomes = await envelope_handler.perform(self.config, [w for w in work if not w.rule])
        ruled = [w for w in work if w.rule]
        if ruled:
            outcomes += await in_conversion.perform(
                self.transforms, self.limits, self.config, ruled, self._save_payloads
            )
        await self.db.write(
            envelope_handler.record,
            outcomes,
            gone,
            self.config.smtp.sender,
            self.settings.envelope_retry,
            self.config.conversion.keep_bytes,
            as2_queue.message_domain(self.config),
        )
        if any(o.status is AttemptOutcome.QUEUED for o in outcomes):
            self._wake[JobKind.AS2_SEND].set()
        return any(o.status is AttemptOutcome.NOTIFIED for o in outcomes)

    async def _save_payloads(self, payloads: Mapping[int, Mapping[str, Any]]) -> None:
        await self.db.write(jobs.set_payloads, payloads)

    async def _handle_envelopes_alone(self, claimed: list[Job]) -> bool:
        notified = False
        for job in claimed:
            try:
                notified |= await self._handle_envelopes([job])
            except jobs.ClaimLost as lost:
                log.info("%s: whoever claimed it again records it", lost)
            except Exception as exc:
                log.exception("envelope %s failed", job.ref)
                await self._fail_job(job, f"Internal error: {exc}")
        return notified

    async def _mail_loop(self) -> None:
        while not self._stopping.is_set():
            claimed = await self._claim(JobKind.MAIL)
            if claimed:
                await self._deliver_mails(claimed)
            await self._passed(EngineLoop.MAIL)
            if not claimed:
                await self._idle(JobKind.MAIL)

    async def _deliver_mails(self, claimed: list[Job]) -> None:
        recorded: set[int] = set()
        retry = self.settings.mail_retry

        async def done(job: Job, error: str | None, permanent: bool = False) -> None:
            await self.db.write(mail_handler.record, job, error, retry, permanent=permanent)
            recorded.add(job.id)

        try:
            await mail_handler.deliver_batch(self.config.smtp, claimed, done)
        except Exception as exc:
            # Not an SMTP outage (those are recorded per mail): a defect. The mails not yet
            # recorded fail now rather than stay held until their claims expire.
            log.exception("mail batch failed")
            for job in claimed:
                if job.id not in recorded:
                    await self.db.write(mail_handler.record, job, f"Internal error: {exc}", retry)

    async def _as2_send_loop(self) -> None:
        assert self.as2 is not None
        while not self._stopping.is_set():
            claimed = await self._claim(JobKind.AS2_SEND)
            if claimed:
                await self.as2.sending.send_all(claimed)
            await self._passed(EngineLoop.AS2_SEND)
            if not claimed:
                await self._idle(JobKind.AS2_SEND)

    async def _as2_mdn_loop(self) -> None:
        assert self.as2 is not None
        while not self._stopping.is_set():
            claimed = await self._claim(JobKind.AS2_MDN)
            if claimed:
                await self.as2.sending.post_owed_mdns(claimed)
            await self._passed(EngineLoop.AS2_MDN)
            if not claimed:
                await self._idle(JobKind.AS2_MDN)

    async def _scan_loop(self) -> None:
        while not self._stopping.is_set():
            mailboxes = await self.db.call(integrations.enabled_mailboxes)
            for mailbox_uuid in mailboxes:
                try:
                    await self._scan_mailbox(mailbox_uuid)
                except Exception as exc:
                    # One mailbox whose folders are broken must not keep the others waiting.
                    if self._scan_failures.get(mailbox_uuid) != str(exc):
                        log.exception("cannot take files of mailbox %s in", mailbox_uuid)
                    self._scan_failures[mailbox_uuid] = str(exc)
                else:
                    self._scan_failures.pop(mailbox_uuid, None)
            await self._passed(EngineLoop.SCAN)
            await _wait(self._scan_now, self.settings.scan_interval_s)
            self._scan_now.clear()

    async def _scan_mailbox(self, mailbox_uuid: str) -> None:
        claims = await asyncio.to_thread(file_handler.scan, self.config.mailboxes_dir, mailbox_uuid)
        if not claims:
            return
        settled = await self.db.write(file_handler.enqueue_claims, claims)
        for claim in settled.leftovers:
            path = file_handler.claim_path(
                self.config.mailboxes_dir, mailbox_uuid, claim.folder, claim.token, claim.name
            )
            await asyncio.to_thread(file_handler.remove_claim, path)
        for claim, row in settled.parked:
            await self._hand_back(claim, row)
        self._wake[JobKind.FILE].set()

    async def _hand_back(self, claim: file_handler.Claim, row: Job) -> None:
        """A file whose job gave up goes back to the customer, in error/ with the reason."""
        job = replace(row, payload=claim.payload)
        work = file_handler.work_for(self.config.mailboxes_dir, job)
        reason = (
            f"docbridge could not take this file in: {row.last_error or 'unknown error'} "
            "Move it back to outbox/ (or coutbox/) to try again."
        )
        try:
            await asyncio.to_thread(file_handler.send_to_error, work, reason)
        except OSError:
            if row.id not in self._hand_back_failures:
                log.exception("cannot move %s to error/; it stays parked", row.ref)
            self._hand_back_failures.add(row.id)
            return
        try:
            await self.db.write(file_handler.record_handed_back, work, reason)
        except jobs.ClaimLost as lost:
            log.info("%s: handed back meanwhile", lost)

    async def _file_loop(self) -> None:
        while not self._stopping.is_set():
            claimed = await self._claim(JobKind.FILE)
            if claimed:
                try:
                    await self._handle_files(claimed)
                except jobs.ClaimLost as lost:
                    log.info("%s; handling the batch's files one by one", lost)
                    await self._handle_files_alone(claimed)
                except Exception:
                    # A defect somewhere in the batch: each file again on its own, so only
                    # the culprit fails (claims make every step safe to repeat).
                    log.exception("file batch failed; handling its files one by one")
                    await self._handle_files_alone(claimed)
            await self._passed(EngineLoop.FILE)
            if not claimed:
                await self._idle(JobKind.FILE)

    async def _handle_files(self, claimed: list[Job]) -> None:
        stuck = await file_batch.handle(self.db, self.config, self.transforms, self.limits, claimed)
        for job, error in stuck:
            await self._fail_job(job, error)
        if stuck:
            self._scan_now.set()  # if one was parked, hand it back now

    async def _handle_files_alone(self, claimed: list[Job]) -> None:
        for job in claimed:
            try:
                await self._handle_files([job])
            except jobs.ClaimLost as lost:
                log.info("%s: whoever claimed it again records it", lost)
            except Exception as exc:
                log.exception("customer file %s failed", job.ref)
                await self._fail_job(job, f"Internal error: {exc}")
                self._scan_now.set()  # if it was parked, hand it back now

    async def _fail_job(self, job: Job, error: str) -> None:
        """Fail one job with its own error, on record in the activity log."""
        try:
            await self.db.write(_fail_job, job, error, self.settings)
        except jobs.ClaimLost as lost:
            log.info("%s: whoever claimed it again records it", lost)


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    """Until ``event`` is set or ``timeout_s`` passed. Not ``asyncio.wait_for``: on Python 3.11
    it swallows a cancellation that arrives as the event is set, and ``stop()`` then waits
    forever for a loop that keeps running."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()


# -- units of work: each runs in one transaction (Database.write) -------------------------------


def _fail_job(tx: Tx, job: Job, error: str, settings: EngineSettings) -> None:
    if job.kind is JobKind.ENVELOPE:
        envelope_handler.fail(tx, job, error, settings.envelope_retry)
    elif job.kind is JobKind.FILE:
        file_handler.fail(tx, job, error, settings.file_retry)
    elif job.kind in (JobKind.AS2_SEND, JobKind.AS2_MDN):
        jobs.fail(tx, job, error, settings.as2_retry)
    else:
        mail_handler.record(tx, job, error, settings.mail_retry)
