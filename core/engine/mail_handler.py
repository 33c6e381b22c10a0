"""Queued notification mails: sent one by one, retried with back-off while SMTP is down.

Each mail is its own job, so an SMTP outage delays mails only; envelopes keep flowing. The
Message-ID is fixed when the mail is queued, so a resend after a crash carries the same one.
"""

from __future__ import annotations

import sqlite3

from core.config import SmtpConfig
from core.mail.notification import Notification
from core.mail.smtp import MailDeliveryError, send_mail
from core.storage import jobs, logs
from core.storage.jobs import Job


async def deliver(config: SmtpConfig, job: Job) -> str | None:
    """Send one queued mail; returns the error, or None when the server accepted it."""
    notification = Notification.from_payload(job.payload)
    try:
        await send_mail(config, notification.to_email(), timeout_s=15)
    except MailDeliveryError as exc:
        return str(exc)
    return None


def record(conn: sqlite3.Connection, job: Job, error: str | None, policy: jobs.RetryPolicy) -> None:
    if error is None:
        jobs.complete(conn, job.id)
        logs.append_activity(
            conn, job.mailbox_uuid, "default:notify", "mailed", envelope_uuid=job.ref
        )
    else:
        state = jobs.fail(conn, job, error, policy)
        logs.append_activity(
            conn,
            job.mailbox_uuid,
            "default:notify",
            f"mail {state}",
            envelope_uuid=job.ref,
            error=error,
        )
