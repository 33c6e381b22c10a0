"""Applying conversion rules (SPEC §7): which rule takes an envelope or a file, and what it makes.

IN: an incoming envelope goes to the first enabled IN rule, top to bottom, whose template (and
pinned version) matches; its conversion map turns the envelope XML into a file's bytes and its
naming pattern names the file. OUT: a customer file goes to the first enabled OUT rule whose
regular expression is *found* in the file name, or in the file's text when the rule says so;
its conversion map turns the file's XML view into one envelope, or several under one root when
the rule may produce multiple envelopes. Each produced envelope is checked like any envelope
from ``outbox/`` (schema, sender = this mailbox, the rule's template); the template's own field
checks need the store and happen where the envelopes are recorded.

Everything here is pure or runs in the conversion worker pool: the engine, the rule form's Run
and ``docbridge rule run`` share it, so what a Run shows is what the engine does.
"""

from __future__ import annotations

import asyncio
import codecs
import re
import uuid as uuid_module
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from lxml import etree

from core.conversion.errors import XsltError
from core.conversion.extensions import LookupContext
from core.conversion.pool import TransformItem, TransformPool
from core.conversion.sources import SourceKind, SourceView
from core.envelope_checks import check_sender_is
from core.envelope_xml import EnvelopeXml, StoredEnvelope, parse_envelope_xml
from core.errors import DocbridgeError, InvalidInput
from core.models import ConversionRule, Direction, MatchTarget, RuleForm
from core.safe_xml import safe_parser

CONTENT_MATCH_BYTES = 1024 * 1024
_NAMESPACE = uuid_module.UUID("0b6f5d1e-2c1a-4f7e-9a53-6d2f8e1c4b70")


class ConversionFailed(InvalidInput):
    """A rule could not convert its input; the message says what failed and where."""


# --- which rule --------------------------------------------------------------------------------


def in_rule_for(
    rules: Sequence[ConversionRule], template_uuid: str, template_version: int
) -> ConversionRule | None:
    """The first enabled IN rule for this template and version (None: the default rule)."""
    for rule in rules:
        form = rule.form
        if not form.enabled or form.direction is not Direction.IN:
            continue
        if form.template_uuid.lower() != template_uuid.lower():
            continue
        if form.template_version is None or form.template_version == template_version:
            return rule
    return None


def out_rule_for(
    rules: Sequence[ConversionRule], file_name: str, content: Callable[[], str]
) -> ConversionRule | None:
    """The first enabled OUT rule whose pattern is found in the file name, or in ``content()``
    (the file's text, called at most once and only when a rule matches on content)."""
    text: str | None = None
    for rule in rules:
        form = rule.form
        if not form.enabled or form.direction is not Direction.OUT or not form.match_pattern:
            continue
        try:
            pattern = re.compile(form.match_pattern)
        except re.error:
            continue  # the form refuses such a pattern; an old row must not stop the others
        if form.match_target is MatchTarget.CONTENT:
            if text is None:
                text = content()
            subject = text
        else:
            subject = file_name
        if pattern.search(subject):
            return rule
    return None


def content_text(data: bytes, view: SourceView | None) -> str:
    """What content patterns search: the decoded text of the first MB of the file; for a
    workbook (binary on disk) the first MB of its XML view."""
    if view is not None and view.kind in (SourceKind.XLSX, SourceKind.XLSM, SourceKind.XLS):
        data = view.xml
    head = data[:CONTENT_MATCH_BYTES]
    for codec in ("utf-8-sig", "cp1252"):
        try:
            return codecs.decode(head, codec)
        except UnicodeDecodeError:
            continue
    return head.decode("latin-1")


# --- running a rule ----------------------------------------------------------------------------


def transform_parameters(sender: str, template_uuid: str, version: int) -> dict[str, str]:
    return {
        "SENDER_MAILBOX": sender,
        "TEMPLATE_UUID": template_uuid,
        "TEMPLATE_VERSION": str(version),
    }


@dataclass(frozen=True)
class ConvertedFile:
    """What an IN rule made of an envelope (the name comes from the naming pattern)."""

    content: bytes
    encoding: str
    method: str


@dataclass(frozen=True)
class ConvertedEnvelope:
    parsed: EnvelopeXml
    xml: bytes


@dataclass(frozen=True)
class Limits:
    """Per-transform bounds (config ``[conversion]``; None: the pool's own defaults) and
    where the platform's look-up functions find the account's data."""

    time_limit: float | None = None
    max_output: int | None = None
    lookups: LookupContext | None = None

    def for_account(self, database: str, account_uuid: str) -> Limits:
        return replace(self, lookups=LookupContext(database, account_uuid))


async def convert_envelope(
    pool: TransformPool, form: RuleForm, xml: bytes, parsed: EnvelopeXml, limits: Limits
) -> ConvertedFile:
    """Run an IN rule's map on an envelope; XSLT errors come through as they are (with line)."""
    sender = parsed.role_mailbox("sender") or ""
    parameters = transform_parameters(sender, parsed.template_uuid, parsed.template_version)
    output = await pool.run_transform(
        form.conversion_map,
        xml,
        parameters,
        time_limit=limits.time_limit,
        max_output=limits.max_output,
        lookups=limits.lookups,
    )
    return ConvertedFile(output.content, output.encoding, output.method)


def stored_envelope_item(
    xml: bytes, stored: StoredEnvelope, lookups: LookupContext | None
) -> TransformItem:
    """A stored envelope as one item of :func:`convert_envelopes` (the envelope's tree is not
    kept: only its bytes and the map's parameters)."""
    sender = stored.sender or ""
    parameters = transform_parameters(sender, stored.template_uuid, stored.template_version)
    return TransformItem(xml, parameters, lookups)


async def convert_envelopes(
    pool: TransformPool, form: RuleForm, items: Sequence[TransformItem], limits: Limits
) -> list[ConvertedFile | XsltError]:
    """:func:`convert_envelope` for many envelopes of one rule at once, each item with its own
    look-ups (``limits.lookups`` is not used; see :func:`stored_envelope_item`): one outcome
    per envelope, in order, so one envelope's failure is its own."""
    outcomes = await pool.run_transforms(
        form.conversion_map, items, time_limit=limits.time_limit, max_output=limits.max_output
    )
    return [
        o if isinstance(o, XsltError) else ConvertedFile(o.content, o.encoding, o.method)
        for o in outcomes
    ]


async def convert_source(
    pool: TransformPool,
    form: RuleForm,
    view: bytes,
    *,
    mailbox_uuid: str,
    template_version: int,
    limits: Limits,
) -> list[ConvertedEnvelope]:
    """Run an OUT rule's map on a source's XML view; every envelope it makes is checked."""
    parameters = transform_parameters(mailbox_uuid, form.template_uuid, template_version)
    output = await pool.run_transform(
        form.conversion_map,
        view,
        parameters,
        time_limit=limits.time_limit,
        max_output=limits.max_output,
        lookups=limits.lookups,
    )
    # Parsing and schema checks are CPU work: off the event loop.
    return await asyncio.to_thread(envelopes_from_output, output.content, form, mailbox_uuid)


def envelopes_from_output(
    content: bytes, form: RuleForm, mailbox_uuid: str
) -> list[ConvertedEnvelope]:
    """The envelope(s) in a map's output, each parsed and checked; ConversionFailed names
    which one failed and why."""
    parts = split_envelopes(content, form.multiple_envelopes)
    converted: list[ConvertedEnvelope] = []
    for index, part in enumerate(parts):
        where = f"Envelope {index + 1} of {len(parts)}" if len(parts) > 1 else "The envelope"
        try:
            parsed = parse_envelope_xml(part)
            check_sender_is(parsed, mailbox_uuid)
            _check_template(parsed, form)
        except DocbridgeError as exc:
            raise ConversionFailed(
                f"{where} the conversion map produced is not valid: {exc}",
                "Correct the conversion map (Run it on an example in the rule form).",
            ) from None
        converted.append(ConvertedEnvelope(parsed, part))
    return converted


def split_envelopes(content: bytes, multiple: bool) -> list[bytes]:
    """One envelope, or (``multiple``) every ``<envelope>`` child of the output's root."""
    try:
        root = etree.fromstring(content, safe_parser())
    except etree.XMLSyntaxError as exc:
        raise ConversionFailed(
            f"The conversion map's output is not XML: {exc}",
            'An OUT rule must produce envelope XML (xsl:output method="xml").',
        ) from None
    if root.tag == "envelope":
        return [content]
    if not multiple:
        raise ConversionFailed(
            f"The conversion map produced <{root.tag}>, not an <envelope>",
            "Produce one <envelope>, or switch on 'rule can produce multiple envelopes' and "
            "put the envelopes under one root element.",
        )
    children = [child for child in root if child.tag == "envelope"]
    if not children:
        raise ConversionFailed(
            f"The conversion map produced <{root.tag}> with no <envelope> in it",
            "Put each envelope as a child <envelope> of the root element.",
        )
    return [etree.tostring(child, encoding="UTF-8", xml_declaration=True) for child in children]


def _check_template(parsed: EnvelopeXml, form: RuleForm) -> None:
    if parsed.template_uuid != form.template_uuid.lower():
        raise InvalidInput(
            f"it names template {parsed.template_uuid}, and the rule is for template "
            f"{form.template_uuid}",
            "Set templateUuid from the TEMPLATE_UUID parameter.",
        )
    if form.template_version is not None and parsed.template_version != form.template_version:
        raise InvalidInput(
            f"it names template version {parsed.template_version}, and the rule is pinned to "
            f"version {form.template_version}",
            "Set templateVersion from the TEMPLATE_VERSION parameter.",
        )


def stable_envelope_uuid(parsed: EnvelopeXml, job_ref: str, index: int) -> str:
    """The uuid the XSLT gave, else one derived from the source file's job and the envelope's
    position: a retry of the same file makes the same uuids, never a second envelope."""
    return parsed.uuid or str(uuid_module.uuid5(_NAMESPACE, f"{job_ref}#{index}"))
