"""Reading an EDIFACT interchange: its character set, its separators (UNA) and its segments,
each split into data elements and components with release characters removed.

:mod:`core.conversion.edifact` writes the XML view from these segments; errors name the segment
number (UNB is segment 1) and the byte offset in the file.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass

from core.errors import InvalidInput

# ISO 9735 syntax identifiers (UNB 0001) and the character set each names.
SYNTAX_ENCODINGS = {
    "UNOA": "ascii",  # ISO 646 basic, upper case
    "UNOB": "ascii",  # ISO 646
    "UNOC": "iso8859-1",
    "UNOD": "iso8859-2",
    "UNOE": "iso8859-5",
    "UNOF": "iso8859-7",
    "UNOG": "iso8859-3",
    "UNOH": "iso8859-4",
    "UNOI": "iso8859-6",
    "UNOJ": "iso8859-8",
    "UNOK": "iso8859-9",
    "UNOL": "iso8859-15",
    "UNOW": "utf-8",  # ISO 10646-1, UTF-8
    "UNOY": "utf-8",  # ISO 10646-1 without code extension: UTF-8 in practice
}

HINT_RESEND = "The interchange is cut short or damaged; ask the partner to send it again."
# UNA and its first two separators, or UNB and a syntax identifier: a CSV whose first cell reads
# "UNAVAILABLE" or "UNB" stays a CSV.
_START = re.compile(rb"UNA[^A-Za-z0-9\s]{2}|UNB[^A-Za-z0-9\s][A-Z]{4}[^A-Za-z0-9\s]")
_TAG = re.compile(r"[A-Z][A-Z0-9]{2}")
# Blanks, and the DOS end-of-file mark some old EDI systems still write, may end a file.
_TRAILING_BLANKS = " \t\r\n\x1a"
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class Delimiters:
    component: str = ":"
    element: str = "+"
    release: str | None = "?"
    segment: str = "'"


@dataclass(frozen=True, slots=True)
class Segment:
    number: int  # 1-based, UNB is 1
    offset: int  # character offset in the decoded text
    tag: str
    elements: list[list[str]]  # data elements (the tag excluded), each its components

    def value(self, element: int, component: int = 1) -> str:
        """The text at 1-based ``element`` and ``component``, or ``""``."""
        if element > len(self.elements) or component > len(self.elements[element - 1]):
            return ""
        return self.elements[element - 1][component - 1]


def is_edifact(data: bytes) -> bool:
    """Whether ``data`` starts like an interchange (``UNA`` or ``UNB``, after BOM or blanks)."""
    head = data.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n")[:16]
    return _START.match(head) is not None


def decode(data: bytes) -> tuple[str, int, Delimiters, str, str]:
    """The text after the BOM and leading blanks, its byte offset, separators, syntax, codec."""
    start = len(data) - len(data.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n"))
    head = data[start : start + 512].decode("latin-1")
    delimiters, unb_at = _delimiters(head)
    if not head.startswith("UNB", unb_at):
        found = head[unb_at : unb_at + 3] or "the end of the file"
        raise InvalidInput(
            f"EDIFACT source does not start with an interchange header: expected UNB at byte "
            f"{start + unb_at}, found {found!r}",
            "An EDIFACT file starts with UNA or UNB; this is not EDIFACT, or it is damaged.",
        )
    identifier = re.split(
        f"[{re.escape(delimiters.component + delimiters.element + delimiters.segment)}]",
        head[unb_at + 4 :],
    )
    syntax = identifier[0]
    version = identifier[1] if len(identifier) > 1 else ""
    encoding = SYNTAX_ENCODINGS.get(syntax)
    if encoding is None:
        raise InvalidInput(
            f"EDIFACT source has an unknown syntax identifier {syntax!r} in UNB (segment 1, "
            f"byte {start + unb_at + 4})",
            f"Supported are {', '.join(SYNTAX_ENCODINGS)} (ISO 9735); ask the partner which "
            "character set the file uses.",
        )
    nul = data.find(b"\x00", start)
    if nul >= 0:
        raise InvalidInput(
            f"EDIFACT source contains binary data: a NUL byte at byte {nul} (segment "
            f"{_segment_number(data, start, nul, delimiters)})",
            "This is not an EDIFACT text file, or it is damaged; ask the partner to send it again.",
        )
    try:
        text = data[start:].decode(encoding)
    except UnicodeDecodeError as error:
        offset = start + error.start
        raise InvalidInput(
            f"EDIFACT source declares {syntax} ({encoding.upper()}) but byte "
            f"0x{data[offset]:02X} at byte {offset} (segment "
            f"{_segment_number(data, start, offset, delimiters)}) is not in that character set",
            "The partner's system must declare the character set it writes (UNOC for "
            "Latin-1, UNOW for UTF-8...) or write only characters of the one it declares.",
        ) from None
    syntax_text = f"{syntax} version {version}" if version else syntax
    return text, start, delimiters, syntax_text, encoding


def _delimiters(head: str) -> tuple[Delimiters, int]:
    """The separators (from UNA or the defaults) and where UNB starts in ``head``."""
    if not head.startswith("UNA"):
        return Delimiters(), 0
    if len(head) < 9:
        raise InvalidInput(
            f"EDIFACT source ends inside its UNA segment ({len(head)} bytes, UNA needs 9)",
            HINT_RESEND,
        )
    # UNA: component, element, decimal mark, release, reserved (repetition in v4), terminator.
    component, element, release, segment = head[3], head[4], head[6], head[8]
    delimiters = Delimiters(component, element, None if release == " " else release, segment)
    if len({component, element, segment}) < 3 or release in (component, element, segment):
        raise InvalidInput(
            f"EDIFACT source's UNA declares the same character twice in {head[3:9]!r}",
            "The separators in UNA must differ; the file is damaged or not EDIFACT.",
        )
    at = 9
    while at < len(head) and head[at] in "\r\n":
        at += 1
    return delimiters, at


def _segment_number(data: bytes, start: int, offset: int, delimiters: Delimiters) -> int:
    """The segment holding byte ``offset`` (approximate: released terminators count too)."""
    terminators = data.count(delimiters.segment.encode("latin-1"), start, offset)
    return max(1, terminators + (0 if data[start:].startswith(b"UNA") else 1))


class Reader:
    """Splits the decoded text into segments, and turns offsets into error positions."""

    def __init__(self, text: str, base: int, encoding: str, delimiters: Delimiters) -> None:
        self.text, self.base, self.encoding, self.delimiters = text, base, encoding, delimiters

    def byte_offset(self, offset: int) -> int:
        """Byte offset in the file of character ``offset`` of the text."""
        if self.encoding != "utf-8":
            return self.base + offset  # one byte per character
        return self.base + len(self.text[:offset].encode("utf-8"))

    def where(self, segment: Segment) -> str:
        return f"segment {segment.number} ({segment.tag}), byte {self.byte_offset(segment.offset)}"

    def segments(self) -> Iterator[Segment]:
        text, delimiters = self.text, self.delimiters
        terminator, release = delimiters.segment, delimiters.release
        position = 9 if text.startswith("UNA") else 0
        number = 0
        while True:
            while (
                position < len(text) and text[position] in "\r\n" and text[position] != (terminator)
            ):
                position += 1
            if position >= len(text):
                return
            end = text.find(terminator, position)
            while end >= 0 and release and _released(text, end, position, release):
                end = text.find(terminator, end + 1)
            if end < 0 and not text[position:].strip(_TRAILING_BLANKS):
                return
            number += 1
            if end < 0:
                raise InvalidInput(
                    f"EDIFACT source ends inside segment {number} "
                    f"({text[position : position + 3]!r}, byte {self.byte_offset(position)}): "
                    f"it has no segment terminator {terminator!r}",
                    HINT_RESEND,
                )
            yield self._segment(number, position, text[position:end])
            position = end + 1

    def _segment(self, number: int, offset: int, raw: str) -> Segment:
        if ("\n" in raw or "\r" in raw) and self.delimiters.segment not in "\r\n":
            raw = raw.replace("\r", "").replace("\n", "")
        bad = _XML_ILLEGAL.search(raw)
        if bad is not None:
            raise InvalidInput(
                f"EDIFACT source holds a character XML cannot carry: U+{ord(bad.group()):04X} "
                f"in segment {number}, byte {self.byte_offset(offset)}",
                "Control characters are not EDIFACT data; the file is damaged or not EDIFACT.",
            )
        fields = _split(raw, self.delimiters)
        tag = fields[0][0] if fields and fields[0] else ""
        if not _TAG.fullmatch(tag):
            raise InvalidInput(
                f"EDIFACT segment {number} (byte {self.byte_offset(offset)}) has no segment "
                f"tag: it starts with {raw[:20]!r}",
                "A segment starts with three capital letters (UNH, BGM...); the file is "
                "damaged or not EDIFACT.",
            )
        return Segment(number, offset, tag, fields[1:])


def _released(text: str, end: int, start: int, release: str) -> bool:
    """Whether the character at ``end`` follows an odd run of release characters."""
    run = 0
    while end - run - 1 >= start and text[end - run - 1] == release:
        run += 1
    return run % 2 == 1


def _split(raw: str, delimiters: Delimiters) -> list[list[str]]:
    """Data elements and their components, release characters removed."""
    element, component, release = delimiters.element, delimiters.component, delimiters.release
    if not release or release not in raw:
        return [part.split(component) for part in raw.split(element)]
    fields: list[list[str]] = []
    components: list[str] = []
    current: list[str] = []
    characters = iter(raw)
    for character in characters:
        if character == release:
            current.append(next(characters, ""))
        elif character == component:
            components.append("".join(current))
            current = []
        elif character == element:
            components.append("".join(current))
            fields.append(components)
            components, current = [], []
        else:
            current.append(character)
    components.append("".join(current))
    fields.append(components)
    return fields
