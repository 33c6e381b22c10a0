"""Queue an AS2 message for the sender (light: no crypto, no HTTP), in the caller's transaction."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from core.config import Config
from core.models import JobKind
from core.storage import as2_messages, jobs
from core.storage.db import Tx
from core.storage.integrations import get_integration

SOURCE_ENVELOPE, SOURCE_FILE = "envelope", "file"


def queue_message(
    tx: Tx, mailbox_uuid: str, ref: str, filename: str, source: dict[str, str], domain: str
) -> str | None:
    """Queue one outbound message (idempotent per ``ref``) with its lasting Message-ID.

    Returns that Message-ID; None when a message was already queued under ``ref`` (nothing new).
    """
    existing = jobs.job_row(tx, JobKind.AS2_SEND, ref)
    if existing is not None:
        return None
    partner_id = get_integration(tx, mailbox_uuid).form.as2.partner_id
    message_id = f"docbridge-{secrets.token_hex(12)}@{domain}"
    payload = dict(source, message_id=message_id, filename=filename)
    jobs.enqueue(tx, JobKind.AS2_SEND, ref, mailbox_uuid, payload)
    as2_messages.add_outgoing(tx, mailbox_uuid, partner_id, message_id, filename, ref)
    return message_id


def message_domain(config: Config) -> str:
    """The right part of our Message-IDs: the public host partners know us by."""
    return urlsplit(config.as2.public_url).hostname or "docbridge"
