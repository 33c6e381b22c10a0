"""Certificate expiry: days left, the warning thresholds (30/14/7/1 days), and the one mail per
threshold that tells the notify address.

Partners refuse messages signed or encrypted with an expired certificate, and renewing means an
exchange of certificates with each partner ahead of time: hence warnings a month out. Pure
functions and one unit of work (:func:`queue_expiry_mails`, for ``Database.write``).
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime

from core.mail.notification import Notification
from core.models import CertificateExpiry, CertificateWarning, JobKind
from core.storage import jobs
from core.storage.connection import Tx
from core.storage.integrations import as2_certificates
from core.text import printable

WARNING_DAYS = (30, 14, 7, 1)
SECONDS_PER_DAY = 86400


def expiry(not_after: datetime, now: datetime) -> CertificateExpiry:
    """Days left (rounded up: a certificate valid 2 more hours has 1 day left; 0 once expired)
    and the warning threshold reached, if any."""
    seconds = (not_after - now).total_seconds()
    days = max(0, math.ceil(seconds / SECONDS_PER_DAY))
    reached = [d for d in WARNING_DAYS if days <= d]
    return CertificateExpiry(
        not_after=not_after,
        days_left=days,
        expired=seconds <= 0,
        threshold=min(reached) if reached else None,
    )


def describe(found: CertificateExpiry) -> str:
    """For the page, ``status`` and mails: "expired", "1 day left", "12 days left"."""
    if found.expired:
        return "expired"
    return f"{found.days_left} day{'s' if found.days_left != 1 else ''} left"


def warnings(conn: Tx, now: datetime) -> list[CertificateWarning]:
    """Every AS2 certificate (ours and partners') at or past a warning threshold."""
    from core.as2.certificates import read_certificates  # cryptography: on demand

    found: list[CertificateWarning] = []
    for row in as2_certificates(conn):
        for _block, info in read_certificates(row.pem):
            state = expiry(info.not_after, now)
            if state.threshold is None:
                continue
            found.append(
                CertificateWarning(
                    row.mailbox_uuid,
                    row.mailbox_name,
                    row.which,
                    info.fingerprint_sha256,
                    row.notify_email,
                    state,
                )
            )
    return found


def queue_expiry_mails(conn: Tx, now: datetime, sender: str) -> int:
    """One mail per certificate and threshold to the mailbox's notify address; returns how
    many were queued now (the mail job's key makes a second call queue none)."""
    queued = 0
    for warning in warnings(conn, now):
        if not warning.notify_email:
            continue
        key = hashlib.sha256(warning.fingerprint.encode()).hexdigest()[:16]
        ref = f"certificate:{warning.mailbox_uuid}:{warning.which}:{key}:{warning.expiry.threshold}"
        mail = _mail(warning, sender, ref)
        if jobs.enqueue(conn, JobKind.MAIL, ref, warning.mailbox_uuid, mail.to_payload()):
            queued += 1
    return queued


def _mail(warning: CertificateWarning, sender: str, ref: str) -> Notification:
    domain = printable(sender.rpartition("@")[2]) or "docbridge.local"
    whose = "Our own AS2 certificate" if warning.which == "self" else "The partner's certificate"
    mailbox = printable(warning.mailbox_name)
    left = describe(warning.expiry)
    until = warning.expiry.not_after.strftime("%Y-%m-%d %H:%M UTC")
    what_to_do = (
        "Generate a new self certificate in docbridge and send it to the partner before then."
        if warning.which == "self"
        else "Ask the partner for its new certificate and load it in docbridge before then."
    )
    lines = [
        f"{whose} for mailbox {mailbox} is valid until {until} ({left}).",
        f"SHA-256 fingerprint: {warning.fingerprint}",
        "",
        f"After that day the partner (or we) will refuse the messages. {what_to_do}",
    ]
    digest = hashlib.sha256(ref.encode()).hexdigest()[:24]
    return Notification(
        message_id=f"<{digest}.certificate@{domain}>",
        sender=sender,
        recipient=warning.notify_email,
        subject=f"[docbridge] AS2 certificate of {mailbox}: {left}",
        body="\n".join(lines) + "\n",
    )
