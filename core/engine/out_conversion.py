"""Customer files in ``coutbox/`` through the OUT rules: file -> XML view -> rule -> envelope(s).

The conversion runs outside any transaction (view in a thread, the map in the worker pool);
then one transaction records every envelope it made, ends the file's claim and logs the
attempt, or nothing is recorded and the file goes to ``error/`` with the reason. Envelopes get
the uuid the map gave, else one derived from the file's job and their position, so a retry
after a crash makes the same envelopes, and the store refuses a second copy of any of them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from core.conversion.apply import (
    ConvertedEnvelope,
    Limits,
    content_text,
    convert_source,
    out_rule_for,
    stable_envelope_uuid,
)
from core.conversion.pool import TransformPool
from core.conversion.sources import SourceView, source_view
from core.engine.file_handler import FileWork, accept_outgoing, record_error
from core.errors import DocbridgeError
from core.models import AttemptOutcome, ConversionRule, ConversionStatus, Direction
from core.storage import accounts, conversions, jobs, logs
from core.storage import rules as rules_store
from core.storage.db import Tx

NO_RULE = (
    "No conversion rule matches this file: no enabled OUT rule's pattern is found in its name "
    "(or, for rules that match on content, in its text). Add or switch on a rule for it, or "
    "send envelope XML to outbox/ instead."
)


@dataclass(frozen=True)
class OutAttempt:
    """One coutbox file's conversion: the envelopes made, or why there are none."""

    work: FileWork
    rule: ConversionRule | None
    envelopes: list[ConvertedEnvelope] = field(default_factory=list)
    error: str | None = None
    status: ConversionStatus = ConversionStatus.PROCESSED

    def entry(self, status: ConversionStatus, error: str = "") -> conversions.NewConversion:
        output = b"".join(e.xml for e in self.envelopes) if self.envelopes else None
        return conversions.NewConversion(
            mailbox_uuid=self.work.job.mailbox_uuid,
            direction=Direction.OUT,
            rule_uuid=self.rule.uuid if self.rule else None,
            rule_name=self.rule.name if self.rule else "",
            status=status,
            envelope_uuid=",".join(
                stable_envelope_uuid(e.parsed, self.work.job.ref, i)
                for i, e in enumerate(self.envelopes)
            ),
            file_name=f"{self.work.folder}/{self.work.name}",
            subject=self.envelopes[0].parsed.subject if self.envelopes else "",
            error=error,
            job_ref=self.work.job.ref,
            input_name=self.work.name,
            input=self.work.data,
            output=output,
        )


@dataclass(frozen=True)
class OutRules:
    """A mailbox's enabled OUT rules, in order, and the latest version of their templates
    (what a rule that follows the latest version converts to)."""

    rules: list[ConversionRule]
    latest: dict[str, int]
    account_uuid: str = ""

    def version_for(self, rule: ConversionRule) -> int:
        pinned = rule.form.template_version
        return pinned if pinned is not None else self.latest.get(rule.form.template_uuid, 1)


def load_rules(tx: Tx, mailbox_uuid: str) -> OutRules:
    found = [
        rule
        for rule in rules_store.list_rules(tx, mailbox_uuid)
        if rule.form.enabled and rule.form.direction is Direction.OUT
    ]
    latest: dict[str, int] = {}
    for rule in found:
        template = accounts.get_template(tx, rule.form.template_uuid)
        if template is not None:
            latest[template.uuid] = template.latest_version
    mailbox = accounts.get_mailbox(tx, mailbox_uuid)
    return OutRules(found, latest, mailbox.account_uuid if mailbox else "")


async def convert(
    pool: TransformPool, limits: Limits, rules: OutRules, work: FileWork
) -> OutAttempt:
    """Find the file's rule and run it; every failure comes back as ``error`` (for error/)."""
    status = ConversionStatus.REPROCESSED if work.job.payload.get("reprocess") else None
    view: SourceView | None = None
    view_error: str | None = None
    try:
        view = await asyncio.to_thread(source_view, work.data, work.name)
    except DocbridgeError as exc:
        view_error = str(exc)
    rule = out_rule_for(rules.rules, work.name, lambda: content_text(work.data, view))
    if rule is None:
        return OutAttempt(work, None, error=NO_RULE)
    if view is None:
        return OutAttempt(
            work, rule, error=f"Rule '{rule.name}' cannot read this file: {view_error}"
        )
    try:
        made = await convert_source(
            pool,
            rule.form,
            view.xml,
            mailbox_uuid=work.job.mailbox_uuid,
            template_version=rules.version_for(rule),
            limits=limits,
        )
    except DocbridgeError as exc:
        return OutAttempt(work, rule, error=f"Rule '{rule.name}' failed: {exc}")
    return OutAttempt(work, rule, made, status=status or ConversionStatus.PROCESSED)


def take_in(tx: Tx, attempt: OutAttempt, keep_bytes: int) -> None:
    """Record every envelope the rule made, end the claim and log it: all or nothing.

    Raises :class:`EnvelopeRefused` when one envelope cannot be accepted (nothing recorded; the
    caller logs the failure with :func:`record_failure` after moving the file)."""
    assert attempt.rule is not None and attempt.envelopes
    job = attempt.work.job
    made: list[str] = []
    for index, envelope in enumerate(attempt.envelopes):
        envelope_uuid = stable_envelope_uuid(envelope.parsed, job.ref, index)
        error = accept_outgoing(tx, job.mailbox_uuid, envelope.parsed, envelope.xml, envelope_uuid)
        if error is not None:
            where = f"Envelope {index + 1} of {len(attempt.envelopes)}"
            # Raising rolls back the envelopes recorded so far in this transaction.
            raise EnvelopeRefused(
                f"Rule '{attempt.rule.name}' made an envelope docbridge cannot accept. "
                f"{where}: {error}"
            )
        made.append(envelope_uuid)
    jobs.complete(tx, job.id)
    conversions.record(tx, attempt.entry(attempt.status), keep_bytes)
    for envelope_uuid in made:
        logs.append_activity(
            tx,
            job.mailbox_uuid,
            f"rule:{attempt.rule.name}",
            AttemptOutcome.SENT,
            envelope_uuid=envelope_uuid,
            file_name=f"{attempt.work.folder}/{attempt.work.name}",
        )


class EnvelopeRefused(Exception):
    """An envelope a rule made was refused: the file's whole transaction rolls back, and the
    message is the reason for error/."""


def record_failure(tx: Tx, attempt: OutAttempt, reason: str, keep_bytes: int) -> None:
    """The file went to error/: its claim ends and the failed attempt is on the log."""
    record_error(tx, attempt.work, reason)
    conversions.record(tx, attempt.entry(ConversionStatus.FAILED, reason), keep_bytes)
