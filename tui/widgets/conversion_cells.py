"""What the conversion log shows of a record: its columns (fewer at 80 columns), its cells, its
details, and a kept input or output as readable text (binary as a hex head, never garbage)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from rich.table import Table
from rich.text import Text

from core.models import ConversionPayload, ConversionRecord, ConversionStatus
from tui.widgets.activity_sections import clip, facts, when
from tui.widgets.example_source import indent_xml

SCROLLBAR = 2
PADDING = 2  # a DataTable cell's padding (one column each side)
WIDE = 110  # from this width on the envelope and the error get their own columns

NO_RULE = "no rule"
SHORT_TIME = 11  # "01-15 09:30" below WIDE
MARK = "*"


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int  # 0: shares what is left
    wide_only: bool = False


COLUMNS = (
    Column("mark", MARK, 1),
    Column("time", "Time", 14),
    Column("mailbox", "Mailbox", 0),
    Column("rule", "Rule", 0),
    Column("dir", "Dir", 3),
    Column("file", "File", 0),
    Column("envelope", "Envelope", 13, wide_only=True),
    Column("status", "Status", 11),
    Column("error", "Error", 0, wide_only=True),
)


def columns_for(total: int, *, with_mailbox: bool = True) -> list[tuple[Column, int]]:
    """The columns that fit ``total`` cells, each with its width (no mailbox column when the
    log is filtered to one; a shorter time when narrow)."""
    wide = total >= WIDE
    shown = [
        c for c in COLUMNS if (wide or not c.wide_only) and (with_mailbox or c.key != "mailbox")
    ]
    sizes = [(c, c.width if c.key != "time" or wide else SHORT_TIME) for c in shown]
    fixed = sum(width for _, width in sizes)
    flexible = [c for c in shown if c.width == 0]
    room = total - SCROLLBAR - PADDING * len(shown) - fixed
    share = max(room // max(len(flexible), 1), 6)
    return [(c, width or share) for c, width in sizes]


def rule_label(record: ConversionRecord) -> str:
    """The rule as it was named then; "no rule" when none took it (a default-rule record
    names its default, e.g. "default:copy")."""
    return record.rule_name or NO_RULE


def envelope_label(record: ConversionRecord) -> str:
    """The head of the envelope uuid, with how many more when there are several (an OUT file
    may make many envelopes)."""
    uuids = [u for u in record.envelope_uuid.split(",") if u]
    if not uuids:
        return ""
    head = uuids[0][:8] + "…"  # in full under the table
    return head if len(uuids) == 1 else f"{head} +{len(uuids) - 1}"


def short_time(at: str) -> str:
    """``2025-01-15T09:30:00.000Z`` -> ``01-15 09:30:00``."""
    return at.replace("T", " ")[5:19]


def status_text(status: ConversionStatus) -> Text:
    # A word as well as a colour: never information by colour alone.
    style = {ConversionStatus.FAILED: "bold red", ConversionStatus.REPROCESSED: "green"}
    return Text(status.value, style=style.get(status, ""), no_wrap=True)


def cells(
    record: ConversionRecord, mailbox_name: str, marked: bool, shown: list[tuple[Column, int]]
) -> list[Text]:
    values = {
        "mark": MARK if marked else "",
        "time": short_time(record.at)[: dict(shown).get(COLUMNS[1], 14)],
        "mailbox": mailbox_name,
        "rule": rule_label(record),
        "dir": record.direction.value,
        "file": record.file_name.rpartition("/")[2],  # the folder is in the details
        "envelope": envelope_label(record),
        "error": record.error,
    }
    row: list[Text] = []
    for column, width in shown:
        if column.key == "status":
            row.append(status_text(record.status))
        else:
            text = clip(values[column.key], width)
            if column.key == "rule" and not record.rule_name:
                text.stylize("dim")
            row.append(text)
    return row


def size_text(size: int | None) -> str:
    if size is None:
        return "not kept"
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def details(record: ConversionRecord, mailbox_name: str, keep_bytes: int) -> Table:
    """The selected record in full: ids are never cut, the error is whole."""
    envelopes = ", ".join(u for u in record.envelope_uuid.split(",") if u)

    def sized(size: int | None) -> str:
        return size_text(size) + (" (not kept)" if size is not None and size > keep_bytes else "")

    kept = (
        f"input {sized(record.input_size)}, output {sized(record.output_size)}"
        if record.input_size is not None or record.output_size is not None
        else "nothing kept"
    )
    return facts(
        ("Status", f"{record.status.value} · record {record.id} · {record.direction.value}"),
        ("Time", when(record.at)),
        ("Mailbox", f"{mailbox_name} ({record.mailbox_uuid})"),
        ("Rule", rule_label(record) + (f" ({record.rule_uuid})" if record.rule_uuid else "")),
        ("File", record.file_name),
        ("Envelope", envelopes),
        ("Subject", record.subject),
        ("Sizes", kept),
        ("Error", record.error),
    )


HEX_HEAD = 512  # bytes of a binary input shown as hex
HEX_WIDTH = 8
TEXT_LIMIT = 512 * 1024  # characters shown in the viewer; a longer text says it is cut


TEXT, HEX, NOTE = "text", "hex", "note"


def payload_text(data: bytes, size: int, *, kept: bool, keep_bytes: int) -> tuple[str, str]:
    """What the viewer shows of a kept input or output, and what that is: the data as text
    (TEXT), a hex head of binary data (HEX) or a sentence saying why there is nothing (NOTE)."""
    if not kept:
        return (
            "Nothing kept for this record (a default rule keeps none; kept data older than "
            "conversion.keep_days is dropped).",
            NOTE,
        )
    if size and not data:
        return f"Not kept ({size:,} bytes, above conversion.keep_bytes = {keep_bytes:,}).", NOTE
    if not data:
        return "Empty (0 bytes).", NOTE
    if _binary(data):
        return hex_head(data, size), HEX
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    if len(text) > TEXT_LIMIT:
        return text[:TEXT_LIMIT] + f"\n… (cut: {size:,} bytes in all)", TEXT
    return text, TEXT


def _binary(data: bytes) -> bool:
    head = data[:8192]
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27))
    return controls > len(head) // 20


def hex_head(data: bytes, size: int) -> str:
    head = data[:HEX_HEAD]
    lines = [f"Binary data, {size:,} bytes; the first {len(head)} as hex:", ""]
    for offset in range(0, len(head), HEX_WIDTH):  # 8 a line: fits a dialog at 80 columns
        chunk = head[offset : offset + HEX_WIDTH]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        printable = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexes:<{HEX_WIDTH * 3 - 1}}  {printable}")
    return "\n".join(lines)


def readable(payload: ConversionPayload | None) -> ConversionPayload | None:
    """Kept XML indented, one element a line (an OUT rule's output is its envelopes one after
    another, each on one long line). Blocking for large payloads: call it in a thread."""
    if payload is None:
        return None
    return replace(payload, input=_indented(payload.input), output=_indented(payload.output))


def _indented(data: bytes) -> bytes:
    if not data.lstrip().startswith(b"<") or len(data) > TEXT_LIMIT * 4:
        return data
    documents = [part for part in re.split(rb"(?=<\?xml)", data) if part.strip()]
    try:
        texts = [indent_xml(part.decode("utf-8")) for part in documents]
    except UnicodeDecodeError:
        return data
    return "\n".join(texts).encode("utf-8")
