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

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

from core.conversion.edifact_tables import GroupWalker, message_structure
from core.conversion.edifact_tokens import (
    HINT_RESEND,
    SYNTAX_ENCODINGS,
    Reader,
    Segment,
    decode,
    is_edifact,
)
from core.conversion.markup import escape_text
from core.errors import InvalidInput

__all__ = ["EDIFACT_SUFFIXES", "SYNTAX_ENCODINGS", "EdifactView", "edifact_view", "is_edifact"]

EDIFACT_SUFFIXES = (".edi", ".edifact")
_MESSAGE_TYPE = re.compile(r"[A-Z][A-Z0-9]{0,5}")


@dataclass(frozen=True, slots=True)
class EdifactView:
    xml: bytes
    details: str


def edifact_view(data: bytes) -> EdifactView:
    """The XML view of the interchange ``data`` (see the module docstring for the contract)."""
    text, base, delimiters, syntax, encoding = decode(data)
    reader = Reader(text, base, encoding, delimiters)
    writer = _ViewWriter(reader)
    writer.write(reader.segments())
    shown = encoding.upper().replace("ISO8859", "ISO-8859")
    details = f"{writer.root}, syntax {syntax}, encoding {shown}"
    if text.startswith("UNA"):
        details += f", UNA separators {text[3:9]!r}"
    return EdifactView(writer.xml(), details + writer.summary())


# --- writing ----------------------------------------------------------------------------------


class _ViewWriter:
    """Writes segments into the view as they come, checking the envelope on the way."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.out = io.BytesIO()
        self._pending: list[str] = []  # markup not yet encoded into out
        self.root = "EDIFACT"
        self.messages: dict[str, int] = {}
        self.flat: set[str] = set()
        self.misplaced = 0
        self._header: Segment | None = None
        self._message: Segment | None = None
        self._count = 0
        self._walker: GroupWalker | None = None
        self._done: Segment | None = None
        self._open_groups: list[int] = []
        self._functional_groups = 0

    def write(self, segments: Iterator[Segment]) -> None:
        head: list[Segment] = []
        for segment in segments:
            head.append(segment)
            if segment.tag in ("UNH", "UNZ") or len(head) > 3:
                break
        unh = next((segment for segment in head if segment.tag == "UNH"), None)
        if unh is not None and unh.value(2, 5).upper().startswith("EAN"):
            self.root = "EANCOM"
        self._write(f"<?xml version='1.0' encoding='UTF-8'?>\n<{self.root}>")
        for segment in head:
            self._segment(segment)
        for segment in segments:
            self._segment(segment)
        self._finish()
        self._write(f"</{self.root}>")
        self._flush()

    def xml(self) -> bytes:
        return self.out.getvalue()

    def _write(self, markup: str) -> None:
        # Encoded a few hundred segments at a time: per segment, the calls cost as much as
        # the markup itself (measured).
        self._pending.append(markup)
        if len(self._pending) >= 512:
            self._flush()

    def _flush(self) -> None:
        self.out.write("".join(self._pending).encode())
        self._pending.clear()

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

    def _segment(self, segment: Segment) -> None:
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

    def _open_message(self, segment: Segment) -> None:
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
        self._write(f"<{kind}>")
        self._emit(segment)

    def _place(self, segment: Segment) -> None:
        walker = self._walker
        if walker is not None:
            move = walker.place(segment.tag)
            if move is None:
                self.misplaced += 1
            else:
                closed, opened = move
                if closed:
                    self._write(self._closing(closed))
                if opened is not None:
                    self._open_groups.append(opened)
                    self._write(f"<GROUP_{opened}>")
        self._emit(segment)

    def _closing(self, count: int) -> str:
        """End tags for the ``count`` innermost open groups."""
        closing = [f"</GROUP_{self._open_groups.pop()}>" for _ in range(count)]
        return "".join(closing)

    def _close_message(self, segment: Segment) -> None:
        message = self._message
        if message is None:
            raise self._error(segment, "closes a message that was not opened (no UNH before it)")
        self._count += 1
        self._write(self._closing(len(self._open_groups)))
        self._emit(segment)
        self._write(f"</{message.value(2, 1)}>")
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

    def _check_trailer(self, segment: Segment) -> None:
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
                HINT_RESEND,
            )
        if self._done is None:
            raise InvalidInput(
                "EDIFACT source ends without the interchange trailer UNZ",
                HINT_RESEND,
            )

    def _emit(self, segment: Segment) -> None:
        if segment.tag == "UNG":
            self._functional_groups += 1
        self._write(_segment_markup(segment))

    def _unclosed(self, segment: Segment) -> InvalidInput:
        message = self._message
        assert message is not None
        return self._error(
            segment,
            f"comes while message {message.value(1)!r} (UNH at segment {message.number}) "
            "has no UNT yet",
        )

    def _error(self, segment: Segment, problem: str) -> InvalidInput:
        return InvalidInput(f"EDIFACT {self.reader.where(segment)} {problem}", HINT_RESEND)


def _segment_markup(segment: Segment) -> str:
    tag = segment.tag
    parts = [f"<{tag}>"]
    for index, components in enumerate(segment.elements, 1):
        if not any(components):
            continue
        name = f"{tag}{index:02d}"
        parts.append(f"<{name}>")
        for position, value in enumerate(components, 1):
            if value:
                parts.append(f"<{name}{position:02d}>{escape_text(value)}</{name}{position:02d}>")
        parts.append(f"</{name}>")
    parts.append(f"</{tag}>")
    return "".join(parts)
