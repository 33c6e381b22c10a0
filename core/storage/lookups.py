"""Read-only look-ups that conversion maps may make through the platform's extension functions.

They run in the XSLT worker processes on their own read-only connection (see
:mod:`core.conversion.extensions`), so each answers one question with one statement and never
writes. Both answer only with what belongs to the given account, and only when exactly one row
matches: a name or value that fits two mailboxes or envelopes is no answer at all, as on the
platform.
"""

from __future__ import annotations

import sqlite3
from urllib.parse import quote

from core.storage.connection import Tx, is_postgres


def open_read_only(database: str) -> Tx:
    """A connection that cannot write: the SQLite file opened read-only, queries only; or, for
    a PostgreSQL store's URL, a session whose transactions are read-only."""
    if database.startswith(("postgresql:", "postgres:")):
        from core.storage.postgres.connection import open_read_only as open_postgres

        return open_postgres(database)
    conn = sqlite3.connect(f"file:{quote(database)}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA query_only = ON")
    return conn


def mailbox_uuid_by_alias(conn: Tx, account_uuid: str, name: str) -> str | None:
    """The uuid of the account's mailbox called exactly ``name``; None if none or several."""
    rows = conn.execute(
        "SELECT uuid FROM mailboxes WHERE account_uuid = ? AND name = ? LIMIT 2",
        (account_uuid, name),
    ).fetchall()
    return str(rows[0][0]) if len(rows) == 1 else None


def envelope_uuid_by_field(
    conn: Tx, account_uuid: str, template_uuid: str, field_name: str, value: str
) -> str | None:
    """The uuid of the one envelope of ``template_uuid``, in a mailbox of the account, that has
    a top-level field ``field_name`` (in any of its documents) equal to ``value``; None if no
    envelope or several match. Fields inside tables (fieldgroups) do not count.
    """
    fields, name, field_value = _FIELDS_POSTGRES if is_postgres(conn) else _FIELDS_SQLITE
    rows = conn.execute(
        "SELECT DISTINCT e.uuid FROM envelopes e "
        f"JOIN mailboxes m ON m.uuid = e.mailbox_uuid, {fields} "
        f"WHERE m.account_uuid = ? AND e.template_uuid = ? AND {name} = ? AND {field_value} = ? "
        "LIMIT 2",
        (account_uuid, template_uuid, field_name, value),
    ).fetchall()
    return str(rows[0][0]) if len(rows) == 1 else None


# Every top-level field of every document of an envelope (FROM items), and its name and
# value, per dialect.
_FIELDS_SQLITE = (
    "json_each(e.documents) AS d, json_each(d.value, '$.fields') AS f",
    "json_extract(f.value, '$.name')",
    "json_extract(f.value, '$.value')",
)
_FIELDS_POSTGRES = (
    "jsonb_array_elements(e.documents::jsonb) AS d, jsonb_array_elements(d -> 'fields') AS f",
    "f ->> 'name'",
    "f ->> 'value'",
)
