"""Incoming envelopes of enabled integrations: the default rule's effect, exactly once.

A batch of claimed jobs is handled in three steps: read what each needs (one read), perform the
effects (idempotent: a stable file name per envelope, a mail job keyed by the envelope), then
record every outcome and end every claim in one transaction. A crash between effect and record
repeats the effect, which lands on the same file or the same queued mail.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from core.config import Config
from core.conversion.apply import in_rule_for
from core.engine.as2_queue import queue_message
from core.errors import DocbridgeError
from core.mail.notification import build_notification
from core.models import (
    AttemptOutcome,
    ConversionRule,
    ConversionStatus,
    DefaultRule,
    Direction,
    EnvelopeStatus,
    IntegrationForm,
    Job,
    JobKind,
    TransferProtocol,
)
from core.sftp.folders import ensure_mailbox_root, write_files_atomically
from core.storage import conversions, envelopes, jobs, logs
from core.storage import rules as rules_store
from core.storage.connection import Tx, concurrent_write
from core.storage.integrations import get_integration


@dataclass(frozen=True)
class EnvelopeWork:
    job: Job
    uuid: str
    mailbox_uuid: str
    mailbox_name: str
    protocol: TransferProtocol
    default_rule: DefaultRule
    notify_email: str
    reject_reason: str
    xml: str
    summary: dict[str, str]
    received_at: str = ""
    account_uuid: str = ""
    rule: ConversionRule | None = None  # the IN rule that takes it; None: the default rule

    @property
    def rule_label(self) -> str:
        """How the activity log names what handled it."""
        return f"rule:{self.rule.name}" if self.rule else f"default:{self.default_rule.value}"

    @property
    def reprocess(self) -> bool:
        return bool(self.job.payload.get("reprocess"))


EFFECTS = (
    AttemptOutcome.DELIVERED,
    AttemptOutcome.NOTIFIED,
    AttemptOutcome.REJECTED,
    AttemptOutcome.QUEUED,
)


@dataclass(frozen=True)
class Outcome:
    """How the effect of one envelope ended: one of :data:`EFFECTS`, or ``FAILED``."""

    work: EnvelopeWork
    status: AttemptOutcome
    detail: str = ""
    permanent: bool = False  # retrying cannot help (the rule's map fails on this envelope)
    conversion: conversions.NewConversion | None = None  # what the conversion log records


def load_work(tx: Tx, claimed: list[Job]) -> list[EnvelopeWork | Job]:
    """Everything the effects need; a job whose envelope vanished comes back as the bare job."""
    loaded: list[EnvelopeWork | Job] = []
    in_rules: dict[str, list[ConversionRule]] = {}
    forms: dict[str, IntegrationForm] = {}  # a batch is mostly one mailbox's: read it once
    deliveries = envelopes.get_deliveries(tx, [job.ref for job in claimed])
    for job in claimed:
        delivery = deliveries.get(job.ref)
        if delivery is None:
            loaded.append(job)
            continue
        envelope = delivery.envelope
        if envelope.mailbox_uuid not in forms:
            forms[envelope.mailbox_uuid] = get_integration(tx, envelope.mailbox_uuid).form
        form = forms[envelope.mailbox_uuid]
        if envelope.mailbox_uuid not in in_rules:
            in_rules[envelope.mailbox_uuid] = [
                rule
                for rule in rules_store.list_rules(tx, envelope.mailbox_uuid)
                if rule.form.enabled and rule.form.direction is Direction.IN
            ]
        rule = in_rule_for(
            in_rules[envelope.mailbox_uuid], envelope.template_uuid, envelope.template_version
        )
        loaded.append(
            EnvelopeWork(
                job=job,
                uuid=envelope.uuid,
                mailbox_uuid=envelope.mailbox_uuid,
                mailbox_name=delivery.mailbox_name,
                protocol=form.protocol,
                default_rule=form.default_rule,
                notify_email=form.notify_email,
                reject_reason=form.reject_reason,
                xml=delivery.xml,
                summary={
                    "uuid": envelope.uuid,
                    "subject": envelope.subject,
                    "sender": delivery.sender_name or envelope.sender_mailbox or "unknown",
                    "template": f"{delivery.template_name or '?'} v{envelope.template_version}",
                    "received_at": envelope.received_at,
                    "status": envelope.status.value,
                },
                received_at=envelope.received_at,
                account_uuid=delivery.account_uuid,
                rule=rule,
            )
        )
    return loaded


async def perform(config: Config, batch: list[EnvelopeWork]) -> list[Outcome]:
    """The effects of a batch, file writes together in one worker thread."""
    copies = [w for w in batch if w.default_rule is DefaultRule.COPY]
    written = await asyncio.to_thread(_write_copies, config.mailboxes_dir, copies)
    outcomes: list[Outcome] = []
    for work in batch:
        if work.default_rule is DefaultRule.COPY:
            outcomes.append(written[work.uuid])
        elif work.default_rule is DefaultRule.NOTIFY:
            if work.notify_email:
                detail = f"mail to {work.notify_email} queued"
                outcomes.append(Outcome(work, AttemptOutcome.NOTIFIED, detail))
            else:
                detail = "No notification email is configured."
                outcomes.append(Outcome(work, AttemptOutcome.FAILED, detail))
        else:
            outcomes.append(Outcome(work, AttemptOutcome.REJECTED, work.reject_reason))
    return outcomes


def _write_copies(mailboxes_dir: Path, copies: list[EnvelopeWork]) -> dict[str, Outcome]:
    results: dict[str, Outcome] = {}
    by_mailbox: dict[str, list[EnvelopeWork]] = {}
    for work in copies:
        if work.protocol is TransferProtocol.SFTP:
            by_mailbox.setdefault(work.mailbox_uuid, []).append(work)
        else:  # sent by the AS2 sender, queued when this outcome is recorded
            results[work.uuid] = Outcome(work, AttemptOutcome.QUEUED, f"{work.uuid}.xml")
    for mailbox_uuid, batch in by_mailbox.items():
        # Each mailbox on its own: one whose folders are broken fails alone.
        try:
            root = ensure_mailbox_root(mailboxes_dir, mailbox_uuid)
        except (OSError, DocbridgeError) as exc:
            for work in batch:
                failed = Outcome(work, AttemptOutcome.FAILED, f"Cannot write to inbox/: {exc}")
                results[work.uuid] = failed
            continue
        results.update(_write_to_inbox(root, batch))
    return results


def _write_to_inbox(root: Path, batch: list[EnvelopeWork]) -> dict[str, Outcome]:
    """The batch's files with one flush; if that fails, each file alone, so that one file
    that cannot be written (its name taken by a folder, say) fails alone."""
    try:
        write_files_atomically(root, [_inbox_file(w) for w in batch])
    except (OSError, DocbridgeError) as exc:
        if len(batch) == 1:
            failed = Outcome(batch[0], AttemptOutcome.FAILED, f"Cannot write to inbox/: {exc}")
            return {batch[0].uuid: failed}
        results: dict[str, Outcome] = {}
        for work in batch:
            results.update(_write_to_inbox(root, [work]))
        return results
    return {w.uuid: Outcome(w, AttemptOutcome.DELIVERED, f"inbox/{w.uuid}.xml") for w in batch}


def _inbox_file(work: EnvelopeWork) -> tuple[str, str, bytes]:
    return ("inbox", f"{work.uuid}.xml", work.xml.encode("utf-8"))


def fail(tx: Tx, job: Job, error: str, policy: jobs.RetryPolicy) -> None:
    """An envelope job failed outside the normal outcomes (a defect): its own error, on record."""
    state = jobs.fail(tx, job, error, policy)
    try:
        rule = f"default:{get_integration(tx, job.mailbox_uuid).form.default_rule.value}"
    except Exception:  # the integration itself may be what is broken (or the rule's load)
        rule = "engine"
    logs.append_activity(tx, job.mailbox_uuid, rule, state, envelope_uuid=job.ref, error=error)


@concurrent_write  # rows of its own claims; counters and logs by atomic statements
def record(
    tx: Tx,
    outcomes: list[Outcome],
    gone: list[Job],
    mail_sender: str,
    policy: jobs.RetryPolicy,
    keep_bytes: int,
    as2_domain: str = "docbridge",
) -> None:
    """Record every outcome and end every claim: a unit for ``Database.write`` (one
    transaction for the whole batch, the conversion log's entries included). The statements
    every envelope needs go as one batch each: on a networked store a round trip per envelope
    and statement would cost more than the work."""
    jobs.complete_many(tx, gone)
    entries: list[conversions.NewConversion] = []
    completed: list[str] = []
    done: list[Job] = []
    lines: list[logs.NewActivity] = []
    for outcome in outcomes:
        work = outcome.work
        entries.append(outcome.conversion or _default_entry(outcome))
        if outcome.status not in EFFECTS:
            state = jobs.fail(tx, work.job, outcome.detail, policy, permanent=outcome.permanent)
            lines.append(
                logs.NewActivity(
                    work.mailbox_uuid,
                    work.rule_label,
                    state,
                    envelope_uuid=work.uuid,
                    error=outcome.detail,
                )
            )
            continue
        if outcome.status is AttemptOutcome.REJECTED:
            envelopes.mark_rejected(tx, work.uuid, work.reject_reason)
        elif outcome.status is AttemptOutcome.QUEUED:
            # Completed when the partner's MDN acknowledges it (core.engine.as2_sending).
            _queue_for_partner(tx, work, outcome.detail, as2_domain)
        else:
            if outcome.status is AttemptOutcome.NOTIFIED:
                _queue_notification(tx, work, mail_sender)
            completed.append(work.uuid)
        done.append(work.job)
        lines.append(
            logs.NewActivity(
                work.mailbox_uuid,
                work.rule_label,
                outcome.status,
                envelope_uuid=work.uuid,
                file_name=outcome.detail if outcome.status in _FILE_OUTCOMES else None,
            )
        )
    conversions.record_many(tx, entries, keep_bytes)
    envelopes.mark_completed_many(tx, completed)
    jobs.complete_many(tx, done)
    logs.append_activities(tx, lines)


def _queue_notification(tx: Tx, work: EnvelopeWork, mail_sender: str) -> None:
    summary = dict(work.summary, status=EnvelopeStatus.COMPLETED.value)
    notification = build_notification(
        envelope=summary,
        mailbox_name=work.mailbox_name,
        recipient=work.notify_email,
        sender=mail_sender,
    )
    jobs.enqueue(tx, JobKind.MAIL, work.uuid, work.mailbox_uuid, notification.to_payload())


_FILE_OUTCOMES = (AttemptOutcome.DELIVERED, AttemptOutcome.QUEUED)


def _queue_for_partner(tx: Tx, work: EnvelopeWork, detail: str, domain: str) -> None:
    """The AS2 message for an envelope: its XML (default rule 1) or the rule's file."""
    ref = work.uuid if not work.reprocess else f"{work.uuid}#{work.job.payload['reprocess']}"
    if work.rule is None:
        source = {"source": "envelope", "envelope": work.uuid}
        filename = detail
    else:
        source = {"source": "file", "file": detail, "envelope": work.uuid}
        filename = detail.rpartition("/")[2]
    queue_message(tx, work.mailbox_uuid, ref, filename, source, domain)


def _default_entry(outcome: Outcome) -> conversions.NewConversion:
    """The conversion log's entry for an envelope no IN rule took (the default rule)."""
    work = outcome.work
    failed = outcome.status not in EFFECTS
    if failed:
        status = ConversionStatus.FAILED
    else:
        status = ConversionStatus.REPROCESSED if work.reprocess else ConversionStatus.PROCESSED
    return conversions.NewConversion(
        mailbox_uuid=work.mailbox_uuid,
        direction=Direction.IN,
        rule_uuid=None,
        rule_name=work.rule_label,
        status=status,
        envelope_uuid=work.uuid,
        file_name=outcome.detail if outcome.status is AttemptOutcome.DELIVERED else "",
        subject=work.summary.get("subject", ""),
        error=outcome.detail if failed else "",
        job_ref=work.job.ref,
    )
