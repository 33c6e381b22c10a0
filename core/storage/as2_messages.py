"""AS2 messages in and out, with the MDN of each: the duplicate check, the MDN a retry is
answered with, and what ``docbridge as2 messages`` lists. The caller owns the transaction."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from core.clock import utc_now
from core.models import As2Message, As2Status
from core.storage.connection import Tx

IN, OUT = "in", "out"
_LIST_COLUMNS = (
    "id, direction, mailbox_uuid, partner_id, message_id, created_at, updated_at, status, "
    "filename, size, mdn_mode, mdn_disposition, mic_check, error, attempts"
)


@dataclass(frozen=True)
class StoredMdn:
    """The MDN we answered an inbound message with, kept to answer its retries alike."""

    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class InboundRecord:
    mailbox_uuid: str
    partner_id: str
    message_id: str
    status: As2Status
    filename: str = ""
    size: int = 0
    signed: bool = False
    encrypted: bool = False
    compressed: bool = False
    mic: str = ""
    mic_algorithm: str = ""
    mdn_mode: str = "none"
    mdn_url: str = ""
    mdn_disposition: str = ""
    mdn: StoredMdn | None = None
    error: str = ""
    job_ref: str = ""


@dataclass(frozen=True)
class Outgoing:
    """An outbound message's row: what the sender needs across retries and restarts."""

    id: int
    mailbox_uuid: str
    partner_id: str
    message_id: str
    status: As2Status
    mic: str
    mic_algorithm: str
    mdn_mode: str
    mdn_due: float | None
    mdn_disposition: str
    mic_check: str
    error: str
    signed: bool = False


def processed_inbound(
    conn: Tx, mailbox_uuid: str, partner_id: str, message_id: str
) -> tuple[int, StoredMdn | None, str, str] | None:
    """A message from this partner already processed: (row id, its MDN, mode, async URL)."""
    row = conn.execute(
        "SELECT id, mdn_headers, mdn_body, mdn_mode, mdn_url FROM as2_messages WHERE "
        "mailbox_uuid = ? AND direction = 'in' AND partner_id = ? AND message_id = ? "
        "AND status = ?",
        (mailbox_uuid, partner_id, message_id, As2Status.RECEIVED.value),
    ).fetchone()
    if row is None:
        return None
    mdn = _mdn(row["mdn_headers"], row["mdn_body"])
    return int(row["id"]), mdn, str(row["mdn_mode"] or "none"), str(row["mdn_url"] or "")


def record_inbound(conn: Tx, record: InboundRecord) -> int:
    """Insert or (for a retry of a refused message) overwrite; returns the row id.

    A row already RECEIVED is never overwritten: the caller checked for duplicates in the same
    transaction, so reaching it here would be a defect, and the first outcome must stand.
    """
    now = utc_now()
    mdn = record.mdn
    values = (
        record.status.value,
        record.filename,
        record.size,
        int(record.signed),
        int(record.encrypted),
        int(record.compressed),
        record.mic,
        record.mic_algorithm,
        record.mdn_mode,
        record.mdn_url,
        record.mdn_disposition,
        json.dumps(mdn.headers) if mdn else None,
        mdn.body if mdn else None,
        record.error,
        record.job_ref,
    )
    row = conn.execute(
        "INSERT INTO as2_messages (direction, mailbox_uuid, partner_id, message_id, created_at, "
        "updated_at, status, filename, size, signed, encrypted, compressed, mic, mic_algorithm, "
        "mdn_mode, mdn_url, mdn_disposition, mdn_headers, mdn_body, error, job_ref, attempts) "
        "VALUES ('in', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) "
        "ON CONFLICT (mailbox_uuid, direction, partner_id, message_id) DO UPDATE SET "
        "updated_at = excluded.updated_at, status = excluded.status, "
        "filename = excluded.filename, size = excluded.size, signed = excluded.signed, "
        "encrypted = excluded.encrypted, compressed = excluded.compressed, mic = excluded.mic, "
        "mic_algorithm = excluded.mic_algorithm, mdn_mode = excluded.mdn_mode, "
        "mdn_url = excluded.mdn_url, mdn_disposition = excluded.mdn_disposition, "
        "mdn_headers = excluded.mdn_headers, mdn_body = excluded.mdn_body, "
        "error = excluded.error, job_ref = excluded.job_ref, attempts = as2_messages.attempts + 1 "
        "WHERE as2_messages.status != 'received' RETURNING id",
        (record.mailbox_uuid, record.partner_id, record.message_id, now, now, *values),
    ).fetchone()
    if row is None:
        raise sqlite3.IntegrityError(f"AS2 message {record.message_id} was already received")
    return int(row[0])


def attempts_of(conn: Tx, row_id: int) -> int:
    row = conn.execute("SELECT attempts FROM as2_messages WHERE id = ?", (row_id,)).fetchone()
    return int(row[0]) if row else 0


def job_ref_of(conn: Tx, row_id: int) -> str:
    row = conn.execute("SELECT job_ref FROM as2_messages WHERE id = ?", (row_id,)).fetchone()
    return str(row[0] or "") if row else ""


def stored_mdn(conn: Tx, row_id: int) -> tuple[StoredMdn | None, str, str]:
    """An inbound message's MDN with where to send it: (mdn, partner id, async URL)."""
    row = conn.execute(
        "SELECT mdn_headers, mdn_body, partner_id, mdn_url FROM as2_messages WHERE id = ?",
        (row_id,),
    ).fetchone()
    if row is None:
        return None, "", ""
    return _mdn(row["mdn_headers"], row["mdn_body"]), str(row["partner_id"]), str(row["mdn_url"])


def add_outgoing(
    conn: Tx,
    mailbox_uuid: str,
    partner_id: str,
    message_id: str,
    filename: str,
    job_ref: str,
) -> None:
    """Register an outbound message before its first attempt (idempotent)."""
    now = utc_now()
    conn.execute(
        "INSERT INTO as2_messages (direction, mailbox_uuid, partner_id, message_id, created_at, "
        "updated_at, status, filename, size, job_ref) VALUES ('out', ?, ?, ?, ?, ?, ?, ?, 0, ?) "
        "ON CONFLICT DO NOTHING",
        (
            mailbox_uuid,
            partner_id,
            message_id,
            now,
            now,
            As2Status.SENDING.value,
            filename,
            job_ref,
        ),
    )


def get_outgoing(conn: Tx, mailbox_uuid: str, message_id: str) -> Outgoing | None:
    row = conn.execute(
        "SELECT * FROM as2_messages WHERE mailbox_uuid = ? AND direction = 'out' "
        "AND message_id = ?",
        (mailbox_uuid, message_id),
    ).fetchone()
    return _outgoing(row) if row else None


def find_outgoing(conn: Tx, message_id: str) -> Outgoing | None:
    """An outbound message by Message-ID alone (an asynchronous MDN names only that)."""
    row = conn.execute(
        "SELECT * FROM as2_messages WHERE direction = 'out' AND message_id = ?", (message_id,)
    ).fetchone()
    return _outgoing(row) if row else None


def record_built(
    conn: Tx,
    row_id: int,
    *,
    partner_id: str,
    size: int,
    mic: str,
    mic_algorithm: str,
    mdn_mode: str,
    signed: bool,
    encrypted: bool,
    compressed: bool,
) -> None:
    """What this attempt sends, before it is sent: an MDN may come back before the POST ends.
    The partner is as configured now (a message parked for a wrong id, fixed, then resent)."""
    conn.execute(
        "UPDATE as2_messages SET partner_id = ?, size = ?, mic = ?, mic_algorithm = ?, "
        "mdn_mode = ?, signed = ?, encrypted = ?, compressed = ?, attempts = attempts + 1, "
        "updated_at = ? WHERE id = ?",
        (
            partner_id,
            size,
            mic,
            mic_algorithm,
            mdn_mode,
            int(signed),
            int(encrypted),
            int(compressed),
            utc_now(),
            row_id,
        ),
    )


def mark_awaiting_mdn(conn: Tx, row_id: int, due: float) -> None:
    """The partner took the request; its asynchronous MDN is due by ``due`` (unless it came)."""
    conn.execute(
        "UPDATE as2_messages SET status = ?, mdn_due = ?, error = '', updated_at = ? "
        "WHERE id = ? AND status = ?",
        (As2Status.AWAITING_MDN.value, due, utc_now(), row_id, As2Status.SENDING.value),
    )


def final_status(conn: Tx, row_id: int) -> As2Status | None:
    """DELIVERED or FAILED once the MDN settled it, else None."""
    row = conn.execute("SELECT status FROM as2_messages WHERE id = ?", (row_id,)).fetchone()
    status = As2Status(row[0]) if row else None
    return status if status in (As2Status.DELIVERED, As2Status.FAILED) else None


def mark_attempt_failed(conn: Tx, row_id: int, error: str, final: bool) -> None:
    status = As2Status.FAILED if final else As2Status.SENDING
    conn.execute(
        "UPDATE as2_messages SET status = ?, error = ?, updated_at = ? WHERE id = ?",
        (status.value, error, utc_now(), row_id),
    )


def record_mdn(
    conn: Tx,
    row_id: int,
    *,
    disposition: str,
    mic_check: str,
    delivered: bool,
    error: str,
) -> None:
    """The partner's MDN for an outbound message: delivered, or failed with the reason."""
    status = As2Status.DELIVERED if delivered else As2Status.FAILED
    conn.execute(
        "UPDATE as2_messages SET status = ?, mdn_disposition = ?, mic_check = ?, error = ?, "
        "updated_at = ? WHERE id = ?",
        (status.value, disposition, mic_check, error, utc_now(), row_id),
    )


def retry_outgoing(conn: Tx, job_ids: list[int]) -> int:
    """Failed outbound messages of these (reprocessed) jobs are to be sent again: sending."""
    marks = ",".join("?" * len(job_ids))
    cursor = conn.execute(
        "UPDATE as2_messages SET status = ?, error = '', mdn_disposition = '', mic_check = '', "
        f"updated_at = ? WHERE direction = 'out' AND status = ? AND job_ref IN ("
        f"SELECT ref FROM jobs WHERE kind = 'as2_send' AND id IN ({marks}))",
        (As2Status.SENDING.value, utc_now(), As2Status.FAILED.value, *job_ids),
    )
    return cursor.rowcount


def find_message(conn: Tx, mailbox_uuid: str, direction: str, message_id: str) -> As2Message | None:
    rows = conn.execute(
        f"SELECT {_LIST_COLUMNS} FROM as2_messages WHERE mailbox_uuid = ? AND direction = ? "
        "AND message_id = ?",
        (mailbox_uuid, direction, message_id),
    ).fetchall()
    found = _messages(rows)
    return found[0] if found else None


def list_messages(conn: Tx, mailbox_uuid: str | None = None, limit: int = 200) -> list[As2Message]:
    where, args = ("WHERE mailbox_uuid = ?", (mailbox_uuid,)) if mailbox_uuid else ("", ())
    rows = conn.execute(
        f"SELECT {_LIST_COLUMNS} FROM as2_messages {where} ORDER BY id DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return _messages(rows)


def _messages(rows: list[Any]) -> list[As2Message]:
    return [
        As2Message(
            id=r["id"],
            direction=r["direction"],
            mailbox_uuid=r["mailbox_uuid"],
            partner_id=r["partner_id"],
            message_id=r["message_id"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            status=As2Status(r["status"]),
            filename=r["filename"] or "",
            size=r["size"] or 0,
            mdn_mode=r["mdn_mode"] or "",
            mdn_disposition=r["mdn_disposition"] or "",
            mic_check=r["mic_check"] or "",
            error=r["error"] or "",
            attempts=r["attempts"] or 0,
        )
        for r in rows
    ]


def _mdn(headers: str | None, body: bytes | None) -> StoredMdn | None:
    if headers is None or body is None:
        return None
    pairs = tuple((str(name), str(value)) for name, value in json.loads(headers))
    return StoredMdn(pairs, bytes(body))


def _outgoing(row: Any) -> Outgoing:
    return Outgoing(
        id=row["id"],
        mailbox_uuid=row["mailbox_uuid"],
        partner_id=row["partner_id"],
        message_id=row["message_id"],
        status=As2Status(row["status"]),
        mic=row["mic"] or "",
        mic_algorithm=row["mic_algorithm"] or "",
        mdn_mode=row["mdn_mode"] or "",
        mdn_due=row["mdn_due"],
        mdn_disposition=row["mdn_disposition"] or "",
        mic_check=row["mic_check"] or "",
        error=row["error"] or "",
        signed=bool(row["signed"]),
    )
