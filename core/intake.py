"""Receiving an envelope from the platform: the unit of work that checks and stores it.

Kept apart from the service so that a one-shot ``docbridge envelope receive`` runs the very same
checks without loading the service's desks (conversions, AS2) or an event loop.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from core.clock import utc_now
from core.errors import InvalidInput, NotFound
from core.models import Envelope, EnvelopeDirection, EnvelopeStatus, JobKind, Mailbox
from core.storage import accounts, envelopes, jobs
from core.storage.connection import Tx

if TYPE_CHECKING:
    from core.envelope_xml import EnvelopeXml


def receive_envelope(
    tx: Tx,
    mailbox_uuid: str,
    envelope_uuid: str,
    parsed: EnvelopeXml,
    data: bytes,
    resent: bool = False,
) -> Envelope:
    """Check and store an incoming envelope, and queue its job in the same transaction: an
    acknowledged envelope is never forgotten.

    ``resent``: the caller sent this very envelope before and got no answer (the engine it
    handed it to died or froze); if it was stored then, byte for byte in this mailbox, that
    receipt is the answer instead of "already received"."""
    from core.envelope_checks import (
        check_envelope_against_template,
        check_recipient_is,
        stored_xml,
    )

    mailbox = require_mailbox(tx, mailbox_uuid)
    check_recipient_is(parsed, mailbox.uuid, mailbox.name)
    check_envelope_against_template(tx, parsed)
    existing = envelopes.get_envelope(tx, envelope_uuid)
    if existing is not None and resent and existing.mailbox_uuid == mailbox.uuid:
        stored = envelopes.get_delivery(tx, envelope_uuid)
        if stored is not None and stored.xml == stored_xml(data, parsed):
            return existing
    if existing is not None:
        raise InvalidInput(
            f"Envelope {envelope_uuid} was already received "
            f"(mailbox {existing.mailbox_uuid}, status {existing.display_status}).",
            "Each envelope is received once; give a new envelope a new uuid.",
        )
    envelope = Envelope(
        uuid=envelope_uuid,
        mailbox_uuid=mailbox.uuid,
        direction=EnvelopeDirection.INCOMING,
        template_uuid=parsed.template_uuid,
        template_version=parsed.template_version,
        subject=parsed.subject,
        sender_mailbox=sender_of(parsed, mailbox),
        recipient_mailbox=mailbox.uuid,
        status=EnvelopeStatus.WAITING,
        received_at=utc_now(),
    )
    documents = parsed.to_dict()["documents"]
    sequence = envelopes.insert_envelope(tx, envelope, stored_xml(data, parsed), documents)
    jobs.enqueue(tx, JobKind.ENVELOPE, envelope_uuid, mailbox.uuid)
    return replace(envelope, sequence=sequence)


def require_mailbox(tx: Tx, mailbox_uuid: str) -> Mailbox:
    mailbox = accounts.get_mailbox(tx, mailbox_uuid)
    if mailbox is None:
        raise NotFound(f"No mailbox {mailbox_uuid}.", "Run 'docbridge mailbox list' to see them.")
    return mailbox


def resolve_mailbox(tx: Tx, reference: str) -> Mailbox:
    mailbox = accounts.get_mailbox(tx, reference.strip().lower())
    if mailbox is not None:
        return mailbox
    matches = accounts.find_mailboxes_by_name(tx, reference.strip())
    if len(matches) == 1:
        return matches[0]
    if matches:
        uuids = ", ".join(m.uuid for m in matches)
        raise InvalidInput(
            f"Several mailboxes are named '{reference}'.", f"Use one of their uuids: {uuids}."
        )
    raise NotFound(
        f"No mailbox with uuid or name '{reference}'.", "Run 'docbridge mailbox list' to see them."
    )


def sender_of(parsed: EnvelopeXml, mailbox: Mailbox) -> str:
    """The sending mailbox: the ``sender`` role, else the first role that is not the mailbox."""
    from core.envelope_checks import SENDER_ROLE

    sender = parsed.role_mailbox(SENDER_ROLE)
    if sender is not None:
        return sender
    others = [role.mailbox_uuid for role in parsed.roles if role.mailbox_uuid != mailbox.uuid]
    return others[0] if others else ""
