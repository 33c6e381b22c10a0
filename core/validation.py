"""Checks on single values typed by a user. Each returns an error message, or None when fine."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

REJECT_REASON_MIN = 5
REJECT_REASON_MAX = 5000
AS2_ID_MAX = 128

# Pragmatic address check: one @, a dot-separated domain with a TLD, no spaces or controls.
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)


def check_email(value: str) -> str | None:
    if not value:
        return "Enter an email address."
    if len(value) > 254 or not _EMAIL.match(value) or ".." in value.split("@")[0]:
        return f"'{value}' is not a valid email address (expected name@example.com)."
    return None


def check_reject_reason(value: str) -> str | None:
    length = len(value.strip())
    if length < REJECT_REASON_MIN:
        return (
            f"Reject reason must be {REJECT_REASON_MIN}-{REJECT_REASON_MAX} characters "
            f"(it has {length})."
        )
    if len(value) > REJECT_REASON_MAX:
        return (
            f"Reject reason must be at most {REJECT_REASON_MAX} characters (it has {len(value)})."
        )
    return None


def check_as2_id(value: str, label: str) -> str | None:
    """AS2 names (RFC 4130 §6.2): 1-128 printable ASCII characters; quotes and backslash are
    allowed by the RFC only quoted, so we refuse them to keep headers simple."""
    if not value:
        return f"Enter the {label} (1-{AS2_ID_MAX} printable ASCII characters)."
    if len(value) > AS2_ID_MAX:
        return f"{label} must be at most {AS2_ID_MAX} characters (it has {len(value)})."
    bad = sorted({c for c in value if not (0x21 <= ord(c) <= 0x7E) or c in '"\\'})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return f"{label} may only contain printable ASCII without spaces, quotes or \\ ({shown})."
    return None


def check_url(value: str, label: str) -> str | None:
    if not value:
        return f"Enter the {label} (http:// or https://)."
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a non-numeric port
    except ValueError as exc:
        return f"{label} is not a valid URL: {exc}."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{label} must start with http:// or https:// and name a host."
    if port == 0 or any(c.isspace() for c in value):
        return f"{label} is not a valid URL."
    return None


def as2_id_from_name(name: str) -> str:
    """A valid AS2 ID derived from a mailbox name, to pre-fill Self ID."""
    cleaned = "".join(c if 0x21 <= ord(c) <= 0x7E and c not in '"\\' else "_" for c in name)
    return cleaned.strip("_")[:AS2_ID_MAX] or "docbridge"
