"""The audit log (who changed what) and the activity log (every processing attempt)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.clock import utc_now
from core.models import ActivityRecord, AuditEntry
from core.storage.connection import Tx, insert_rows


def append_audit(
    conn: Tx,
    actor: str,
    action: str,
    mailbox_uuid: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record a change. ``details`` must never carry a secret: callers pass names, not values."""
    conn.execute(
        "INSERT INTO audit_log (at, actor, mailbox_uuid, action, details) VALUES (?, ?, ?, ?, ?)",
        (utc_now(), actor, mailbox_uuid, action, json.dumps(details or {}, sort_keys=True)),
    )


def list_audit(conn: Tx, mailbox_uuid: str | None = None, limit: int = 200) -> list[AuditEntry]:
    where, args = ("WHERE mailbox_uuid = ?", (mailbox_uuid,)) if mailbox_uuid else ("", ())
    rows = conn.execute(
        f"SELECT * FROM audit_log {where} ORDER BY id DESC LIMIT ?", (*args, limit)
    ).fetchall()
    return [
        AuditEntry(
            id=r["id"],
            at=r["at"],
            actor=r["actor"],
            mailbox_uuid=r["mailbox_uuid"],
            action=r["action"],
            details=json.loads(r["details"]),
        )
        for r in rows
    ]


def append_activity(
    conn: Tx,
    mailbox_uuid: str,
    rule: str,
    status: str,
    envelope_uuid: str | None = None,
    file_name: str | None = None,
    error: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO activity_log (at, mailbox_uuid, rule, envelope_uuid, file_name, status, error)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (utc_now(), mailbox_uuid, rule, envelope_uuid, file_name, status, error),
    )


@dataclass(frozen=True)
class NewActivity:
    """One line of the activity log, for :func:`append_activities`."""

    mailbox_uuid: str
    rule: str
    status: str
    envelope_uuid: str | None = None
    file_name: str | None = None
    error: str | None = None


def append_activities(conn: Tx, lines: list[NewActivity]) -> None:
    """:func:`append_activity` for a batch (in the list's order), one statement per 100."""
    now = utc_now()
    insert_rows(
        conn,
        "INSERT INTO activity_log "
        "(at, mailbox_uuid, rule, envelope_uuid, file_name, status, error)",
        [
            (now, a.mailbox_uuid, a.rule, a.envelope_uuid, a.file_name, a.status, a.error)
            for a in lines
        ],
    )


def list_activity(
    conn: Tx, mailbox_uuid: str | None = None, limit: int = 200
) -> list[ActivityRecord]:
    where, args = ("WHERE mailbox_uuid = ?", (mailbox_uuid,)) if mailbox_uuid else ("", ())
    rows = conn.execute(
        f"SELECT * FROM activity_log {where} ORDER BY id DESC LIMIT ?", (*args, limit)
    ).fetchall()
    return [
        ActivityRecord(
            id=r["id"],
            at=r["at"],
            mailbox_uuid=r["mailbox_uuid"],
            rule=r["rule"],
            envelope_uuid=r["envelope_uuid"],
            file_name=r["file_name"],
            status=r["status"],
            error=r["error"],
        )
        for r in rows
    ]
