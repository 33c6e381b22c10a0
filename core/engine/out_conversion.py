"""Customer files in ``coutbox/`` through the OUT rules: file -> XML view -> rule -> envelope(s).

The conversion runs outside any transaction (view in a thread, the map in the worker pool);
then one transaction records every envelope it made, ends the file's claim and logs the
attempt, or nothing is recorded and the file goes to ``error/`` with the reason. Envelopes get
the uuid the map gave, else one derived from the file's job and their position, so a retry
after a crash makes the same envelopes, and the store refuses a second copy of any of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.conversion.apply import (
    ConvertedEnvelope,
    Limits,
    content_text,
    envelopes_from_output,
    out_rule_for,
    stable_envelope_uuid,
    transform_parameters,
)
from core.conversion.errors import XsltError
from core.conversion.pool import TransformItem, TransformPool
from core.conversion.sources import SourceView, looks_like_workbook, source_view
from core.conversion.xslt import XsltOutput
from core.engine.file_handler import FileWork, accept_outgoing, read_whole, record_error
from core.errors import DocbridgeError
from core.models import (
    AttemptOutcome,
    ConversionRule,
    ConversionStatus,
    Direction,
    MatchTarget,
)
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
            input_size=None if self.work.whole else self.work.size,
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


@dataclass(frozen=True)
class _Prepared:
    """A source read and matched: its rule and XML view, or the attempt's end already."""

    work: FileWork
    rule: ConversionRule | None = None
    view: bytes = b""
    ended: OutAttempt | None = None


async def convert_all(
    pool: TransformPool,
    limits: Limits,
    database: str,
    rules: Mapping[str, OutRules],
    works: list[FileWork],
    max_file_size: int,
) -> list[OutAttempt]:
    """Every source of a batch through its mailbox's OUT rules; every failure comes back as
    its attempt's ``error`` (for error/). Views and rule choice in one thread hop, the maps a
    rule at a time through the pool's batches, the outputs checked in one more hop."""
    prepared = await asyncio.to_thread(_prepare_all, rules, works, max_file_size)
    by_rule: dict[str, list[_Prepared]] = {}
    for item in prepared:
        if item.ended is None and item.rule is not None:
            by_rule.setdefault(item.rule.uuid, []).append(item)
    outputs: dict[int, XsltOutput | XsltError] = {}

    async def run(group: list[_Prepared]) -> None:
        form = group[0].rule.form  # type: ignore[union-attr]
        items = [_transform_item(p, rules, limits, database) for p in group]
        results = await pool.run_transforms(
            form.conversion_map, items, time_limit=limits.time_limit, max_output=limits.max_output
        )
        outputs.update({p.work.job.id: r for p, r in zip(group, results, strict=True)})

    await asyncio.gather(*(run(group) for group in by_rule.values()))
    return await asyncio.to_thread(_check_all, prepared, outputs)


def _prepare_all(
    rules: Mapping[str, OutRules], works: list[FileWork], max_file_size: int
) -> list[_Prepared]:
    return [_prepare(rules[w.job.mailbox_uuid], w, max_file_size) for w in works]


def _prepare(rules: OutRules, work: FileWork, max_file_size: int) -> _Prepared:
    if not work.whole:  # only its head is read: the rest only if a rule may take it
        if not _a_rule_may_take(rules, work):
            return _Prepared(work, ended=OutAttempt(work, None, error=NO_RULE))
        work = read_whole(work, max_file_size)
        if work.error is not None or work.gone:
            error = work.error or "The file disappeared while docbridge was reading it."
            return _Prepared(work, ended=OutAttempt(work, None, error=error))
    view: SourceView | None = None
    view_error = ""
    try:
        view = source_view(work.data, work.name)
    except DocbridgeError as exc:
        view_error = str(exc)
    rule = out_rule_for(rules.rules, work.name, lambda: content_text(work.data, view))
    if rule is None:
        return _Prepared(work, ended=OutAttempt(work, None, error=NO_RULE))
    if view is None:
        error = f"Rule '{rule.name}' cannot read this file: {view_error}"
        return _Prepared(work, rule, ended=OutAttempt(work, rule, error=error))
    return _Prepared(work, rule, view.xml)


def _a_rule_may_take(rules: OutRules, work: FileWork) -> bool:
    """Whether some rule may take a source of which only the head is read: its name, or the
    text content patterns search (the first MB, all in the head); a workbook's patterns search
    its XML view, so any content rule may take a workbook."""
    if looks_like_workbook(work.data):
        return out_rule_for(rules.rules, work.name, lambda: "") is not None or any(
            rule.form.match_target is MatchTarget.CONTENT for rule in rules.rules
        )
    return out_rule_for(rules.rules, work.name, lambda: content_text(work.data, None)) is not None


def _transform_item(
    prepared: _Prepared, rules: Mapping[str, OutRules], limits: Limits, database: str
) -> TransformItem:
    assert prepared.rule is not None
    mailbox_uuid = prepared.work.job.mailbox_uuid
    mailbox_rules = rules[mailbox_uuid]
    version = mailbox_rules.version_for(prepared.rule)
    parameters = transform_parameters(mailbox_uuid, prepared.rule.form.template_uuid, version)
    lookups = limits.for_account(database, mailbox_rules.account_uuid).lookups
    return TransformItem(prepared.view, parameters, lookups)


def _check_all(
    prepared: list[_Prepared], outputs: Mapping[int, XsltOutput | XsltError]
) -> list[OutAttempt]:
    return [p.ended or _checked(p, outputs[p.work.job.id]) for p in prepared]


def _checked(prepared: _Prepared, output: XsltOutput | XsltError) -> OutAttempt:
    work, rule = prepared.work, prepared.rule
    assert rule is not None
    try:
        if isinstance(output, XsltError):
            raise output
        made = envelopes_from_output(output.content, rule.form, work.job.mailbox_uuid)
    except DocbridgeError as exc:
        return OutAttempt(work, rule, error=f"Rule '{rule.name}' failed: {exc}")
    reprocess = bool(work.job.payload.get("reprocess"))
    status = ConversionStatus.REPROCESSED if reprocess else ConversionStatus.PROCESSED
    return OutAttempt(work, rule, made, status=status)


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
    jobs.complete(tx, job)
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
