"""Conversion rules of a mailbox, kept in a dense 0..n-1 order per mailbox."""

from __future__ import annotations

from typing import Any

from core.clock import utc_now
from core.models import ConversionRule, Direction, MatchTarget, RuleForm
from core.storage.connection import Tx

_FORM_COLUMNS = (
    "name, enabled, direction, template_uuid, template_version, match_pattern, match_target, "
    "naming_pattern, conversion_map, example_source_name, example_source, multiple_envelopes"
)


def _form_values(form: RuleForm) -> tuple[object, ...]:
    return (
        form.name,
        int(form.enabled),
        form.direction.value,
        form.template_uuid,
        form.template_version,
        form.match_pattern,
        form.match_target.value,
        form.naming_pattern,
        form.conversion_map,
        form.example_source_name,
        form.example_source,
        int(form.multiple_envelopes),
    )


def list_rules(conn: Tx, mailbox_uuid: str) -> list[ConversionRule]:
    rows = conn.execute(
        "SELECT * FROM rules WHERE mailbox_uuid = ? ORDER BY position", (mailbox_uuid,)
    ).fetchall()
    return [_rule(r) for r in rows]


def get_rule(conn: Tx, rule_uuid: str) -> ConversionRule | None:
    row = conn.execute("SELECT * FROM rules WHERE uuid = ?", (rule_uuid,)).fetchone()
    return _rule(row) if row else None


def name_taken(conn: Tx, mailbox_uuid: str, name: str, except_uuid: str | None = None) -> bool:
    row = conn.execute(
        "SELECT 1 FROM rules WHERE mailbox_uuid = ? AND name = ? AND uuid != ?",
        (mailbox_uuid, name, except_uuid or ""),
    ).fetchone()
    return row is not None


def insert_rule(conn: Tx, rule_uuid: str, mailbox_uuid: str, form: RuleForm) -> None:
    """Append at the end of the mailbox's list (callers hold the write lock)."""
    position = conn.execute(
        "SELECT COALESCE(MAX(position) + 1, 0) FROM rules WHERE mailbox_uuid = ?", (mailbox_uuid,)
    ).fetchone()[0]
    now = utc_now()
    conn.execute(
        f"INSERT INTO rules (uuid, mailbox_uuid, position, {_FORM_COLUMNS}, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (rule_uuid, mailbox_uuid, position, *_form_values(form), now, now),
    )


def update_rule(conn: Tx, rule_uuid: str, form: RuleForm) -> None:
    assignments = ", ".join(f"{column.strip()} = ?" for column in _FORM_COLUMNS.split(","))
    conn.execute(
        f"UPDATE rules SET {assignments}, updated_at = ? WHERE uuid = ?",
        (*_form_values(form), utc_now(), rule_uuid),
    )


def set_rule_enabled(conn: Tx, rule_uuid: str, enabled: bool) -> None:
    conn.execute(
        "UPDATE rules SET enabled = ?, updated_at = ? WHERE uuid = ?",
        (int(enabled), utc_now(), rule_uuid),
    )


def delete_rule(conn: Tx, rule: ConversionRule) -> None:
    """Delete and close the gap so positions stay 0..n-1."""
    conn.execute("DELETE FROM rules WHERE uuid = ?", (rule.uuid,))
    conn.execute(
        "UPDATE rules SET position = -position - 1 WHERE mailbox_uuid = ? AND position > ?",
        (rule.mailbox_uuid, rule.position),
    )
    conn.execute(
        "UPDATE rules SET position = -position - 2 WHERE mailbox_uuid = ? AND position < 0",
        (rule.mailbox_uuid,),
    )


def swap_positions(conn: Tx, first: ConversionRule, second: ConversionRule) -> None:
    # Positions are unique per mailbox, so park one row on -1 during the swap.
    conn.execute("UPDATE rules SET position = -1 WHERE uuid = ?", (first.uuid,))
    conn.execute("UPDATE rules SET position = ? WHERE uuid = ?", (first.position, second.uuid))
    conn.execute("UPDATE rules SET position = ? WHERE uuid = ?", (second.position, first.uuid))


def rule_at(conn: Tx, mailbox_uuid: str, position: int) -> ConversionRule | None:
    row = conn.execute(
        "SELECT * FROM rules WHERE mailbox_uuid = ? AND position = ?", (mailbox_uuid, position)
    ).fetchone()
    return _rule(row) if row else None


def _rule(row: Any) -> ConversionRule:
    form = RuleForm(
        name=row["name"],
        enabled=bool(row["enabled"]),
        direction=Direction(row["direction"]),
        template_uuid=row["template_uuid"],
        template_version=row["template_version"],
        match_pattern=row["match_pattern"] or "",
        match_target=MatchTarget(row["match_target"] or MatchTarget.NAME),
        naming_pattern=row["naming_pattern"] or "",
        conversion_map=row["conversion_map"] or "",
        example_source_name=row["example_source_name"] or "",
        example_source=row["example_source"] or b"",
        multiple_envelopes=bool(row["multiple_envelopes"]),
    )
    return ConversionRule(
        uuid=row["uuid"],
        mailbox_uuid=row["mailbox_uuid"],
        position=row["position"],
        form=form,
        success_count=row["success_count"],
        failure_count=row["failure_count"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def find_rules_by_name(
    conn: Tx, name: str, mailbox_uuid: str | None = None
) -> list[ConversionRule]:
    if mailbox_uuid:
        rows = conn.execute(
            "SELECT * FROM rules WHERE name = ? AND mailbox_uuid = ?", (name, mailbox_uuid)
        ).fetchall()
    else:
        rows = conn.execute("SELECT * FROM rules WHERE name = ?", (name,)).fetchall()
    return [_rule(r) for r in rows]
