"""Showing values a user or a partner controls, safely, on one line."""

from __future__ import annotations

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` safe on one line of a terminal, a log or a mail: every character that is not
    printable (CR, LF, ESC and other controls, line separators, bidi overrides, bytes that were
    not UTF-8) is written as its escape (``\\r``, ``\\x1b``, ``\\u202e``), as ``repr`` would.

    Values a user or a partner controls (names, subjects, file names, reasons) are echoed into
    error lines and mails; raw, a CR/LF in one forges a line of its own (log and mail injection)
    and an escape sequence rewrites the terminal. Printable text, non-ASCII included, is kept.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
