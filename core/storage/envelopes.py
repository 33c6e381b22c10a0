"""Envelopes as the gateway keeps them: summary columns, documents as JSON, the original XML."""

from __future__ import annotations

import json
from typing import Any

from core.clock import utc_now
from core.models import Envelope, EnvelopeDelivery, EnvelopeDirection, EnvelopeStatus
from core.storage.connection import Tx


def insert_envelope(conn: Tx, envelope: Envelope, xml: str, documents: list[dict[str, Any]]) -> int:
    """Store a new envelope; returns its arrival sequence number."""
    cursor = conn.execute(
        "INSERT INTO envelopes (uuid, mailbox_uuid, direction, template_uuid, template_version, "
        "subject, sender_mailbox, recipient_mailbox, status, xml, documents, received_at, "
        "sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
        (
            envelope.uuid,
            envelope.mailbox_uuid,
            envelope.direction.value,
            envelope.template_uuid,
            envelope.template_version,
            envelope.subject,
            envelope.sender_mailbox,
            envelope.recipient_mailbox,
            envelope.status.value,
            xml,
            json.dumps(documents),
            envelope.received_at,
            envelope.sent_at,
        ),
    )
    return int(cursor.fetchone()[0])


_COLUMNS = (
    "seq, uuid, mailbox_uuid, direction, template_uuid, template_version, subject, "
    "sender_mailbox, recipient_mailbox, status, received_at, sent_at, reject_reason, rejected_by"
)
_COLUMNS_OF_E = ", ".join(f"e.{name.strip()}" for name in _COLUMNS.split(","))
_DELIVERY = (
    f"SELECT {_COLUMNS_OF_E}, e.xml, m.name AS mailbox_name, t.name AS template_name, "
    "s.name AS sender_name, m.account_uuid AS account_uuid "
    "FROM envelopes e JOIN mailboxes m ON m.uuid = e.mailbox_uuid "
    "LEFT JOIN templates t ON t.uuid = e.template_uuid "
    "LEFT JOIN mailboxes s ON s.uuid = e.sender_mailbox "
)


def get_delivery(conn: Tx, uuid: str) -> EnvelopeDelivery | None:
    """An envelope with what delivering it needs: its XML and the names a notification shows
    (mailbox, template, sender). None when the envelope is gone."""
    row = conn.execute(_DELIVERY + "WHERE e.uuid = ?", (uuid,)).fetchone()
    return _delivery(row) if row is not None else None


def get_deliveries(conn: Tx, uuids: list[str]) -> dict[str, EnvelopeDelivery]:
    """:func:`get_delivery` for a batch, by uuid, in one statement per 400 (the gone ones are
    left out): a round trip per envelope is what a networked store cannot afford."""
    found: dict[str, EnvelopeDelivery] = {}
    for start in range(0, len(uuids), 400):  # well under SQLite's variable limit
        chunk = uuids[start : start + 400]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(_DELIVERY + f"WHERE e.uuid IN ({marks})", chunk).fetchall():
            delivery = _delivery(row)
            found[delivery.envelope.uuid] = delivery
    return found


def _delivery(row: Any) -> EnvelopeDelivery:
    return EnvelopeDelivery(
        envelope=_envelope(row),
        xml=row["xml"],
        mailbox_name=row["mailbox_name"],
        template_name=row["template_name"],
        sender_name=row["sender_name"],
        account_uuid=row["account_uuid"],
    )


def mark_rejected(conn: Tx, uuid: str, reason: str) -> None:
    """The default rule refused the envelope: cancelled by the system, with the reason."""
    conn.execute(
        "UPDATE envelopes SET status = ?, reject_reason = ?, rejected_by = 'system' WHERE uuid = ?",
        (EnvelopeStatus.CANCELLED.value, reason, uuid),
    )


def mark_completed(conn: Tx, uuid: str) -> None:
    """The envelope reached the customer (or its notification is queued); the first
    completion's time stays (a repeated effect after a crash does not move it)."""
    conn.execute(
        "UPDATE envelopes SET status = ?, sent_at = COALESCE(sent_at, ?) WHERE uuid = ?",
        (EnvelopeStatus.COMPLETED.value, utc_now(), uuid),
    )


def mark_completed_many(conn: Tx, uuids: list[str]) -> None:
    """:func:`mark_completed` for a batch, one statement per 400."""
    now = utc_now()
    for start in range(0, len(uuids), 400):
        chunk = uuids[start : start + 400]
        conn.execute(
            "UPDATE envelopes SET status = ?, sent_at = COALESCE(sent_at, ?) "
            f"WHERE uuid IN ({','.join('?' * len(chunk))})",
            (EnvelopeStatus.COMPLETED.value, now, *chunk),
        )


def get_envelope(conn: Tx, uuid: str) -> Envelope | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM envelopes WHERE uuid = ?", (uuid,)).fetchone()
    return _envelope(row) if row else None


def list_envelopes(
    conn: Tx,
    mailbox_uuid: str | None = None,
    status: EnvelopeStatus | None = None,
    limit: int = 1000,
    offset: int = 0,
    newest_first: bool = False,
) -> list[Envelope]:
    """Up to ``limit`` envelopes after skipping ``offset``, in arrival order (or the reverse)."""
    where, args = _filter(mailbox_uuid, status)
    order = "DESC" if newest_first else "ASC"
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM envelopes {where} ORDER BY seq {order} LIMIT ? OFFSET ?",
        (*args, limit, offset),
    ).fetchall()
    return [_envelope(r) for r in rows]


def count_envelopes(
    conn: Tx,
    mailbox_uuid: str | None = None,
    status: EnvelopeStatus | None = None,
) -> int:
    """How many envelopes :func:`list_envelopes` would page through with the same filter."""
    where, args = _filter(mailbox_uuid, status)
    (count,) = conn.execute(f"SELECT count(*) FROM envelopes {where}", args).fetchone()
    return int(count)


def _filter(
    mailbox_uuid: str | None, status: EnvelopeStatus | None
) -> tuple[str, tuple[object, ...]]:
    clauses: list[str] = []
    args: list[object] = []
    if mailbox_uuid:
        clauses.append("mailbox_uuid = ?")
        args.append(mailbox_uuid)
    if status:
        clauses.append("status = ?")
        args.append(status.value)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), tuple(args)


def _envelope(row: Any) -> Envelope:
    return Envelope(
        uuid=row["uuid"],
        mailbox_uuid=row["mailbox_uuid"],
        direction=EnvelopeDirection(row["direction"]),
        template_uuid=row["template_uuid"],
        template_version=row["template_version"],
        subject=row["subject"] or "",
        sender_mailbox=row["sender_mailbox"] or "",
        recipient_mailbox=row["recipient_mailbox"] or "",
        status=EnvelopeStatus(row["status"]),
        received_at=row["received_at"],
        sent_at=row["sent_at"],
        reject_reason=row["reject_reason"],
        rejected_by=row["rejected_by"],
        sequence=row["seq"],
    )
