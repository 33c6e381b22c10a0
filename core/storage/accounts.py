"""Accounts, mailboxes and templates: the platform data a gateway mirrors."""

from __future__ import annotations

import functools
import json
from typing import Any

from core.models import Account, Mailbox, Template, TemplateVersion
from core.storage.connection import Tx, is_postgres


def insert_account(conn: Tx, account: Account) -> None:
    conn.execute(
        "INSERT INTO accounts (uuid, name) VALUES (?, ?) "
        "ON CONFLICT(uuid) DO UPDATE SET name = excluded.name",
        (account.uuid, account.name),
    )


def insert_mailbox(conn: Tx, mailbox: Mailbox, position: int) -> None:
    conn.execute(
        "INSERT INTO mailboxes (uuid, account_uuid, name, position) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(uuid) DO UPDATE SET name = excluded.name, position = excluded.position",
        (mailbox.uuid, mailbox.account_uuid, mailbox.name, position),
    )


def insert_template(conn: Tx, template: Template, versions: list[TemplateVersion]) -> None:
    conn.execute(
        "INSERT INTO templates (uuid, account_uuid, name) VALUES (?, ?, ?) "
        "ON CONFLICT(uuid) DO UPDATE SET name = excluded.name",
        (template.uuid, template.account_uuid, template.name),
    )
    conn.executemany(
        "INSERT INTO template_versions (template_uuid, version, documents) VALUES (?, ?, ?) "
        "ON CONFLICT(template_uuid, version) DO UPDATE SET documents = excluded.documents",
        [(v.template_uuid, v.version, json.dumps(list(v.documents))) for v in versions],
    )


def list_accounts(conn: Tx) -> list[Account]:
    rows = conn.execute("SELECT uuid, name FROM accounts ORDER BY name").fetchall()
    return [Account(uuid=r["uuid"], name=r["name"]) for r in rows]


def get_account(conn: Tx, uuid: str) -> Account | None:
    row = conn.execute("SELECT uuid, name FROM accounts WHERE uuid = ?", (uuid,)).fetchone()
    return Account(uuid=row["uuid"], name=row["name"]) if row else None


def list_mailboxes(conn: Tx) -> list[Mailbox]:
    rows = conn.execute(
        "SELECT uuid, account_uuid, name FROM mailboxes ORDER BY account_uuid, position, name"
    ).fetchall()
    return [_mailbox(r) for r in rows]


def get_mailbox(conn: Tx, uuid: str) -> Mailbox | None:
    row = conn.execute(
        "SELECT uuid, account_uuid, name FROM mailboxes WHERE uuid = ?", (uuid,)
    ).fetchone()
    return _mailbox(row) if row else None


def find_mailboxes_by_name(conn: Tx, name: str) -> list[Mailbox]:
    rows = conn.execute(
        "SELECT uuid, account_uuid, name FROM mailboxes WHERE lower(name) = lower(?)", (name,)
    ).fetchall()
    return [_mailbox(r) for r in rows]


def _versions(conn: Tx) -> str:
    """The template's versions as "1,2,3" (one aggregate, spelt per dialect)."""
    return "string_agg(v.version::text, ',')" if is_postgres(conn) else "group_concat(v.version)"


def list_templates(conn: Tx, account_uuid: str) -> list[Template]:
    rows = conn.execute(
        f"SELECT t.uuid, t.account_uuid, t.name, {_versions(conn)} AS versions "
        "FROM templates t JOIN template_versions v ON v.template_uuid = t.uuid "
        "WHERE t.account_uuid = ? GROUP BY t.uuid ORDER BY t.name",
        (account_uuid,),
    ).fetchall()
    return [_template(r) for r in rows]


def get_template(conn: Tx, uuid: str) -> Template | None:
    row = conn.execute(
        f"SELECT t.uuid, t.account_uuid, t.name, {_versions(conn)} AS versions "
        "FROM templates t JOIN template_versions v ON v.template_uuid = t.uuid "
        "WHERE t.uuid = ? GROUP BY t.uuid",
        (uuid,),
    ).fetchone()
    return _template(row) if row else None


def get_template_version(conn: Tx, template_uuid: str, version: int) -> TemplateVersion | None:
    row = conn.execute(
        "SELECT documents FROM template_versions WHERE template_uuid = ? AND version = ?",
        (template_uuid, version),
    ).fetchone()
    if row is None:
        return None
    return TemplateVersion(
        template_uuid=template_uuid, version=version, documents=_documents(row["documents"])
    )


@functools.lru_cache(maxsize=256)
def _documents(text: str) -> tuple[dict[str, Any], ...]:
    """A version's documents from their JSON, decoded once per distinct text: every incoming
    envelope is checked against its version, and versions rarely change (a changed one is a
    different text, so it is never served stale). Callers only read them."""
    return tuple(json.loads(text))


def _mailbox(row: Any) -> Mailbox:
    return Mailbox(uuid=row["uuid"], account_uuid=row["account_uuid"], name=row["name"])


def _template(row: Any) -> Template:
    versions = tuple(sorted(int(v) for v in str(row["versions"]).split(",")))
    return Template(
        uuid=row["uuid"], account_uuid=row["account_uuid"], name=row["name"], versions=versions
    )
