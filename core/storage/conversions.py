"""The conversion log: every attempt to convert, its kept input and output, and the per-rule
counters that the rules table shows (kept in step in the same transaction)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.clock import utc_now
from core.models import (
    ConversionFilter,
    ConversionPayload,
    ConversionRecord,
    ConversionStatus,
    Direction,
)
from core.storage.connection import Tx, insert_rows, is_postgres


@dataclass(frozen=True)
class NewConversion:
    mailbox_uuid: str
    direction: Direction
    rule_uuid: str | None
    rule_name: str
    status: ConversionStatus
    envelope_uuid: str = ""
    file_name: str = ""
    subject: str = ""
    error: str = ""
    job_ref: str = ""
    input_name: str = ""
    input: bytes | None = None
    output: bytes | None = None
    input_size: int | None = None  # when ``input`` is not the whole input (a source's head)


def record(conn: Tx, entry: NewConversion, keep_bytes: int) -> int:
    """Append an attempt and count it on its rule; input and output are kept when each is at
    most ``keep_bytes`` (the sizes are always kept)."""
    cursor = conn.execute(
        "INSERT INTO conversions (at, mailbox_uuid, direction, rule_uuid, rule_name, "
        "envelope_uuid, file_name, subject, status, error, job_ref) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            utc_now(),
            entry.mailbox_uuid,
            entry.direction.value,
            entry.rule_uuid,
            entry.rule_name,
            entry.envelope_uuid,
            entry.file_name,
            entry.subject,
            entry.status.value,
            entry.error,
            entry.job_ref,
        ),
    )
    conversion_id = int(cursor.fetchone()[0])
    if entry.input is not None or entry.output is not None:
        data_in, data_out = entry.input or b"", entry.output or b""
        conn.execute(
            "INSERT INTO conversion_payloads (conversion_id, input_name, input, input_size, "
            "output, output_size) VALUES (?, ?, ?, ?, ?, ?)",
            (
                conversion_id,
                entry.input_name,
                data_in if len(data_in) <= keep_bytes and entry.input_size is None else b"",
                len(data_in) if entry.input_size is None else entry.input_size,
                data_out if len(data_out) <= keep_bytes else b"",
                len(data_out),
            ),
        )
    if entry.rule_uuid is not None:
        column = "failure_count" if entry.status is ConversionStatus.FAILED else "success_count"
        conn.execute(f"UPDATE rules SET {column} = {column} + 1 WHERE uuid = ?", (entry.rule_uuid,))
    return conversion_id


def record_many(conn: Tx, entries: list[NewConversion], keep_bytes: int) -> None:
    """:func:`record` for a batch: attempts with nothing to keep and no rule to count (the
    default rule's) go in one round trip, the others one by one."""
    plain = [e for e in entries if e.input is None and e.output is None and e.rule_uuid is None]
    now = utc_now()
    insert_rows(
        conn,
        "INSERT INTO conversions (at, mailbox_uuid, direction, rule_uuid, rule_name, "
        "envelope_uuid, file_name, subject, status, error, job_ref)",
        [
            (
                now,
                e.mailbox_uuid,
                e.direction.value,
                e.rule_uuid,
                e.rule_name,
                e.envelope_uuid,
                e.file_name,
                e.subject,
                e.status.value,
                e.error,
                e.job_ref,
            )
            for e in plain
        ],
    )
    for entry in entries:
        if not (entry.input is None and entry.output is None and entry.rule_uuid is None):
            record(conn, entry, keep_bytes)


def list_records(conn: Tx, query: ConversionFilter) -> list[ConversionRecord]:
    """Newest first, filtered."""
    where, args = _where(query, is_postgres(conn))
    rows = conn.execute(
        "SELECT c.*, p.input_size, p.output_size FROM conversions c "
        f"LEFT JOIN conversion_payloads p ON p.conversion_id = c.id {where} "
        "ORDER BY c.id DESC LIMIT ? OFFSET ?",
        (*args, query.limit, query.offset),
    ).fetchall()
    return [_record(r) for r in rows]


def count_records(conn: Tx, query: ConversionFilter) -> int:
    where, args = _where(query, is_postgres(conn))
    return int(conn.execute(f"SELECT COUNT(*) FROM conversions c {where}", args).fetchone()[0])


def get_record(conn: Tx, conversion_id: int) -> ConversionRecord | None:
    row = conn.execute(
        "SELECT c.*, p.input_size, p.output_size FROM conversions c "
        "LEFT JOIN conversion_payloads p ON p.conversion_id = c.id WHERE c.id = ?",
        (conversion_id,),
    ).fetchone()
    return _record(row) if row else None


def get_job_ref(conn: Tx, conversion_id: int) -> str:
    row = conn.execute("SELECT job_ref FROM conversions WHERE id = ?", (conversion_id,)).fetchone()
    return str(row["job_ref"] or "") if row else ""


def get_payload(conn: Tx, conversion_id: int) -> ConversionPayload | None:
    row = conn.execute(
        "SELECT * FROM conversion_payloads WHERE conversion_id = ?", (conversion_id,)
    ).fetchone()
    if row is None:
        return None
    return ConversionPayload(
        input_name=row["input_name"] or "",
        input=row["input"] or b"",
        input_size=row["input_size"] or 0,
        output=row["output"] or b"",
        output_size=row["output_size"] or 0,
    )


def no_rule_count(conn: Tx, mailbox_uuid: str) -> int:
    """Attempts of this mailbox that no rule took (default rule, or a file sent to error/)."""
    row = conn.execute(
        "SELECT COUNT(*) FROM conversions WHERE mailbox_uuid = ? AND rule_uuid IS NULL",
        (mailbox_uuid,),
    ).fetchone()
    return int(row[0])


def prune_payloads(conn: Tx, older_than: str) -> int:
    """Drop kept inputs and outputs of records older than ``older_than`` (ISO time); the
    records themselves stay, so the counters and the history still add up."""
    cursor = conn.execute(
        "DELETE FROM conversion_payloads WHERE conversion_id IN "
        "(SELECT id FROM conversions WHERE at < ?)",
        (older_than,),
    )
    return cursor.rowcount


def _where(query: ConversionFilter, postgres: bool) -> tuple[str, tuple[object, ...]]:
    clauses: list[str] = []
    args: list[object] = []
    if query.mailbox_uuid:
        clauses.append("c.mailbox_uuid = ?")
        args.append(query.mailbox_uuid)
    if query.rule_uuid:
        clauses.append("c.rule_uuid = ?")
        args.append(query.rule_uuid)
    if query.no_rule:
        clauses.append("c.rule_uuid IS NULL")
    if query.status is not None:
        clauses.append("c.status = ?")
        args.append(query.status.value)
    if query.keyword:
        pattern = (
            "%" + query.keyword.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        columns = ("c.file_name", "c.subject", "c.envelope_uuid", "c.rule_name")
        like = "ILIKE" if postgres else "LIKE"  # SQLite's LIKE ignores ASCII case already
        clauses.append("(" + " OR ".join(f"{c} {like} ? ESCAPE '\\'" for c in columns) + ")")
        args.extend([pattern] * len(columns))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def _record(row: Any) -> ConversionRecord:
    return ConversionRecord(
        id=row["id"],
        at=row["at"],
        mailbox_uuid=row["mailbox_uuid"],
        direction=Direction(row["direction"]),
        rule_uuid=row["rule_uuid"],
        rule_name=row["rule_name"] or "",
        envelope_uuid=row["envelope_uuid"] or "",
        file_name=row["file_name"] or "",
        subject=row["subject"] or "",
        status=ConversionStatus(row["status"]),
        error=row["error"] or "",
        input_size=row["input_size"],
        output_size=row["output_size"],
    )
