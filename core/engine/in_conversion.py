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
from core.conversion.apply import ConvertedFile, Limits, convert_envelope
from core.conversion.pool import TransformPool
from core.engine.envelope_handler import EnvelopeWork, Outcome
from core.envelope_xml import EnvelopeXml, parse_envelope_xml
from core.errors import DocbridgeError
from core.models import AttemptOutcome, ConversionStatus, Direction, TransferProtocol
from core.naming import NamingContext, name_with_conversion_time, render_file_name
from core.sftp.folders import CINBOX, ensure_mailbox_root, write_files_atomically
from core.storage import conversions

SavePayloads = Callable[[Mapping[int, Mapping[str, Any]]], Awaitable[None]]
NAME_KEY = "cinbox_name"
PARSE_CHUNK = 10
AS2_NOT_YET = "Sending converted files over AS2 is not available yet in this version."


@dataclass(frozen=True)
class Converted:
    work: EnvelopeWork
    file: ConvertedFile
    name: str  # as the naming pattern gives it (before any clash suffix)


async def perform(
    pool: TransformPool,
    limits: Limits,
    config: Config,
    batch: list[EnvelopeWork],
    save_payloads: SavePayloads,
) -> list[Outcome]:
    """Convert and deliver every envelope of ``batch`` (each has an IN rule)."""
    mailboxes_dir = config.mailboxes_dir
    database = str(config.database_path)

    async def convert_chunk(chunk: list[EnvelopeWork]) -> list[Outcome | Converted]:
        parsed = await asyncio.to_thread(_parse_all, chunk)
        return await asyncio.gather(
            *(_convert(pool, limits, database, w, p) for w, p in zip(chunk, parsed, strict=True))
        )

    # Parsed a few at a time per thread hop (a hop per envelope cost more than parsing a small
    # one), and the first transforms start while the rest are parsed.
    chunks = [batch[i : i + PARSE_CHUNK] for i in range(0, len(batch), PARSE_CHUNK)]
    results = [r for part in await asyncio.gather(*map(convert_chunk, chunks)) for r in part]
    failed = [r for r in results if isinstance(r, Outcome)]
    converted = [r for r in results if isinstance(r, Converted)]
    names = await _final_names(mailboxes_dir, converted, save_payloads)
    written = await asyncio.to_thread(_write, mailboxes_dir, converted, names)
    return failed + written


def _parse_all(batch: list[EnvelopeWork]) -> list[tuple[bytes, EnvelopeXml | Exception]]:
    """Each envelope's bytes and its parsed form, or why it does not parse (AS2 ones are not
    parsed: they fail before)."""
    parsed: list[tuple[bytes, EnvelopeXml | Exception]] = []
    for work in batch:
        data = work.xml.encode("utf-8")
        if work.protocol is TransferProtocol.AS2:
            parsed.append((data, ValueError(AS2_NOT_YET)))
            continue
        try:
            parsed.append((data, parse_envelope_xml(data)))
        except (DocbridgeError, ValueError) as exc:
            parsed.append((data, exc))
    return parsed


async def _convert(
    pool: TransformPool,
    limits: Limits,
    database: str,
    work: EnvelopeWork,
    parsed_or_error: tuple[bytes, EnvelopeXml | Exception],
) -> Outcome | Converted:
    assert work.rule is not None
    if work.protocol is TransferProtocol.AS2:
        return Outcome(work, AttemptOutcome.FAILED, AS2_NOT_YET)
    data, parsed = parsed_or_error
    try:
        if isinstance(parsed, Exception):
            raise parsed
        account = limits.for_account(database, work.account_uuid)
        file = await convert_envelope(pool, work.rule.form, data, parsed, account)
        context = NamingContext.for_envelope(
            parsed, mailbox_uuid=work.mailbox_uuid, received_at=work.received_at
        )
        name = render_file_name(work.rule.form.naming_pattern, context)
    except (DocbridgeError, ValueError) as exc:
        reason = f"Rule '{work.rule.name}' failed: {exc}"
        entry = _entry(work, ConversionStatus.FAILED, error=reason, output=None)
        return Outcome(work, AttemptOutcome.FAILED, reason, permanent=True, conversion=entry)
    return Converted(work, file, name)


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
    return Outcome(work, AttemptOutcome.DELIVERED, f"{CINBOX}/{name}", conversion=entry)


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
