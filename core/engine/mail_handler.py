"""Queued notification mails: sent over one connection per batch, each recorded as soon as the
server accepts it, retried with back-off while SMTP is down.

Mails are their own jobs, so an SMTP outage delays mails only; envelopes keep flowing. The
Message-ID is fixed when the mail is queued, so a resend after a crash (between the server's
250 and our commit: SMTP offers no way to ask) carries the same one.
"""

from __future__ import annotations

from typing import Protocol

from core.config import SmtpConfig
from core.mail.notification import Notification
from core.mail.smtp import MailDeliveryError, smtp_session
from core.models import AttemptOutcome, Job
from core.storage import jobs, logs
from core.storage.connection import Tx, concurrent_write


class Recorder(Protocol):
    async def __call__(self, job: Job, error: str | None, permanent: bool = False) -> None: ...


async def deliver_batch(config: SmtpConfig, batch: list[Job], record: Recorder) -> None:
    """Send each queued mail and ``record`` its outcome (None = accepted) right away."""
    try:
        async with smtp_session(config, timeout_s=15) as session:
            for index, job in enumerate(batch):
                try:
                    message = Notification.from_payload(job.payload).to_email()
                except Exception as exc:  # a defect in this one item: it fails alone
                    await record(job, _unusable(exc), permanent=True)
                    continue
                try:
                    await session.send(message)
                except MailDeliveryError as exc:
                    await record(job, str(exc))
                    if _connection_lost(exc):
                        for rest in batch[index + 1 :]:
                            await record(rest, str(exc))
                        return
                else:
                    await record(job, None)
    except MailDeliveryError as exc:
        for job in batch:
            await record(job, str(exc))


def _unusable(exc: Exception) -> str:
    return (
        f"This notification cannot be built ({type(exc).__name__}: {exc}); it is parked, "
        "as sending it again cannot help. Report it, and reprocess it once fixed."
    )


def _connection_lost(exc: MailDeliveryError) -> bool:
    return isinstance(exc.__cause__, OSError | TimeoutError) or "disconnect" in str(exc).lower()


@concurrent_write  # rows of its own claims; counters and logs by atomic statements
def record(
    tx: Tx,
    job: Job,
    error: str | None,
    policy: jobs.RetryPolicy,
    *,
    permanent: bool = False,
) -> None:
    """A unit for ``Database.write``: the mail's outcome (``error`` None: the server accepted
    it) and the end of its claim, in one transaction."""
    if error is None:
        jobs.complete(tx, job)
        logs.append_activity(
            tx, job.mailbox_uuid, "default:notify", AttemptOutcome.MAILED, envelope_uuid=job.ref
        )
    else:
        state = jobs.fail(tx, job, error, policy, permanent=permanent)
        logs.append_activity(
            tx,
            job.mailbox_uuid,
            "default:notify",
            f"mail {state}",
            envelope_uuid=job.ref,
            error=error,
        )
