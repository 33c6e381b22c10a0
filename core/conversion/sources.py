"""The XML view of an OUT rule's source file (SPEC §7, issue 9 "Sources other than XML").

An OUT rule's XSLT always reads XML. A customer's file may be XML already, or a workbook (XLSX,
XLSM, XLS) or a CSV; :func:`source_view` turns each into the view the original platform
documented, so stylesheets written for the platform run unchanged::

    <xml>
      <sheet index="0" name="Sheet1">
        <row index="0"><col index="0">Name</col><col index="2">42</col></row>
      </sheet>
    </xml>

Contract of the workbook view (XLSX, XLSM, XLS and CSV alike):

- ``index`` attributes are 0-based and always the cell's real position in the sheet; empty cells
  and empty rows are *omitted* (a sparse sheet stays small), so select by ``@index``, not by
  ``position()``.
- Dates are ``YYYY-MM-DD``, date-times ``YYYY-MM-DDTHH:MM:SS`` (ISO 8601; milliseconds only when
  the cell has them), times ``HH:MM:SS``, durations ISO 8601 (``PT1H30M``). Numbers are written as
  the sheet shows them in its general format: an integer-valued number as ``42``, never ``42.0``;
  other numbers in their shortest round-trip form (``0.1``). Booleans are ``true``/``false``
  (the XML Schema spelling, like the dates).
- A CSV is a one-sheet workbook whose sheet is named ``Sheet1`` (not the file's name): a stylesheet
  that selects ``sheet[@name='Sheet1']`` or ``sheet[@index=0]`` serves a CSV and an XLSX of the
  same layout alike, whatever the files are called.

XML sources are returned byte for byte after a check that they parse as untrusted XML (no DTD, no
entities, no network). An empty file, and anything that cannot be read, raises
:class:`~core.errors.InvalidInput` naming the format and where the problem is (line, row and
column, sheet, or zip member).

Everything here is blocking CPU and memory work: callers on an event loop run it in a thread or in
the conversion worker pool.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePath
from typing import Any

import python_calamine
from lxml import etree

from core.conversion.edifact import EDIFACT_SUFFIXES, edifact_view, is_edifact
from core.conversion.markup import escape_attribute, escape_text
from core.errors import InvalidInput
from core.safe_xml import DoctypeFound, parse_untrusted

__all__ = ["SourceKind", "SourceView", "looks_like_workbook", "source_view"]


class SourceKind(StrEnum):
    """What a source file was read as (compares equal to its lower-case name)."""

    XML = "xml"
    CSV = "csv"
    XLSX = "xlsx"
    XLSM = "xlsm"
    XLS = "xls"
    EDIFACT = "edifact"


@dataclass(frozen=True, slots=True)
class SourceView:
    """A source file as the XSLT sees it.

    ``xml`` is the XML view (UTF-8 with a declaration, except an XML source, kept as it came);
    ``details`` says in words what was detected, for the rule form and the CLI
    (``"CSV, delimiter ';', encoding cp1252"``).
    """

    xml: bytes
    kind: SourceKind
    details: str


CSV_SHEET_NAME = "Sheet1"
CSV_DELIMITERS = (",", ";", "\t", "|")
# Enough lines for the sniffer to see the layout; it is quadratic-ish in the sample's size.
_SNIFF_CHARS = 64 * 1024
_SNIFF_LINES = 20

_ZIP_MAGIC = b"PK\x03\x04"
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_WORKBOOK_MEMBER = "xl/workbook.xml"
_WORKBOOK_SUFFIXES = {".xlsx": SourceKind.XLSX, ".xlsm": SourceKind.XLSM, ".xls": SourceKind.XLS}
# XML 1.0 cannot hold these characters, not even escaped.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

_Cell = int | float | str | bool | dt.date | dt.datetime | dt.time | dt.timedelta


def looks_like_workbook(head: bytes) -> bool:
    """Whether a file starting with ``head`` is read as a workbook (zip or OLE2 signature)."""
    return head[:2] == b"PK" or head.startswith(_OLE2_MAGIC)


def source_view(data: bytes, file_name: str) -> SourceView:
    """Return the XML view of ``data``, a source file called ``file_name``.

    The content decides the kind (a zip holding ``xl/workbook.xml`` is XLSX/XLSM, the OLE2
    signature is XLS, a leading ``<`` is XML, anything else is CSV): customers' systems often
    name a CSV ``.xls``. The extension only tells XLSM from XLSX and makes the error clearer when
    a file named as a workbook holds no workbook.
    """
    suffix = PurePath(file_name).suffix.lower()
    if not data.removeprefix(codecs.BOM_UTF8).strip():
        raise InvalidInput(
            f"{file_name} is empty",
            "There is nothing to convert; send the file again with its content.",
        )
    if data.startswith(_ZIP_MAGIC) or (suffix in (".xlsx", ".xlsm") and data[:2] == b"PK"):
        return _workbook_view(data, _zip_kind(data, suffix))
    if data.startswith(_OLE2_MAGIC):
        return _workbook_view(data, SourceKind.XLS)
    if _looks_like_xml(data):
        _check_xml(data)
        return SourceView(xml=data, kind=SourceKind.XML, details="XML")
    if is_edifact(data) or suffix in EDIFACT_SUFFIXES:
        edifact = edifact_view(data)
        return SourceView(xml=edifact.xml, kind=SourceKind.EDIFACT, details=edifact.details)
    if suffix in _WORKBOOK_SUFFIXES and b"\x00" in data:
        expected = _WORKBOOK_SUFFIXES[suffix].name
        raise InvalidInput(
            f"{file_name} is not a readable {expected} workbook: it starts with neither the zip "
            "nor the OLE2 signature",
            "The file is damaged or truncated; export it again from the spreadsheet program.",
        )
    return _csv_view(data, suffix)


# --- XML --------------------------------------------------------------------------------------


def _looks_like_xml(data: bytes) -> bool:
    for bom, codec in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            head = data[len(bom) : len(bom) + 256].decode(codec, errors="ignore")
            return head.lstrip().startswith("<")
    return data.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n").startswith(b"<")


def _check_xml(data: bytes) -> None:
    """Parse ``data`` as untrusted XML; raise :class:`InvalidInput` if it is not acceptable."""
    try:
        parse_untrusted(data)
    except DoctypeFound:
        raise _xml_doctype() from None
    except etree.XMLSyntaxError as error:
        raise _xml_syntax(error) from None


def _xml_doctype() -> InvalidInput:
    return InvalidInput(
        "XML source must not contain a DOCTYPE or entity declarations",
        "Remove the <!DOCTYPE ...> block; DTDs and entities are not read from untrusted files.",
    )


def _xml_syntax(error: etree.XMLSyntaxError) -> InvalidInput:
    log: Any = error.error_log
    entry: Any = log.last_error if log else None
    message = str(entry.message if entry is not None else error.msg) or str(error)
    line = entry.line if entry is not None else error.lineno
    message = re.sub(r",? line \d+(, column \d+)?$", "", message.strip().rstrip("."))
    return InvalidInput(
        f"XML source is not well-formed: {message} (line {line})",
        "Fix the XML at that line, or send the file again if it was cut short.",
    )


# --- workbooks --------------------------------------------------------------------------------


def _zip_kind(data: bytes, suffix: str) -> SourceKind:
    """XLSX or XLSM, after checking the zip is a workbook at all (else a clear error)."""
    what = "XLSM" if suffix == ".xlsm" else "XLSX"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            content_types = (
                archive.read("[Content_Types].xml") if "[Content_Types].xml" in names else b""
            )
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as error:
        raise InvalidInput(
            f"{what} workbook cannot be read: the zip's central directory at the end of the file "
            f"is missing or damaged ({error})",
            "The file is truncated or not a workbook; export it again from the spreadsheet "
            "program.",
        ) from None
    if _WORKBOOK_MEMBER not in names:
        raise InvalidInput(
            f"Zip file is not an XLSX/XLSM workbook: it has no {_WORKBOOK_MEMBER} member",
            "Only Excel workbooks (.xlsx, .xlsm, .xls), CSV and XML can be converted.",
        )
    if suffix == ".xlsm" or b"macroEnabled" in content_types:
        return SourceKind.XLSM
    return SourceKind.XLSX


def _workbook_view(data: bytes, kind: SourceKind) -> SourceView:
    what = kind.name
    try:
        workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except Exception as error:  # python-calamine raises its own classes and plain ones
        raise _workbook_error(what, data, None, error) from None
    names = workbook.sheet_names
    sheets = _workbook_sheets(workbook, what, data, names)
    xml = _write_view(sheets)
    count = len(names)
    return SourceView(
        xml=xml, kind=kind, details=f"{what}, {count} sheet{'s' if count != 1 else ''}"
    )


def _workbook_sheets(
    workbook: python_calamine.CalamineWorkbook, what: str, data: bytes, names: Sequence[str]
) -> Iterator[tuple[str, Iterable[tuple[int, int, Sequence[_Cell]]]]]:
    for index, name in enumerate(names):
        try:
            sheet = workbook.get_sheet_by_index(index)
        except Exception as error:
            raise _workbook_error(what, data, name, error) from None
        yield name, _sheet_rows(sheet, what, name)


def _sheet_rows(
    sheet: python_calamine.CalamineSheet, what: str, name: str
) -> Iterator[tuple[int, int, Sequence[_Cell]]]:
    """``(row index, index of the first column, cells)`` per row.

    python-calamine's ``iter_rows`` yields every row from the sheet's first row (row 0), but the
    cells of each row only from the first used column (``sheet.start``); the test of a sheet
    whose data starts at B2 holds this to account if a release changes it.
    """
    start = sheet.start
    first_column = start[1] if start is not None else 0
    try:
        yield from ((row, first_column, cells) for row, cells in enumerate(sheet.iter_rows()))
    except Exception as error:
        raise InvalidInput(
            f"{what} workbook cannot be read: sheet {name!r} is damaged ({error})",
            "Export the workbook again from the spreadsheet program.",
        ) from None


def _workbook_error(what: str, data: bytes, sheet: str | None, error: Exception) -> InvalidInput:
    where = f"sheet {sheet!r}" if sheet is not None else ""
    note = ""
    if what == "XLS":
        where = where or "its OLE2 container"
        note = _ole2_truncation(data)
    else:
        member = _damaged_member(data)
        if member:
            where = f"zip member {member}" + (f" ({where})" if where else "")
    place = f" in {where}" if where else ""
    return InvalidInput(
        f"{what} workbook cannot be read{place}: {error}{note}",
        "The file is damaged, truncated or password-protected; export it again from the "
        "spreadsheet program.",
    )


def _ole2_truncation(data: bytes) -> str:
    """A note when an OLE2 file is not a whole number of sectors long: it was cut short."""
    # The header (512 bytes) holds the sector size as a power of two at offset 30.
    if len(data) < 512:
        return f" (the file has only {len(data)} bytes, less than an OLE2 header: it is truncated)"
    sector = (
        1 << int.from_bytes(data[30:32], "little")
        if data[30:32] in (b"\x09\x00", b"\x0c\x00")
        else 512
    )
    if (len(data) - 512) % sector:
        return (
            f" (the file ends in the middle of a {sector}-byte sector at byte {len(data):,}: "
            "it is truncated)"
        )
    return ""


def _damaged_member(data: bytes) -> str | None:
    """The first zip member whose data fails its check, to say where a workbook is broken."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                try:
                    with archive.open(info) as member:
                        while member.read(1 << 20):
                            pass
                except (
                    zipfile.BadZipFile,
                    zlib.error,
                    EOFError,
                    OSError,
                    ValueError,
                    NotImplementedError,
                ):
                    return info.filename
    except (zipfile.BadZipFile, EOFError, OSError):
        return None
    return None


# --- CSV --------------------------------------------------------------------------------------


def _csv_view(data: bytes, suffix: str) -> SourceView:
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InvalidInput(
            f"CSV source contains binary data: a NUL byte at line {_line_of(data, nul)}",
            "This is not a text file in UTF-8 or cp1252 (UTF-16 text and binary files are "
            "not read as CSV); export it again as CSV.",
        )
    text, encoding = _decode(data)
    # Only the head is kept decoded; the rows are decoded as they are read (a whole decoded
    # text, and the UCS-4 copy io.StringIO makes of it, were 5 times the file in memory).
    head = text[: _SNIFF_CHARS + 1]
    del text
    delimiter = _detect_delimiter(head)
    shown = "tab" if delimiter == "\t" else repr(delimiter)
    details = f"CSV, delimiter {shown}, encoding {encoding}"
    if suffix in _WORKBOOK_SUFFIXES:
        details += f" (named {suffix}, but its content is CSV text)"
    codec = _CODECS[encoding]
    try:
        xml = _write_view([(CSV_SHEET_NAME, _csv_rows(data, codec, delimiter, strict=True))])
    except _QuotingIrregular:
        # Text after a closing quote ("ab"c) is common in exports; read it as Excel does.
        xml = _write_view([(CSV_SHEET_NAME, _csv_rows(data, codec, delimiter, strict=False))])
    return SourceView(xml=xml, kind=SourceKind.CSV, details=details)


# What _decode names each encoding, and the codec that reads it (the BOM dropped).
_CODECS = {"UTF-8 with BOM": "utf-8-sig", "UTF-8": "utf-8", "cp1252": "cp1252"}


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _decode(data: bytes) -> tuple[str, str]:
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), "UTF-8 with BOM"
        except UnicodeDecodeError as error:
            offset = error.start + len(codecs.BOM_UTF8)
            raise InvalidInput(
                f"CSV source starts with a UTF-8 byte order mark but is not UTF-8: byte "
                f"0x{data[offset]:02X} at line {_line_of(data, offset)}",
                "Export the file again as CSV UTF-8.",
            ) from None
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"CSV source is neither UTF-8 nor cp1252 text: byte 0x{data[error.start]:02X} at "
            f"line {_line_of(data, error.start)}",
            "Export the file again as CSV UTF-8.",
        ) from None


def _detect_delimiter(text: str) -> str:
    """One of ``, ; tab |``: csv.Sniffer first, then counting in the first lines, else ``,``."""
    sample = text[:_SNIFF_CHARS]
    if len(text) > _SNIFF_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters="".join(CSV_DELIMITERS))
        if dialect.delimiter in CSV_DELIMITERS:
            return str(dialect.delimiter)
    except csv.Error:
        pass
    lines = [line for line in sample.splitlines()[:_SNIFF_LINES] if line.strip()]
    best, best_score = ",", (0, 0)
    for delimiter in CSV_DELIMITERS:
        counts = [line.count(delimiter) for line in lines]
        if not any(counts):
            continue
        # Prefer a delimiter found the same number of times on every line, then the commonest.
        consistent = sum(1 for count in counts if count == counts[0] and count > 0)
        score = (consistent, sum(counts))
        if score > best_score:
            best, best_score = delimiter, score
    return best


class _QuotingIrregular(Exception):
    """A strict read met a quote the lenient read accepts; read the file again leniently."""


def _csv_rows(
    data: bytes, codec: str, delimiter: str, *, strict: bool
) -> Iterator[tuple[int, int, Sequence[_Cell]]]:
    """Each record of ``data`` (text in ``codec``, checked by :func:`_decode`), as
    ``(row index, 0, cells)``.

    The strict read is there to notice a file that ends inside a quoted field, the usual sign of
    a CSV cut short; a lenient reader would silently make the rest of the file one cell.
    """
    # newline="": lines end at \n, \r or \r\n and keep their ends, as the csv module wants.
    lines = io.TextIOWrapper(io.BytesIO(data), encoding=codec, newline="")
    reader = csv.reader(lines, delimiter=delimiter, strict=strict)
    row_index = 0
    record_line = 1
    try:
        for cells in reader:
            yield row_index, 0, cells
            row_index += 1
            record_line = reader.line_num + 1
    except csv.Error as error:
        if strict and "end of data" in str(error):
            raise InvalidInput(
                f"CSV source ends inside a quoted field: the record that starts at line "
                f"{record_line} (row index {row_index}) has no closing quote",
                "The file is cut short, or a quote on that line is not closed; send the "
                "complete file.",
            ) from None
        if strict:
            raise _QuotingIrregular from None
        raise InvalidInput(
            f"CSV source cannot be read at line {reader.line_num}: {error}",
            "Check the quoting on that line, or export the file again as CSV.",
        ) from None


# --- the view ---------------------------------------------------------------------------------


def _write_view(
    sheets: Iterable[tuple[str, Iterable[tuple[int, int, Sequence[_Cell]]]]],
) -> bytes:
    """Stream the rows into ``<xml><sheet><row><col>``, a few hundred rows' text in memory at a
    time.

    Written as escaped text rather than through lxml elements: an element per cell made a 20 MB
    CSV take five times as long (measured), and this markup has only four names.
    """
    out = io.BytesIO()
    out.write(b"<?xml version='1.0' encoding='UTF-8'?>\n<xml>")
    for sheet_index, (name, rows) in enumerate(sheets):
        _check_text(name, f"the name of sheet index {sheet_index}")
        out.write(f'<sheet index="{sheet_index}" name="{escape_attribute(name)}">'.encode())
        pending: list[str] = []
        for row_index, first_column, cells in rows:
            row = _row_markup(name, row_index, first_column, cells)
            if row:
                pending.append(row)
                if len(pending) >= _ROWS_PER_WRITE:
                    out.write("".join(pending).encode())
                    pending.clear()
        out.write("".join(pending).encode())
        out.write(b"</sheet>")
    out.write(b"</xml>")
    return out.getvalue()


_ROWS_PER_WRITE = 256


def _row_markup(sheet: str, row_index: int, first_column: int, cells: Sequence[_Cell]) -> str:
    """``<row index>`` with a ``<col index>`` per non-empty cell, or ``""`` for an empty row."""
    # The checks run once on the row's text; a cell at a time only when the row needs it.
    texts = [value if type(value) is str else _cell_text(value) for value in cells]
    joined = "".join(texts)
    if not joined:
        return ""
    if _XML_ILLEGAL.search(joined):
        for column, text in enumerate(texts, first_column):
            _check_text(text, f"sheet {sheet!r}, row index {row_index}, col index {column}")
    if "&" in joined or "<" in joined or ">" in joined or "\r" in joined:
        texts = [escape_text(text) for text in texts]
    columns = "".join(
        [
            f'<col index="{column}">{text}</col>'
            for column, text in enumerate(texts, first_column)
            if text
        ]
    )
    return f'<row index="{row_index}">{columns}</row>'


def _check_text(text: str, where: str) -> None:
    bad = _XML_ILLEGAL.search(text)
    if bad is None:
        return
    raise InvalidInput(
        f"Source holds a character XML cannot carry: U+{ord(bad.group()):04X} at {where}",
        "Remove the control character from the file (or the cell) and send it again.",
    )


def _cell_text(value: _Cell) -> str:
    if type(value) is float:  # the commonest in workbooks: first
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    return _duration(value)


def _duration(value: dt.timedelta) -> str:
    """ISO 8601 duration (``PT1H30M``, ``-P1DT2H``): days, then hours, minutes, seconds."""
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    date_part = f"{value.days}D" if value.days else ""
    time_part = ""
    if hours:
        time_part += f"{hours}H"
    if minutes:
        time_part += f"{minutes}M"
    if seconds or value.microseconds or not (date_part or time_part):
        fraction = f".{value.microseconds:06d}".rstrip("0") if value.microseconds else ""
        time_part += f"{seconds}{fraction}S"
    return f"{sign}P{date_part}" + (f"T{time_part}" if time_part else "")
