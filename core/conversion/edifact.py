"""The XML view of an EDIFACT (or EANCOM) interchange, for OUT rules whose source is EDIFACT.

The view is the one the original platform documented, so its stylesheets run unchanged::

    <EANCOM>                                  (EDIFACT unless the UNH association code is EAN...)
      <UNB><UNB01><UNB0101>UNOC</UNB0101><UNB0102>3</UNB0102></UNB01>...</UNB>
      <ORDERS>                                (one element per message, named by its type)
        <UNH>...</UNH>
        <BGM><BGM01><BGM0101>220</BGM0101></BGM01><BGM02><BGM0201>128576</BGM0201></BGM02></BGM>
        <GROUP_2><NAD>...</NAD><GROUP_3><RFF>...</RFF></GROUP_3></GROUP_2>
        <UNT>...</UNT>
      </ORDERS>
      <UNZ>...</UNZ>
    </EANCOM>

Contract:

- A segment is named by its tag, its data elements ``TAG01``, ``TAG02``... and their components
  ``TAG0101``..., also when an element has one component (``BGM/BGM02/BGM0201``). Empty
  components, and elements whose components are all empty, are omitted: the names carry the
  positions, as the ``index`` attributes do in the workbook view.
- Segment groups are ``GROUP_n``, numbered and nested as in the UN/EDIFACT directory of the
  message's release (``data/edifact/``: D96A and D01B, all their messages). A message of another
  release holds its segments flat. A segment the directory does not allow where it stands is kept
  where it stood (in the innermost open group) and counted in ``details``: dropping data, or
  refusing a file its partner's other systems accept, would both surprise more than a segment
  outside its group.
- ``UNA`` sets the separators (it is not in the view); the release character is honoured; line
  breaks between and inside segments are formatting and dropped (unless a line break is the
  segment terminator). ``UNG``/``UNE`` are children of the root, like ``UNB``/``UNZ``. The
  repetition separator of syntax version 4 is kept as text.
- The syntax identifier in UNB chooses the decoding (:data:`SYNTAX_ENCODINGS`); a byte the
  declared character set does not have is an error, not a guess.
- A truncated interchange (no UNZ, a message without UNT, a UNT or UNZ count that does not match,
  a file ending inside a segment), binary data and an unknown syntax identifier raise
  :class:`~core.errors.InvalidInput` naming EDIFACT, the segment number (UNB is segment 1) and
  the byte offset in the file.

The view is written as escaped text, a segment at a time, without a DOM: its size is about four
times the interchange's (measured).
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

from core.conversion.edifact_tables import GroupWalker, message_structure
from core.errors import InvalidInput

__all__ = ["EDIFACT_SUFFIXES", "SYNTAX_ENCODINGS", "EdifactView", "edifact_view", "is_edifact"]

EDIFACT_SUFFIXES = (".edi", ".edifact")

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

_HINT_RESEND = "The interchange is cut short or damaged; ask the partner to send it again."
# UNA and its first two separators, or UNB and a syntax identifier: a CSV whose first cell reads
# "UNAVAILABLE" or "UNB" stays a CSV.
_START = re.compile(rb"UNA[^A-Za-z0-9\s]{2}|UNB[^A-Za-z0-9\s][A-Z]{4}[^A-Za-z0-9\s]")
_TAG = re.compile(r"[A-Z][A-Z0-9]{2}")
_MESSAGE_TYPE = re.compile(r"[A-Z][A-Z0-9]{0,5}")
# Blanks, and the DOS end-of-file mark some old EDI systems still write, may end a file.
_TRAILING_BLANKS = " \t\r\n\x1a"
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class EdifactView:
    xml: bytes
    details: str


@dataclass(frozen=True, slots=True)
class _Delimiters:
    component: str = ":"
    element: str = "+"
    release: str | None = "?"
    segment: str = "'"


@dataclass(frozen=True, slots=True)
class _Segment:
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


def edifact_view(data: bytes) -> EdifactView:
    """The XML view of the interchange ``data`` (see the module docstring for the contract)."""
    text, base, delimiters, syntax, encoding = _decode(data)
    reader = _Reader(text, base, encoding, delimiters)
    writer = _ViewWriter(reader)
    writer.write(reader.segments())
    shown = encoding.upper().replace("ISO8859", "ISO-8859")
    details = f"{writer.root}, syntax {syntax}, encoding {shown}"
    if text.startswith("UNA"):
        details += f", UNA separators {text[3:9]!r}"
    return EdifactView(writer.xml(), details + writer.summary())


# --- reading ----------------------------------------------------------------------------------


def _decode(data: bytes) -> tuple[str, int, _Delimiters, str, str]:
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


def _delimiters(head: str) -> tuple[_Delimiters, int]:
    """The separators (from UNA or the defaults) and where UNB starts in ``head``."""
    if not head.startswith("UNA"):
        return _Delimiters(), 0
    if len(head) < 9:
        raise InvalidInput(
            f"EDIFACT source ends inside its UNA segment ({len(head)} bytes, UNA needs 9)",
            _HINT_RESEND,
        )
    # UNA: component, element, decimal mark, release, reserved (repetition in v4), terminator.
    component, element, release, segment = head[3], head[4], head[6], head[8]
    delimiters = _Delimiters(component, element, None if release == " " else release, segment)
    if len({component, element, segment}) < 3 or release in (component, element, segment):
        raise InvalidInput(
            f"EDIFACT source's UNA declares the same character twice in {head[3:9]!r}",
            "The separators in UNA must differ; the file is damaged or not EDIFACT.",
        )
    at = 9
    while at < len(head) and head[at] in "\r\n":
        at += 1
    return delimiters, at


def _segment_number(data: bytes, start: int, offset: int, delimiters: _Delimiters) -> int:
    """The segment holding byte ``offset`` (approximate: released terminators count too)."""
    terminators = data.count(delimiters.segment.encode("latin-1"), start, offset)
    return max(1, terminators + (0 if data[start:].startswith(b"UNA") else 1))


class _Reader:
    """Splits the decoded text into segments, and turns offsets into error positions."""

    def __init__(self, text: str, base: int, encoding: str, delimiters: _Delimiters) -> None:
        self.text, self.base, self.encoding, self.delimiters = text, base, encoding, delimiters

    def byte_offset(self, offset: int) -> int:
        """Byte offset in the file of character ``offset`` of the text."""
        if self.encoding != "utf-8":
            return self.base + offset  # one byte per character
        return self.base + len(self.text[:offset].encode("utf-8"))

    def where(self, segment: _Segment) -> str:
        return f"segment {segment.number} ({segment.tag}), byte {self.byte_offset(segment.offset)}"

    def segments(self) -> Iterator[_Segment]:
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
                    _HINT_RESEND,
                )
            yield self._segment(number, position, text[position:end])
            position = end + 1

    def _segment(self, number: int, offset: int, raw: str) -> _Segment:
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
        return _Segment(number, offset, tag, fields[1:])


def _released(text: str, end: int, start: int, release: str) -> bool:
    """Whether the character at ``end`` follows an odd run of release characters."""
    run = 0
    while end - run - 1 >= start and text[end - run - 1] == release:
        run += 1
    return run % 2 == 1


def _split(raw: str, delimiters: _Delimiters) -> list[list[str]]:
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


# --- writing ----------------------------------------------------------------------------------


class _ViewWriter:
    """Writes segments into the view as they come, checking the envelope on the way."""

    def __init__(self, reader: _Reader) -> None:
        self.reader = reader
        self.out = io.BytesIO()
        self.root = "EDIFACT"
        self.messages: dict[str, int] = {}
        self.flat: set[str] = set()
        self.misplaced = 0
        self._header: _Segment | None = None
        self._message: _Segment | None = None
        self._count = 0
        self._walker: GroupWalker | None = None
        self._done: _Segment | None = None
        self._open_groups: list[int] = []
        self._functional_groups = 0

    def write(self, segments: Iterator[_Segment]) -> None:
        head: list[_Segment] = []
        for segment in segments:
            head.append(segment)
            if segment.tag in ("UNH", "UNZ") or len(head) > 3:
                break
        unh = next((segment for segment in head if segment.tag == "UNH"), None)
        if unh is not None and unh.value(2, 5).upper().startswith("EAN"):
            self.root = "EANCOM"
        self.out.write(f"<?xml version='1.0' encoding='UTF-8'?>\n<{self.root}>".encode())
        for segment in head:
            self._segment(segment)
        for segment in segments:
            self._segment(segment)
        self._finish()
        self.out.write(f"</{self.root}>".encode())

    def xml(self) -> bytes:
        return self.out.getvalue()

    def summary(self) -> str:
        count = sum(self.messages.values())
        kinds = ", ".join(
            f"{name}"
            + (f" x{number}" if number > 1 else "")
            + (" (flat)" if name in self.flat else "")
            for name, number in self.messages.items()
        )
        text = f", {count} message{'s' if count != 1 else ''}" + (f": {kinds}" if kinds else "")
        if self.misplaced:
            text += (
                f"; {self.misplaced} segment{'s' if self.misplaced != 1 else ''} outside the "
                "directory's structure kept where they stood"
            )
        return text

    def _segment(self, segment: _Segment) -> None:
        if self._done is not None:
            raise self._error(segment, f"follows UNZ (segment {self._done.number})")
        if self._header is None:
            if segment.tag != "UNB":
                raise self._error(segment, "comes before the interchange header UNB")
            self._header = segment
            self._emit(segment)
            return
        tag = segment.tag
        if tag == "UNH":
            self._open_message(segment)
        elif tag == "UNT":
            self._close_message(segment)
        elif tag in ("UNB", "UNZ", "UNG", "UNE"):
            if self._message is not None:
                raise self._unclosed(segment)
            if tag == "UNB":
                raise self._error(segment, "is a second interchange header")
            if tag == "UNZ":
                self._check_trailer(segment)
            self._emit(segment)
        elif self._message is None:
            raise self._error(segment, "stands outside a message (no UNH before it)")
        else:
            self._count += 1
            self._place(segment)

    def _open_message(self, segment: _Segment) -> None:
        if self._message is not None:
            raise self._unclosed(segment)
        kind = segment.value(2, 1)
        if not _MESSAGE_TYPE.fullmatch(kind):
            raise self._error(segment, f"has no valid message type in UNH02 ({kind!r})")
        release = segment.value(2, 2) + segment.value(2, 3)
        name = f"{kind} {release}" if release else kind
        self.messages[name] = self.messages.get(name, 0) + 1
        structure = message_structure(release, kind)
        self._walker = GroupWalker(structure) if structure is not None else None
        if structure is None:
            self.flat.add(name)
        self._message, self._count = segment, 1
        self.out.write(f"<{kind}>".encode())
        self._emit(segment)

    def _place(self, segment: _Segment) -> None:
        walker = self._walker
        if walker is not None:
            move = walker.place(segment.tag)
            if move is None:
                self.misplaced += 1
            else:
                closed, opened = move
                self.out.write(self._closing(closed))
                if opened is not None:
                    self._open_groups.append(opened)
                    self.out.write(f"<GROUP_{opened}>".encode())
        self._emit(segment)

    def _closing(self, count: int) -> bytes:
        """End tags for the ``count`` innermost open groups."""
        closing = [f"</GROUP_{self._open_groups.pop()}>" for _ in range(count)]
        return "".join(closing).encode()

    def _close_message(self, segment: _Segment) -> None:
        message = self._message
        if message is None:
            raise self._error(segment, "closes a message that was not opened (no UNH before it)")
        self._count += 1
        self.out.write(self._closing(len(self._open_groups)))
        self._emit(segment)
        self.out.write(f"</{message.value(2, 1)}>".encode())
        declared = segment.value(1)
        if declared != str(self._count):
            raise self._error(
                segment,
                f"says message {message.value(1)!r} has {declared or 'no'} segments, but it has "
                f"{self._count} (UNH at segment {message.number})",
            )
        if segment.value(2) != message.value(1):
            raise self._error(
                segment,
                f"closes message {segment.value(2)!r}, but the open message is "
                f"{message.value(1)!r} (UNH at segment {message.number})",
            )
        self._message, self._walker = None, None

    def _check_trailer(self, segment: _Segment) -> None:
        header = self._header
        assert header is not None
        self._done = segment
        count = sum(self.messages.values())
        declared = segment.value(1)
        # UNZ counts functional groups (UNG) when there are any, else messages.
        expected = self._functional_groups or count
        if declared != str(expected):
            what = "functional groups" if self._functional_groups else "messages"
            raise self._error(
                segment, f"counts {declared or 'no'} {what}, but the interchange has {expected}"
            )
        if segment.value(2) != header.value(5):
            raise self._error(
                segment,
                f"has control reference {segment.value(2)!r}, but UNB has {header.value(5)!r}",
            )

    def _finish(self) -> None:
        if self._message is not None:
            message = self._message
            raise InvalidInput(
                f"EDIFACT source ends inside message {message.value(1)!r} "
                f"({self.reader.where(message)} is its UNH): it has no UNT",
                _HINT_RESEND,
            )
        if self._done is None:
            raise InvalidInput(
                "EDIFACT source ends without the interchange trailer UNZ",
                _HINT_RESEND,
            )

    def _emit(self, segment: _Segment) -> None:
        if segment.tag == "UNG":
            self._functional_groups += 1
        self.out.write(_segment_markup(segment).encode())

    def _unclosed(self, segment: _Segment) -> InvalidInput:
        message = self._message
        assert message is not None
        return self._error(
            segment,
            f"comes while message {message.value(1)!r} (UNH at segment {message.number}) "
            "has no UNT yet",
        )

    def _error(self, segment: _Segment, problem: str) -> InvalidInput:
        return InvalidInput(f"EDIFACT {self.reader.where(segment)} {problem}", _HINT_RESEND)


def _segment_markup(segment: _Segment) -> str:
    tag = segment.tag
    parts = [f"<{tag}>"]
    for index, components in enumerate(segment.elements, 1):
        if not any(components):
            continue
        name = f"{tag}{index:02d}"
        parts.append(f"<{name}>")
        for position, value in enumerate(components, 1):
            if value:
                parts.append(f"<{name}{position:02d}>{_escape(value)}</{name}{position:02d}>")
        parts.append(f"</{name}>")
    parts.append(f"</{tag}>")
    return "".join(parts)


def _escape(text: str) -> str:
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text
