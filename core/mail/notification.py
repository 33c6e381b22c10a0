"""The default-rule-2 notification: an envelope's metadata, never its documents or secrets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formatdate
from typing import Any

from core.clock import unix_now
from core.text import printable


@dataclass(frozen=True)
class Notification:
    """Everything needed to (re)build the mail identically on every retry."""

    message_id: str
    sender: str
    recipient: str
    subject: str
    body: str

    def to_payload(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "sender": self.sender,
            "recipient": self.recipient,
            "subject": self.subject,
            "body": self.body,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Notification:
        return cls(
            message_id=str(payload["message_id"]),
            sender=str(payload["sender"]),
            recipient=str(payload["recipient"]),
            subject=str(payload["subject"]),
            body=str(payload["body"]),
        )

    def to_email(self, date: str | None = None) -> EmailMessage:
        """The mail; no header ever carries a CR/LF (a value with one is shown escaped: an
        address made unusable that way is refused by the SMTP server, a visible failure)."""
        message = EmailMessage()
        message["From"] = printable(self.sender)
        message["To"] = printable(self.recipient)
        message["Subject"] = printable(self.subject)
        # Stable across retries: receiving systems can drop a duplicate after a crash.
        message["Message-ID"] = printable(self.message_id)
        # RFC 5322 requires Date; some receivers file a mail without it as spam.
        message["Date"] = date or formatdate(unix_now(), usegmt=True)
        message.set_content(self.body)
        return message


def message_id_for(envelope_uuid: str, domain: str) -> str:
    return f"<{envelope_uuid}.notification@{domain}>"


def build_notification(
    *,
    envelope: dict[str, str],
    mailbox_name: str,
    recipient: str,
    sender: str,
) -> Notification:
    """``envelope``: uuid, subject, sender, template, received_at, status (display strings).

    Every value is shown with :func:`printable`: a subject or a name from a partner cannot add
    a header or a line of its own to the mail.
    """
    domain = printable(sender.rpartition("@")[2]) or "docbridge.local"
    shown = {key: printable(str(value)) for key, value in envelope.items()}
    mailbox = printable(mailbox_name)
    subject = f"[docbridge] New envelope for {mailbox}: {shown['subject']}"
    lines = [
        f"Mailbox {mailbox} received an envelope on the platform.",
        "",
        f"Subject:   {shown['subject']}",
        f"Sender:    {shown['sender']}",
        f"Template:  {shown['template']}",
        f"UUID:      {shown['uuid']}",
        f"Received:  {shown['received_at']}",
        f"Status:    {shown['status']}",
        "",
        "Open the platform to read and answer it.",
    ]
    return Notification(
        message_id=message_id_for(shown["uuid"], domain),
        sender=sender,
        recipient=recipient,
        subject=" ".join(subject.split())[:200],
        body="\n".join(lines) + "\n",
    )


def rfc2822_date(iso: str) -> str:
    """The envelope's receive time as a mail Date header (stable across retries)."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return format_datetime(moment)
