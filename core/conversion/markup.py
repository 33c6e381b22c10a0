"""Escaping text into the XML views of sources (workbooks, CSV, EDIFACT), written as strings
for speed rather than built as trees."""

from __future__ import annotations


def escape_text(text: str) -> str:
    """Character data, so that a parser reads back exactly ``text``."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        # Kept as a reference: a parser would turn a literal carriage return into "\n".
        text = text.replace("\r", "&#13;")
    return text


def escape_attribute(text: str) -> str:
    """A double-quoted attribute value, read back exactly (tabs and line breaks included:
    attribute-value normalisation would turn them into spaces)."""
    text = escape_text(text).replace('"', "&quot;")
    return text.replace("\t", "&#9;").replace("\n", "&#10;")
