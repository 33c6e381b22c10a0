"""How a certificate reads on the page: subject, fingerprint, expiry with the days left."""

from __future__ import annotations

import contextlib
from datetime import datetime

from rich.text import Text

from core.models import CertificateExpiry


def certificate_lines(
    subject: str, fingerprint: str, not_after: str, expiry: CertificateExpiry | None = None
) -> Text:
    """Subject, fingerprint and expiry (with the days left and a warning from 30 days out);
    the fingerprint split at a colon to keep pairs whole."""
    shown = not_after
    with contextlib.suppress(ValueError):
        shown = datetime.fromisoformat(not_after).strftime("%Y-%m-%d %H:%M UTC")
    half = len(fingerprint.split(":")) // 2
    pairs = fingerprint.split(":")
    text = Text()
    text.append("Subject ", style="dim")
    text.append(subject)
    text.append("\nSHA-256 ", style="dim")
    text.append(":".join(pairs[:half]) + ":" if half else fingerprint)
    if half:
        text.append("\n        " + ":".join(pairs[half:]))
    text.append("\nExpires ", style="dim")
    text.append(shown)
    if expiry is not None:
        text.append_text(days_left(expiry))
    return text


def days_left(expiry: CertificateExpiry) -> Text:
    """ " (3649 days left)", or a warning once a threshold (30/14/7/1 days) is reached."""
    if expiry.expired:
        return Text(" EXPIRED: partners refuse it; renew it now", style="bold red")
    plural = "s" if expiry.days_left != 1 else ""
    left = f" ({expiry.days_left} day{plural} left)"
    if expiry.threshold is None:
        return Text(left, style="dim")
    style = "bold red" if expiry.threshold <= 7 else "bold yellow"
    return Text(f"{left} renew it before then", style=style)
