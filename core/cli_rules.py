"""``docbridge`` subcommands of the conversion rules (issue 9, "Conversion log"): list, export,
import and run rules, show a source file's XML view, read the conversion log and reprocess it.

Everything goes through the service (:class:`core.service.Service` and its conversion desk);
errors are domain errors that :func:`core.cli.main` prints as one line each, exit 1. Data a
command produces (envelope XML, a converted file, an XML view) goes to stdout as it is, so it
can be redirected to a file; what describes it (file name, what the source was read as) goes to
stderr. On a terminal, control characters in that data are shown escaped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from core.cli_output import Handler, page_limit, page_offset, print_json, say, whole_number
from core.errors import FieldErrors, InvalidInput, NotFound
from core.files import MAX_EXAMPLE_BYTES, read_regular_file
from core.models import (
    ConversionFilter,
    ConversionRecord,
    ConversionRule,
    ConversionStatus,
    Direction,
    RuleForm,
)
from core.rule_json import form_to_json
from core.service import Service
from core.text import printable


def add_rule_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``rule``, ``source``, ``conversions`` and ``reprocess`` on ``commands`` (the
    top-level subparsers; ``common`` carries ``--data-dir``)."""
    rule = commands.add_parser("rule", parents=[common], help="conversion rules")
    rule_commands = rule.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = rule_commands.add_parser(
        "list", parents=[common], help="a mailbox's rules in order, with their counters"
    )
    listing.add_argument("mailbox", metavar="MAILBOX", help="uuid or name")
    listing.add_argument("--json", action="store_true")

    export = rule_commands.add_parser("export", parents=[common], help="a rule as JSON on stdout")
    export.add_argument("rule", metavar="RULE", help="uuid or name")
    export.add_argument("--mailbox", metavar="MAILBOX", help="where to look the name up")

    importer = rule_commands.add_parser(
        "import", parents=[common], help="add a rule from its JSON (checked as the form checks)"
    )
    importer.add_argument("mailbox", metavar="MAILBOX", help="uuid or name")
    importer.add_argument("file", metavar="FILE.json", type=Path)
    importer.add_argument("--json", action="store_true", help="the stored rule as JSON")

    run = rule_commands.add_parser(
        "run",
        parents=[common],
        help="run a rule on a source file (OUT) or an envelope XML (IN); changes nothing",
    )
    run.add_argument(
        "rule",
        metavar="RULE_OR_JSON",
        help="a rule's uuid or name, or the path of a rule JSON file (an existing *.json file)",
    )
    run.add_argument("--source", metavar="FILE", type=Path, required=True)
    run.add_argument(
        "--mailbox",
        metavar="MAILBOX",
        help="the mailbox a JSON rule runs as (SENDER_MAILBOX); where to look a name up",
    )
    run.add_argument("--json", action="store_true")

    source = commands.add_parser("source", parents=[common], help="source files")
    source_commands = source.add_subparsers(dest="action", required=True, metavar="ACTION")
    view = source_commands.add_parser(
        "view", parents=[common], help="the XML view an OUT rule's map reads (details on stderr)"
    )
    view.add_argument("file", metavar="FILE", type=Path)
    view.add_argument("--json", action="store_true", help="kind, details and xml in one object")

    log = commands.add_parser(
        "conversions", parents=[common], help="the conversion log, newest first"
    )
    log.add_argument("--mailbox", metavar="MAILBOX")
    log.add_argument("--rule", metavar="RULE", help="uuid or name")
    log.add_argument(
        "--no-rule", action="store_true", help="only attempts no rule took (default rule, error/)"
    )
    log.add_argument("--status", metavar="STATUS", help="processed, reprocessed or failed")
    log.add_argument(
        "--limit", type=page_limit, default=200, metavar="N", help="at most N (default 200)"
    )
    log.add_argument("--offset", type=page_offset, default=0, metavar="N", help="skip N newest")
    log.add_argument("--json", action="store_true", help="an object: total, limit, offset, items")

    reprocess = commands.add_parser(
        "reprocess",
        parents=[common],
        help="run conversion records through the rules again (ids from 'docbridge conversions')",
    )
    reprocess.add_argument("ids", metavar="ID", nargs="+", type=_record_id)
    reprocess.add_argument("--json", action="store_true")


def _record_id(text: str) -> int:
    return whole_number(text, 1, 2**62, "of 1 or more (a conversion record's id)")


# -- rules ----------------------------------------------------------------------------------


async def _rule_list(service: Service, args: argparse.Namespace) -> int:
    mailbox = await service.resolve_mailbox(args.mailbox)
    found = await service.list_rules(mailbox.uuid)
    if args.json:
        print_json([_rule_json(r) for r in found])
        return 0
    for r in found:
        state = "on " if r.form.enabled else "off"
        counters = f"ok {r.success_count}, failed {r.failure_count}"
        say(
            f"{r.position:>3}  {r.uuid}  {r.form.direction.value:<3}  {state}  {r.form.name}  "
            f"({counters})"
        )
    if not found:
        say(f"{mailbox.name} has no conversion rules.", err=True)
    return 0


def _rule_json(rule: ConversionRule) -> dict[str, Any]:
    return {
        "uuid": rule.uuid,
        "mailbox": rule.mailbox_uuid,
        "position": rule.position,
        **form_to_json(rule.form),
        "success_count": rule.success_count,
        "failure_count": rule.failure_count,
        "created_at": rule.created_at,
        "updated_at": rule.updated_at,
    }


async def _rule_export(service: Service, args: argparse.Namespace) -> int:
    mailbox_uuid = await _mailbox_uuid(service, args.mailbox)
    rule = await service.conversions.resolve_rule(args.rule, mailbox_uuid)
    print_json(await service.conversions.export_rule(rule.uuid))
    return 0


async def _rule_import(service: Service, args: argparse.Namespace) -> int:
    mailbox = await service.resolve_mailbox(args.mailbox)
    form = await _read_rule_file(service, args.file)
    try:
        await service.conversions.check_compiles(form)
    except FieldErrors as exc:
        # Reported with the form's own checks, so one try shows everything to fix.
        templates = {t.uuid: t for t in await service.list_templates(mailbox.account_uuid)}
        errors = service.validate_rule_form(form, templates.get(form.template_uuid))
        raise FieldErrors({**errors, **exc.errors}) from None
    rule = await service.create_rule(mailbox.uuid, form)
    if args.json:
        print_json(_rule_json(rule))
    else:
        say(rule.uuid)
        state = "enabled" if rule.form.enabled else "disabled"
        say(f"{mailbox.name}: rule '{rule.form.name}' imported ({state})", err=True)
    return 0


async def _read_rule_file(service: Service, path: Path) -> RuleForm:
    """The rule form a rule JSON file describes: not JSON, or a bad key, is an error."""
    data = await asyncio.to_thread(
        read_regular_file,
        str(path),
        MAX_EXAMPLE_BYTES,
        "A rule JSON file is never that large; check that this is the right file.",
        "a rule JSON file (from 'docbridge rule export')",
    )
    hint = "Give a rule as exported by 'docbridge rule export'."
    try:
        parsed = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text.", hint) from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{path} is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).", hint
        ) from None
    except (ValueError, RecursionError):
        raise InvalidInput(f"{path} is not JSON that can be read.", hint) from None
    return service.conversions.parse_rule_json(parsed)


async def _rule_run(service: Service, args: argparse.Namespace) -> int:
    mailbox_uuid = await _mailbox_uuid(service, args.mailbox)
    form, mailbox_uuid = await _rule_to_run(service, args.rule, mailbox_uuid)
    data = await service.read_example_source(str(args.source))
    form = replace(form, example_source=data, example_source_name=args.source.name)
    result = await service.conversions.run(mailbox_uuid, form)
    if args.json:
        print_json(
            {
                "ok": result.ok,
                "direction": result.direction.value.lower(),
                "file_name": result.file_name,
                "text": result.text,
                "envelopes": list(result.envelopes),
                "source_details": result.source_details,
                "error": result.error,
                "line": result.line,
            }
        )
    if not result.ok:
        where = f" (conversion map line {result.line})" if result.line else ""
        if result.line and f"line {result.line}" in result.error:
            where = ""
        sys.stdout.flush()
        say(f"docbridge: {result.error}{where}", err=True)
        return 1
    if args.json:
        return 0
    if result.direction is Direction.IN:
        say(f"file name: {result.file_name}", err=True)
    else:
        count = len(result.envelopes)
        say(
            f"{count} envelope{'s' if count != 1 else ''}; source read as {result.source_details}",
            err=True,
        )
    _write_data(result.text.encode("utf-8"))
    return 0


async def _rule_to_run(
    service: Service, reference: str, mailbox_uuid: str | None
) -> tuple[RuleForm, str]:
    """The form to run and the mailbox it runs as.

    RULE_OR_JSON is a rule JSON file when it ends in ``.json`` and a file is there (a rule whose
    name looks like a file name is still reachable by its uuid); otherwise a stored rule's uuid
    or name. A JSON rule runs as ``--mailbox``; a stored one as its own mailbox.
    """
    path = Path(reference)
    if reference.lower().endswith(".json") and await asyncio.to_thread(_exists, reference):
        if mailbox_uuid is None:
            raise InvalidInput(
                "A rule from a JSON file needs the mailbox it runs as.",
                "Add --mailbox MAILBOX (its uuid becomes SENDER_MAILBOX).",
            )
        return await _read_rule_file(service, path), mailbox_uuid
    try:
        rule = await service.conversions.resolve_rule(reference, mailbox_uuid)
    except NotFound:
        if reference.lower().endswith(".json") or os.sep in reference:
            raise NotFound(
                f"There is no file at {path} and no conversion rule {reference!r}.",
                "Give the path of a rule JSON file, or a rule's uuid or name.",
            ) from None
        raise
    if mailbox_uuid is not None and rule.mailbox_uuid != mailbox_uuid:
        raise InvalidInput(
            f"Rule {rule.form.name!r} belongs to another mailbox ({rule.mailbox_uuid}).",
            "Leave out --mailbox: a stored rule runs as its own mailbox.",
        )
    return rule.form, rule.mailbox_uuid


def _exists(name: str) -> bool:
    return os.path.exists(os.path.expanduser(name))


async def _source_view(service: Service, args: argparse.Namespace) -> int:
    data = await service.read_example_source(str(args.file))
    view = await service.conversions.view_source(data, args.file.name)
    if args.json:
        print_json(
            {
                "kind": str(view.kind),
                "details": view.details,
                "xml": view.xml.decode("utf-8", errors="replace"),
            }
        )
        return 0
    say(f"{args.file.name}: {view.details}", err=True)
    _write_data(view.xml)
    return 0


def _write_data(data: bytes) -> None:
    """A document on stdout: as it is into a pipe or a file, escaped line by line on a
    terminal (an escape sequence in a partner's file must not rewrite the screen)."""
    sys.stdout.flush()
    if sys.stdout.isatty():
        text = data.decode("utf-8", errors="replace")
        for line in text.splitlines():
            print(printable(line))
        return
    sys.stdout.buffer.write(data)
    if data and not data.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")
    sys.stdout.buffer.flush()


# -- the conversion log ---------------------------------------------------------------------


async def _conversions(service: Service, args: argparse.Namespace) -> int:
    mailbox_uuid = await _mailbox_uuid(service, args.mailbox)
    rule_uuid = await _rule_filter(service, args.rule, mailbox_uuid) if args.rule else None
    status = _status(args.status) if args.status else None
    if rule_uuid and args.no_rule:
        raise InvalidInput("Give --rule or --no-rule, not both.")
    query = ConversionFilter(
        mailbox_uuid=mailbox_uuid,
        rule_uuid=rule_uuid,
        no_rule=args.no_rule,
        status=status,
        limit=args.limit,
        offset=args.offset,
    )
    records = await service.conversions.records(query)
    total = await service.conversions.count(query)
    if args.json:
        print_json(
            {
                "total": total,
                "limit": args.limit,
                "offset": args.offset,
                "items": [_record_json(r) for r in records],
            }
        )
        return 0
    for r in records:
        what = r.file_name or r.envelope_uuid or "-"
        error = f"  {r.error}" if r.error else ""
        say(
            f"{r.id:>6}  {r.at}  {r.status.value:<11}  {r.direction.value:<3}  "
            f"{r.rule_name or '(no rule)'}  {what}{error}"
        )
    sys.stdout.flush()
    if not total:
        say("No conversion records match.", err=True)
    else:
        first, last = args.offset + 1, args.offset + len(records)
        more = f"; --offset {last} for more" if last < total else ""
        shown = f"{first:,}-{last:,}" if records else "none"
        say(f"Showing {shown} of {total:,} conversion records (newest first){more}.", err=True)
    return 0


def _record_json(record: ConversionRecord) -> dict[str, Any]:
    data = asdict(record)
    data["direction"] = record.direction.value.lower()
    data["status"] = record.status.value
    return data


async def _rule_filter(service: Service, reference: str, mailbox_uuid: str | None) -> str:
    """A rule's uuid; a uuid of a rule deleted since is kept (its records still name it)."""
    try:
        return (await service.conversions.resolve_rule(reference, mailbox_uuid)).uuid
    except NotFound:
        if _looks_like_uuid(reference):
            return reference.strip().lower()
        raise


def _looks_like_uuid(text: str) -> bool:
    try:
        uuid.UUID(text.strip())
    except ValueError:
        return False
    return True


def _status(text: str) -> ConversionStatus:
    try:
        return ConversionStatus(text.strip().upper())
    except ValueError:
        known = ", ".join(s.value.lower() for s in ConversionStatus)
        raise InvalidInput(f"Unknown status {text!r}.", f"Use one of: {known}.") from None


async def _reprocess(service: Service, args: argparse.Namespace) -> int:
    ids = list(dict.fromkeys(args.ids))
    # Every id must name a record before anything is queued: a typo changes nothing.
    missing = []
    for conversion_id in ids:
        try:
            await service.conversions.get(conversion_id)
        except NotFound:
            missing.append(conversion_id)
    if missing:
        listed = ", ".join(str(i) for i in missing)
        raise NotFound(
            f"No conversion record{'s' if len(missing) > 1 else ''} {listed}.",
            "See 'docbridge conversions' for the ids; nothing was reprocessed.",
        )
    result = await service.conversions.reprocess(ids)
    if args.json:
        print_json(
            {
                "queued": list(result.queued),
                "skipped": [{"id": i, "reason": why} for i, why in result.skipped],
            }
        )
    else:
        for conversion_id in result.queued:
            say(str(conversion_id))
        if result.queued:
            sys.stdout.flush()
            say(
                f"{len(result.queued)} queued; the engine ('docbridge serve' or the TUI) runs "
                "them through the rules again.",
                err=True,
            )
    sys.stdout.flush()
    for conversion_id, why in result.skipped:
        say(f"docbridge: record {conversion_id} cannot be reprocessed: {why}", err=True)
    return 1 if result.skipped else 0


async def _mailbox_uuid(service: Service, reference: str | None) -> str | None:
    return (await service.resolve_mailbox(reference)).uuid if reference else None


HANDLERS: dict[tuple[str, str | None], Handler] = {
    ("rule", "list"): _rule_list,
    ("rule", "export"): _rule_export,
    ("rule", "import"): _rule_import,
    ("rule", "run"): _rule_run,
    ("source", "view"): _source_view,
    ("conversions", None): _conversions,
    ("reprocess", None): _reprocess,
}

__all__ = ["HANDLERS", "add_rule_commands"]
