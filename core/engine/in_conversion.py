"""Incoming envelopes through IN rules: envelope XML -> the rule's map -> a file in ``cinbox/``.

Exactly once across crashes: the file's name is chosen once (naming pattern, then the
conversion time on a clash in ``cinbox/``) and kept in the job before the file is written;
a retry reuses it and lands on the same file, even when the map writes something different
the second time (a map that stamps the current time). The record of the outcome ends the
claim in the same transaction as the conversion log's entry (``envelope_handler.record``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.clock import utc_datetime
from core.config import Config
from core.conversion.apply import (
    ConvertedFile,
    Limits,
    convert_envelopes,
    stored_envelope_item,
)
from core.conversion.errors import XsltError
from core.conversion.extensions import LookupContext
from core.conversion.pool import TransformItem, TransformPool
from core.engine.envelope_handler import EnvelopeWork, Outcome
from core.envelope_xml import parse_stored_envelope_xml
from core.errors import DocbridgeError
from core.models import AttemptOutcome, ConversionStatus, Direction, TransferProtocol
from core.naming import NamingContext, name_with_conversion_time, render_file_name
from core.sftp.folders import CINBOX, ensure_mailbox_root, write_files_atomically
from core.storage import conversions

SavePayloads = Callable[[Mapping[int, Mapping[str, Any]]], Awaitable[None]]
NAME_KEY = "cinbox_name"
PREPARE_CHUNK = 25


@dataclass(frozen=True)
class Converted:
    work: EnvelopeWork
    file: ConvertedFile
    name: str  # as the naming pattern gives it (before any clash suffix)


@dataclass(frozen=True)
class Prepared:
    """An envelope ready for its map: its bytes with the map's parameters, and its file's name
    or why it cannot have one."""

    work: EnvelopeWork
    item: TransformItem  # not the parsed tree: a batch of large envelopes would hold them all
    name: str | Exception  # a naming error counts only if the map succeeds


async def perform(
    pool: TransformPool,
    limits: Limits,
    config: Config,
    batch: list[EnvelopeWork],
    save_payloads: SavePayloads,
) -> list[Outcome]:
    """Convert and deliver every envelope of ``batch`` (each has an IN rule)."""
    mailboxes_dir = config.mailboxes_dir
    database = config.lookup_database
    failed: list[Outcome] = []
    converting: list[asyncio.Future[list[Outcome | Converted]]] = []
    try:
        # Parsed a chunk per thread hop, one after the other: the workers convert a chunk
        # while the next is parsed (chunks parsed at once would all end together).
        for start in range(0, len(batch), PREPARE_CHUNK):
            chunk = batch[start : start + PREPARE_CHUNK]
            prepared = await asyncio.to_thread(_prepare_all, database, chunk)
            failed += [p for p in prepared if isinstance(p, Outcome)]
            ready = [p for p in prepared if isinstance(p, Prepared)]
            converting.append(asyncio.ensure_future(_convert_all(pool, limits, ready)))
        results = [r for part in await asyncio.gather(*converting) for r in part]
    except BaseException:
        for task in converting:
            task.cancel()
        await asyncio.gather(*converting, return_exceptions=True)
        raise
    failed += [r for r in results if isinstance(r, Outcome)]
    converted = [r for r in results if isinstance(r, Converted)]
    names = await _final_names(mailboxes_dir, converted, save_payloads)
    written = await asyncio.to_thread(_write, mailboxes_dir, converted, names)
    return failed + written


def _prepare_all(database: str, batch: list[EnvelopeWork]) -> list[Prepared | Outcome]:
    return [_prepare(database, work) for work in batch]


def _prepare(database: str, work: EnvelopeWork) -> Prepared | Outcome:
    """Parse and name one envelope."""
    assert work.rule is not None
    data = work.xml.encode("utf-8")
    try:
        # From our own store: checked against the schema when it was received.
        parsed = parse_stored_envelope_xml(data)
    except (DocbridgeError, ValueError) as exc:
        return _rule_failed(work, exc)
    try:
        context = NamingContext(
            mailbox_uuid=work.mailbox_uuid,
            envelope_uuid=parsed.uuid or "",
            template_uuid=parsed.template_uuid,
            received_at=work.received_at,
            field_value=parsed.field_value,
        )
        name: str | Exception = render_file_name(work.rule.form.naming_pattern, context)
    except (DocbridgeError, ValueError) as exc:
        name = exc
    lookups = LookupContext(database, work.account_uuid)
    return Prepared(work, stored_envelope_item(data, parsed, lookups), name)


async def _convert_all(
    pool: TransformPool, limits: Limits, ready: list[Prepared]
) -> list[Outcome | Converted]:
    """Every envelope through its rule's map: one batch per map, the maps at once."""
    by_map: dict[str, list[Prepared]] = {}
    for item in ready:
        assert item.work.rule is not None
        by_map.setdefault(item.work.rule.form.conversion_map, []).append(item)

    async def convert(group: list[Prepared]) -> list[Outcome | Converted]:
        assert group[0].work.rule is not None
        items = [p.item for p in group]
        files = await convert_envelopes(pool, group[0].work.rule.form, items, limits)
        return [_converted(p, file) for p, file in zip(group, files, strict=True)]

    return [r for part in await asyncio.gather(*map(convert, by_map.values())) for r in part]


def _converted(item: Prepared, file: ConvertedFile | XsltError) -> Outcome | Converted:
    if isinstance(file, XsltError):
        return _rule_failed(item.work, file)
    if isinstance(item.name, Exception):
        return _rule_failed(item.work, item.name)
    return Converted(item.work, file, item.name)


def _rule_failed(work: EnvelopeWork, exc: Exception) -> Outcome:
    """A failure of the rule on this envelope: final (a retry meets the same map), logged."""
    assert work.rule is not None
    reason = f"Rule '{work.rule.name}' failed: {exc}"
    entry = _entry(work, ConversionStatus.FAILED, error=reason, output=None)
    return Outcome(work, AttemptOutcome.FAILED, reason, permanent=True, conversion=entry)


async def _final_names(
    mailboxes_dir: Path, converted: list[Converted], save_payloads: SavePayloads
) -> dict[str, str]:
    """Each file's name in cinbox/: the one a previous attempt chose, else the pattern's,
    with the conversion time on a clash; new choices are saved before any file is written."""
    names: dict[str, str] = {}
    taken: set[tuple[str, str]] = set()
    fresh: list[Converted] = []
    for item in converted:
        kept = item.work.job.payload.get(NAME_KEY)
        if kept:
            names[item.work.uuid] = str(kept)
            taken.add((item.work.mailbox_uuid, str(kept)))
        else:
            fresh.append(item)
    if fresh:
        chosen = await asyncio.to_thread(_free_names, mailboxes_dir, fresh, taken)
        names.update(chosen)
        await save_payloads(
            {
                item.work.job.id: dict(item.work.job.payload, **{NAME_KEY: chosen[item.work.uuid]})
                for item in fresh
            }
        )
    return names


def _free_names(
    mailboxes_dir: Path, fresh: list[Converted], taken: set[tuple[str, str]]
) -> dict[str, str]:
    now = utc_datetime()
    chosen: dict[str, str] = {}
    used = set(taken)
    for item in fresh:
        folder = mailboxes_dir / item.work.mailbox_uuid / CINBOX
        name, attempt = item.name, 1
        while (item.work.mailbox_uuid, name) in used or os.path.lexists(folder / name):
            name = name_with_conversion_time(item.name, now, attempt=attempt)
            attempt += 1
        used.add((item.work.mailbox_uuid, name))
        chosen[item.work.uuid] = name
    return chosen


def _write(mailboxes_dir: Path, converted: list[Converted], names: dict[str, str]) -> list[Outcome]:
    """The files, one flush per mailbox; a mailbox whose folders are broken fails alone."""
    outcomes: list[Outcome] = []
    by_mailbox: dict[str, list[Converted]] = {}
    for item in converted:
        by_mailbox.setdefault(item.work.mailbox_uuid, []).append(item)
    for mailbox_uuid, items in by_mailbox.items():
        try:
            root = ensure_mailbox_root(mailboxes_dir, mailbox_uuid)
        except (OSError, DocbridgeError) as exc:
            outcomes += [_cannot_write(item, exc) for item in items]
            continue
        outcomes += _write_batch(root, items, names)
    return outcomes


def _write_batch(root: Path, items: list[Converted], names: dict[str, str]) -> list[Outcome]:
    files = [(CINBOX, names[item.work.uuid], item.file.content) for item in items]
    try:
        write_files_atomically(root, files)
    except (OSError, DocbridgeError) as exc:
        if len(items) == 1:
            return [_cannot_write(items[0], exc)]
        return [o for item in items for o in _write_batch(root, [item], names)]
    return [_delivered(item, names[item.work.uuid]) for item in items]


def _delivered(item: Converted, name: str) -> Outcome:
    work = item.work
    status = ConversionStatus.REPROCESSED if work.reprocess else ConversionStatus.PROCESSED
    entry = _entry(work, status, file_name=f"{CINBOX}/{name}", output=item.file.content)
    # Over AS2 the file in cinbox/ is what the sender posts (and removes once acknowledged).
    done = (
        AttemptOutcome.QUEUED if work.protocol is TransferProtocol.AS2 else AttemptOutcome.DELIVERED
    )
    return Outcome(work, done, f"{CINBOX}/{name}", conversion=entry)


def _cannot_write(item: Converted, exc: Exception) -> Outcome:
    return Outcome(item.work, AttemptOutcome.FAILED, f"Cannot write to {CINBOX}/: {exc}")


def _entry(
    work: EnvelopeWork,
    status: ConversionStatus,
    *,
    error: str = "",
    file_name: str = "",
    output: bytes | None,
) -> conversions.NewConversion:
    assert work.rule is not None
    return conversions.NewConversion(
        mailbox_uuid=work.mailbox_uuid,
        direction=Direction.IN,
        rule_uuid=work.rule.uuid,
        rule_name=work.rule.name,
        status=status,
        envelope_uuid=work.uuid,
        file_name=file_name,
        subject=work.summary.get("subject", ""),
        error=error,
        job_ref=work.job.ref,
        input_name=f"{work.uuid}.xml",
        input=work.xml.encode("utf-8"),
        output=output,
    )
