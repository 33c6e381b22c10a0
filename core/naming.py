"""Naming patterns of IN rules (SPEC §7): parsed once, so the form can point at the mistake."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.envelope_xml import EnvelopeXml

FORBIDDEN_CHARACTERS = "\\/:?*<>|"
SIMPLE_VARIABLES = ("mailboxUuid", "envelopeUuid", "randomNumber", "templateUuid")
# Java-style (yyyy-MM-dd_HH-mm-ss) and platform-style (DDMMYYYY) date tokens.
_DATE_FORMAT = re.compile(r"^(?:yyyy|yy|MM|dd|DD|YYYY|YY|HH|hh|mm|ss|SSS|[-_. ])+$")


@dataclass(frozen=True)
class Literal:
    text: str


@dataclass(frozen=True)
class Variable:
    name: str  # one of SIMPLE_VARIABLES


@dataclass(frozen=True)
class DateVariable:
    format: str


@dataclass(frozen=True)
class FieldVariable:
    document_id: str
    field_name: str


Token = Literal | Variable | DateVariable | FieldVariable


class NamingPatternError(ValueError):
    pass


def parse_naming_pattern(pattern: str) -> list[Token]:
    """Split a pattern into literals and variables; NamingPatternError says what is wrong."""
    if not pattern.strip():
        raise NamingPatternError("Enter a naming pattern, e.g. {envelopeUuid}.xml")
    tokens: list[Token] = []
    position = 0
    while position < len(pattern):
        start = pattern.find("{", position)
        stray_close = pattern.find("}", position, start if start != -1 else len(pattern))
        if stray_close != -1:
            raise NamingPatternError(f"Unmatched '}}' at position {stray_close + 1}.")
        if start == -1:
            tokens.append(_literal(pattern[position:], position))
            break
        if start > position:
            tokens.append(_literal(pattern[position:start], position))
        end = pattern.find("}", start)
        if end == -1:
            raise NamingPatternError(f"'{{' at position {start + 1} is never closed.")
        tokens.append(_variable(pattern[start + 1 : end], start))
        position = end + 1
    return tokens


def _literal(text: str, offset: int) -> Literal:
    for index, char in enumerate(text):
        if char in FORBIDDEN_CHARACTERS:
            raise NamingPatternError(
                f"'{char}' at position {offset + index + 1} is not allowed in file names "
                f"(forbidden: {' '.join(FORBIDDEN_CHARACTERS)})."
            )
    return Literal(text)


def _variable(body: str, offset: int) -> Token:
    if body in SIMPLE_VARIABLES:
        return Variable(body)
    if body.startswith("date "):
        date_format = body[5:].strip()
        if not _DATE_FORMAT.match(date_format):
            raise NamingPatternError(
                f"Date format '{date_format}' at position {offset + 1} is not understood "
                "(use e.g. DDMMYYYY or yyyy-MM-dd_HH-mm-ss)."
            )
        return DateVariable(date_format)
    if body.startswith('"'):
        try:
            pair = json.loads("{" + body + "}")
        except ValueError:
            pair = None
        if isinstance(pair, dict) and len(pair) == 1:
            ((document_id, field_name),) = pair.items()
            if isinstance(field_name, str) and document_id and field_name:
                return FieldVariable(document_id, field_name)
        raise NamingPatternError(
            f'Field variable at position {offset + 1} must look like {{"documentId":"fieldName"}}.'
        )
    known = ", ".join("{" + v + "}" for v in SIMPLE_VARIABLES)
    raise NamingPatternError(
        f"Unknown variable {{{body}}} at position {offset + 1}; use {known}, "
        '{date FORMAT} or {"documentId":"fieldName"}.'
    )


# --- evaluation -------------------------------------------------------------------------------

EMPTY_NAME = "filename_empty"
MAX_NAME_BYTES = 255
RANDOM_NUMBER_DIGITS = 8
# Both styles in one table: MM is the month in either, mm the minutes; DD/YYYY/YY are the
# platform's spelling of dd/yyyy/yy (not Java's day-of-year and week-year).
_DATE_PARTS = {
    "yyyy": "%Y",
    "YYYY": "%Y",
    "yy": "%y",
    "YY": "%y",
    "MM": "%m",
    "dd": "%d",
    "DD": "%d",
    "HH": "%H",
    "hh": "%I",
    "mm": "%M",
    "ss": "%S",
}
_DATE_TOKEN = re.compile(r"yyyy|yy|MM|dd|DD|YYYY|YY|HH|hh|mm|ss|SSS|[-_. ]")
_UNSAFE_IN_DATA = re.compile("[" + re.escape(FORBIDDEN_CHARACTERS) + r"\x00-\x1f\x7f]")

FieldLookup = Callable[[str, str], str | None]


@dataclass(frozen=True)
class NamingContext:
    """What a naming pattern may refer to, for one received envelope.

    ``received_at`` is the envelope's receive date (a datetime or the ISO 8601 text docbridge
    stores, e.g. ``2026-11-30T12:45:01.123Z``); ``{date ...}`` shows it in its own time zone.
    ``field_value(document_id, field_name)`` gives a top-level field's value, or None when the
    document or field is absent; :meth:`for_envelope` builds it from a parsed envelope.
    """

    mailbox_uuid: str
    envelope_uuid: str
    template_uuid: str
    received_at: datetime | str
    field_value: FieldLookup

    @classmethod
    def for_envelope(
        cls, envelope: EnvelopeXml, *, mailbox_uuid: str, received_at: datetime | str
    ) -> NamingContext:
        """The context of an envelope received by ``mailbox_uuid``; fields inside tables are
        not reachable (SPEC §7), as :meth:`EnvelopeDocument.field_value` reads top-level ones."""

        def field_value(document_id: str, field_name: str) -> str | None:
            document = envelope.document(document_id)
            return None if document is None else document.field_value(field_name)

        return cls(
            mailbox_uuid=mailbox_uuid,
            envelope_uuid=envelope.uuid or "",
            template_uuid=envelope.template_uuid,
            received_at=received_at,
            field_value=field_value,
        )


def render_file_name(pattern: str, context: NamingContext) -> str:
    """The file name a naming pattern gives for one envelope (SPEC §7).

    - Literals are kept as written; a pattern with a forbidden character raises
      :class:`NamingPatternError` (the user wrote it, so the user must fix it).
    - A field value comes from partner data: it is trimmed, and each forbidden character
      (``\\ / : ? * < > |``) or control character in it becomes ``_``. An absent or blank field
      (optional and not filled) is the empty string.
    - ``{randomNumber}`` is one number of 8 digits (leading zeros kept) per name, from
      :mod:`secrets`; every occurrence in the pattern shows the same number.
    - If the pattern has variables and none of them gave any text, or the name without its
      extension is blank or only dots, the name is ``filename_empty`` plus the extension the
      pattern ends with: ``{"order":"buyerReference"}.xml`` with the field empty is
      ``filename_empty.xml``. A pattern of literals only is the name the user asked for.
    - The name is capped to 255 bytes of UTF-8, cutting the stem and keeping the extension.
    """
    tokens = parse_naming_pattern(pattern)
    random_number = f"{secrets.randbelow(10**RANDOM_NUMBER_DIGITS):0{RANDOM_NUMBER_DIGITS}d}"
    received = _as_datetime(context.received_at)
    parts: list[str] = []
    variables_filled = False
    has_variables = False
    for token in tokens:
        if isinstance(token, Literal):
            parts.append(token.text)
            continue
        has_variables = True
        value = _variable_value(token, context, received, random_number)
        variables_filled = variables_filled or bool(value)
        parts.append(value)
    name = "".join(parts)
    extension = _pattern_extension(tokens)
    stem = name[: len(name) - len(extension)] if extension else name
    if (has_variables and not variables_filled) or not stem.strip(". "):
        name = EMPTY_NAME + extension
    return cap_name_length(name)


def name_with_conversion_time(name: str, when: datetime, *, attempt: int = 1) -> str:
    """The name for a file whose name is already taken in ``cinbox/``: the conversion time
    goes before the extension, ``order.xml`` → ``order_20261130-124501.xml``.

    Deterministic for a given time; should that name be taken too (two conversions in one
    second), ``attempt`` 2, 3, ... gives ``order_20261130-124501-2.xml`` and so on.
    """
    stem, extension = split_extension(name)
    suffix = "_" + when.strftime("%Y%m%d-%H%M%S") + (f"-{attempt}" if attempt > 1 else "")
    budget = MAX_NAME_BYTES - len((suffix + extension).encode("utf-8"))
    return _cut_utf8(stem, max(budget, 0)) + suffix + extension


def split_extension(name: str) -> tuple[str, str]:
    """``order.v2.xml`` → (``order.v2``, ``.xml``); a leading dot starts no extension."""
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    return name[:dot], name[dot:]


def cap_name_length(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """``name`` cut to ``max_bytes`` of UTF-8 (file systems' limit), keeping its extension."""
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    stem, extension = split_extension(name)
    if len(extension.encode("utf-8")) >= max_bytes // 2:  # an "extension" that is the name
        stem, extension = name, ""
    return _cut_utf8(stem, max_bytes - len(extension.encode("utf-8"))) + extension


def _cut_utf8(text: str, max_bytes: int) -> str:
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def _variable_value(
    token: Token, context: NamingContext, received: datetime, random_number: str
) -> str:
    if isinstance(token, DateVariable):
        return format_date(received, token.format)
    if isinstance(token, FieldVariable):
        value = context.field_value(token.document_id, token.field_name)
        return _UNSAFE_IN_DATA.sub("_", (value or "").strip())
    assert isinstance(token, Variable)
    values = {
        "mailboxUuid": context.mailbox_uuid,
        "envelopeUuid": context.envelope_uuid,
        "templateUuid": context.template_uuid,
        "randomNumber": random_number,
    }
    return _UNSAFE_IN_DATA.sub("_", values[token.name])


def format_date(when: datetime, date_format: str) -> str:
    """``when`` in a ``{date FORMAT}`` format of either style: ``DDMMYYYY`` → ``30112026``,
    ``yyyy-MM-dd_HH-mm-ss`` → ``2026-11-30_12-45-01`` (``SSS``: milliseconds, ``hh``: 01-12)."""
    out: list[str] = []
    for part in _DATE_TOKEN.findall(date_format):
        if part == "SSS":
            out.append(f"{when.microsecond // 1000:03d}")
        else:
            out.append(when.strftime(_DATE_PARTS[part]) if part in _DATE_PARTS else part)
    return "".join(out)


def _as_datetime(value: datetime | str) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _pattern_extension(tokens: list[Token]) -> str:
    """The extension the pattern writes itself (its last literal's ``.xml``), else ``""``."""
    if not tokens or not isinstance(tokens[-1], Literal):
        return ""
    last = tokens[-1].text
    dot = last.rfind(".")
    return last[dot:] if dot != -1 and dot < len(last) - 1 else ""
