"""Naming patterns of IN rules (SPEC §7): parsed once, so the form can point at the mistake."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

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
