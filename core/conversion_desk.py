"""The conversion desk: what the rule form, the conversion-log screen and the CLI do with rules
beyond storing them — Run a form on an example, show a source's XML view, make an example
envelope or a skeleton map, export and import rules, read the conversion log and reprocess it.

Run uses the same code as the engine (:mod:`core.conversion.apply`) in its own worker pool, so a
successful Run means the engine converts that example the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from core.clock import utc_datetime, utc_days_ago
from core.config import Config
from core.conversion.apply import (
    ConversionFailed,
    Limits,
    convert_envelope,
    convert_source,
)
from core.conversion.errors import XsltError
from core.conversion.pool import TransformPool
from core.conversion.sources import SourceView, source_view
from core.conversion.templates import example_envelope_xml, skeleton_stylesheet
from core.envelope_checks import check_envelope_against_template, check_field_values
from core.envelope_xml import parse_envelope_xml
from core.errors import DocbridgeError, FieldErrors, InvalidInput, NotFound
from core.models import (
    ConversionFilter,
    ConversionPayload,
    ConversionRecord,
    ConversionRule,
    Direction,
    JobKind,
    ReprocessResult,
    RuleForm,
    RunResult,
)
from core.naming import NamingContext, render_file_name
from core.rule_json import form_from_json, form_to_json
from core.storage import accounts, conversions, jobs, logs, rules
from core.storage.connection import Tx
from core.storage.store import Store


class ConversionDesk:
    def __init__(self, db: Store, config: Config, actor: str) -> None:
        self.db = db
        self.config = config
        self.actor = actor
        self._pool: TransformPool | None = None

    @property
    def pool(self) -> TransformPool:
        """Started on the first Run: a page that never runs a rule starts no process."""
        if self._pool is None:
            self._pool = TransformPool(
                workers=1,
                time_limit=float(self.config.conversion.time_limit_seconds),
                max_output=self.config.conversion.max_output,
            )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # -- Run ---------------------------------------------------------------------------------

    async def run(self, mailbox_uuid: str, form: RuleForm) -> RunResult:
        """Run ``form`` on its example (``form.example_source``: a source file for OUT, an
        envelope XML for IN). Never raises for what the user typed: the result says."""
        if not form.conversion_map.strip():
            return RunResult(False, form.direction, error="Write a conversion map first.")
        if not form.example_source:
            what = (
                "an example source file"
                if form.direction is Direction.OUT
                else "an example envelope"
            )
            return RunResult(False, form.direction, error=f"Give {what} to run the rule on.")
        try:
            if form.direction is Direction.IN:
                return await self._run_in(mailbox_uuid, form)
            return await self._run_out(mailbox_uuid, form)
        except XsltError as exc:
            return RunResult(False, form.direction, error=str(exc), line=exc.line)
        except DocbridgeError as exc:
            return RunResult(False, form.direction, error=str(exc))

    async def _run_in(self, mailbox_uuid: str, form: RuleForm) -> RunResult:
        parsed = await asyncio.to_thread(parse_envelope_xml, form.example_source)
        limits = await self._limits(mailbox_uuid)
        converted = await convert_envelope(self.pool, form, form.example_source, parsed, limits)
        context = NamingContext.for_envelope(
            parsed, mailbox_uuid=mailbox_uuid, received_at=utc_datetime()
        )
        file_name = render_file_name(form.naming_pattern, context)
        text = converted.content.decode(_codec(converted.encoding), errors="replace")
        return RunResult(True, Direction.IN, text=text, file_name=file_name)

    async def _run_out(self, mailbox_uuid: str, form: RuleForm) -> RunResult:
        view = await self.view_source(form.example_source, form.example_source_name or "example")
        version = form.template_version or await self._latest_version(form.template_uuid)
        made = await convert_source(
            self.pool,
            form,
            view.xml,
            mailbox_uuid=mailbox_uuid,
            template_version=version,
            limits=await self._limits(mailbox_uuid),
        )
        for index, envelope in enumerate(made):
            try:
                await self.db.read(check_envelope_against_template, envelope.parsed)
                await self.db.read(check_field_values, envelope.parsed)
            except DocbridgeError as exc:
                where = f"Envelope {index + 1} of {len(made)}" if len(made) > 1 else "The envelope"
                raise ConversionFailed(
                    f"{where} the conversion map produced is not valid: {exc}"
                ) from None
        texts = tuple(e.xml.decode("utf-8", errors="replace") for e in made)
        return RunResult(
            True,
            Direction.OUT,
            text="\n".join(texts),
            envelopes=texts,
            source_details=view.details,
        )

    async def _limits(self, mailbox_uuid: str) -> Limits:
        """Look-up functions answer from the account of the mailbox the rule runs for."""
        mailbox = await self.db.read(accounts.get_mailbox, mailbox_uuid)
        if mailbox is None:
            raise NotFound(f"No mailbox {mailbox_uuid}.")
        return Limits().for_account(self.config.lookup_database, mailbox.account_uuid)

    async def view_source(self, data: bytes, file_name: str) -> SourceView:
        """The XML view an OUT rule's map reads (raises InvalidInput naming format and place)."""
        return await asyncio.to_thread(source_view, data, file_name)

    # -- examples and skeletons ----------------------------------------------------------------

    async def example_envelope(
        self, mailbox_uuid: str, template_uuid: str, version: int | None
    ) -> str:
        """An envelope of the template version with every field filled with a placeholder, as
        if a partner sent it to this mailbox: the IN form's example, to be edited."""
        template_version = await self._template_version(template_uuid, version)
        template = await self.db.read(accounts.get_template, template_uuid)
        name = template.name if template else "document"
        # Serializing loads the envelope schema (file reads): off the event loop.
        return await asyncio.to_thread(example_envelope_xml, template_version, name, mailbox_uuid)

    async def skeleton(self, template_uuid: str, version: int | None) -> str:
        """An XSLT 2.0 map that writes every field and field group of the template version
        with placeholders (the platform's magic wand), for an OUT rule to start from."""
        return skeleton_stylesheet(await self._template_version(template_uuid, version))

    async def _template_version(self, template_uuid: str, version: int | None) -> Any:
        number = version or await self._latest_version(template_uuid)
        found = await self.db.read(accounts.get_template_version, template_uuid, number)
        if found is None:
            raise NotFound(f"Template {template_uuid} has no version {number}.")
        return found

    async def _latest_version(self, template_uuid: str) -> int:
        template = await self.db.read(accounts.get_template, template_uuid)
        if template is None:
            raise NotFound(f"No template {template_uuid} in this account.", "Choose a template.")
        return template.latest_version

    # -- rules as JSON -------------------------------------------------------------------------

    async def resolve_rule(self, reference: str, mailbox_uuid: str | None = None) -> ConversionRule:
        """A rule by uuid, or by name (in ``mailbox_uuid``, or in any mailbox if unique)."""
        return await self.db.read(_resolve_rule, reference, mailbox_uuid)

    async def export_rule(self, rule_uuid: str) -> dict[str, Any]:
        rule = await self.db.read(rules.get_rule, rule_uuid)
        if rule is None:
            raise NotFound(f"No conversion rule {rule_uuid}.")
        return form_to_json(rule.form)

    def parse_rule_json(self, data: Mapping[str, Any]) -> RuleForm:
        """A rule form from its JSON object; FieldErrors names each bad key."""
        return form_from_json(data)

    async def check_compiles(self, form: RuleForm) -> None:
        """Raise FieldErrors when the form's map does not compile (refused constructs too)."""
        try:
            await asyncio.to_thread(_compile, form.conversion_map)
        except XsltError as exc:
            raise FieldErrors({"conversion_map": str(exc)}) from None

    # -- the conversion log --------------------------------------------------------------------

    async def records(self, query: ConversionFilter) -> list[ConversionRecord]:
        return await self.db.read(conversions.list_records, query)

    async def count(self, query: ConversionFilter) -> int:
        return await self.db.read(conversions.count_records, query)

    async def get(self, conversion_id: int) -> ConversionRecord:
        record = await self.db.read(conversions.get_record, conversion_id)
        if record is None:
            raise NotFound(f"No conversion record {conversion_id}.")
        return record

    async def payload(self, conversion_id: int) -> ConversionPayload | None:
        return await self.db.read(conversions.get_payload, conversion_id)

    async def no_rule_count(self, mailbox_uuid: str) -> int:
        return await self.db.read(conversions.no_rule_count, mailbox_uuid)

    async def reprocess(self, conversion_ids: list[int]) -> ReprocessResult:
        """Run the selected records' inputs through the rules again (REPROCESSED on success).

        IN: the envelope is queued again. OUT: the kept input is handed to the engine again as
        if dropped in coutbox/ (a record whose input was too large to keep cannot be).
        """
        queued: list[int] = []
        skipped: list[tuple[int, str]] = []
        for conversion_id in dict.fromkeys(conversion_ids):
            record = await self.db.read(conversions.get_record, conversion_id)
            if record is None:
                skipped.append((conversion_id, "no such record"))
                continue
            why = await self._reprocess_one(record)
            if why is None:
                queued.append(conversion_id)
            else:
                skipped.append((conversion_id, why))
        return ReprocessResult(tuple(queued), tuple(skipped))

    async def _reprocess_one(self, record: ConversionRecord) -> str | None:
        if record.direction is Direction.IN:
            if not record.envelope_uuid:
                return "it names no envelope"
            return await self.db.write(_requeue_envelope, self.actor, record)
        payload = await self.db.read(conversions.get_payload, record.id)
        if payload is None or (payload.input_size and not payload.input):
            return (
                "its input was not kept (larger than conversion.keep_bytes, or older than "
                "conversion.keep_days); move the file from error/ back to coutbox/ instead"
            )
        from core.engine import file_handler  # the engine's claim layout, not its loops

        claim = await asyncio.to_thread(
            file_handler.stage_claim,
            self.config.mailboxes_dir,
            record.mailbox_uuid,
            payload.input_name or record.file_name.rpartition("/")[2],
            payload.input,
        )
        await self.db.write(_queue_claim, self.actor, record, claim)
        return None

    async def prune(self) -> int:
        """Drop kept inputs and outputs older than ``conversion.keep_days``."""
        cutoff = utc_days_ago(self.config.conversion.keep_days)
        return await self.db.write(conversions.prune_payloads, cutoff)


def _codec(encoding: str) -> str:
    try:
        "".encode(encoding)
    except LookupError:
        return "utf-8"
    return encoding


def _compile(text: str) -> None:
    from core.conversion.xslt import compile_stylesheet

    compile_stylesheet(text)


def _resolve_rule(tx: Tx, reference: str, mailbox_uuid: str | None) -> ConversionRule:
    found = rules.get_rule(tx, reference.strip().lower())
    if found is not None:
        return found
    candidates = rules.find_rules_by_name(tx, reference.strip(), mailbox_uuid)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise NotFound(
            f"No conversion rule {reference!r}.",
            "Give the rule's uuid or exact name (see 'docbridge rule list MAILBOX').",
        )
    raise InvalidInput(
        f"{len(candidates)} rules are named {reference!r}.",
        "Give the mailbox (--mailbox) or the rule's uuid.",
    )


def _requeue_envelope(tx: Tx, actor: str, record: ConversionRecord) -> str | None:
    if not jobs.requeue(tx, JobKind.ENVELOPE, record.envelope_uuid, {"reprocess": record.id}):
        return "its envelope is being handled right now, or is gone"
    logs.append_audit(tx, actor, "conversion.reprocess", record.mailbox_uuid, {"record": record.id})
    return None


def _queue_claim(tx: Tx, actor: str, record: ConversionRecord, claim: Any) -> None:
    payload = dict(claim.payload, reprocess=record.id)
    jobs.enqueue(tx, JobKind.FILE, claim.ref, record.mailbox_uuid, payload)
    logs.append_audit(tx, actor, "conversion.reprocess", record.mailbox_uuid, {"record": record.id})
