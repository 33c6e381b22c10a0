"""What ``docbridge status`` reads, as plain values, on a connection that never writes.

Without the domain models on purpose: the command is run by scripts and monitoring every few
seconds, and starts without dataclasses, the models, asyncio or the database thread (see
:mod:`core.cli_quick`). :func:`core.storage.engine_state.read_engine_status` builds its
:class:`core.models.EngineStatus` from the same dictionary, whose keys are its fields.
"""

from __future__ import annotations

import sqlite3

from core.storage.schema import SCHEMA_VERSION, schema_version

TYPE_CHECKING = False  # not typing: the quick commands start without it

if TYPE_CHECKING:
    from core.storage.connection import Tx

BUSY_TIMEOUT_S = 30.0  # as core.storage.db (which imports asyncio: not here)


def open_current(path: str) -> sqlite3.Connection | None:
    """A read-only connection to the existing store at ``path`` whose schema is current; None
    when there is no such file or its schema is not this docbridge's (the ordinary path then
    creates nothing, migrates or explains). Never creates the file."""
    try:
        conn = sqlite3.connect(
            "file://" + _uri_path(path), uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S
        )
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA query_only = ON")
        if schema_version(conn) == SCHEMA_VERSION:
            return conn
    except sqlite3.Error:
        pass
    conn.close()
    return None


def _uri_path(path: str) -> str:
    # What an SQLite URI would otherwise read as an escape, its query or its fragment; mode=rw
    # opens an existing file only.
    quoted = path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    return quoted + "?mode=rw"


def engine_status_fields(conn: Tx, now: float) -> dict[str, object]:
    """The engine lease (running when it lasts beyond ``now``) and the queue, in one snapshot."""
    conn.execute("BEGIN")
    try:
        return engine_status_in(conn, now)
    finally:
        conn.execute("COMMIT")


def engine_status_in(conn: Tx, now: float) -> dict[str, object]:
    """:func:`engine_status_fields` in the caller's transaction (the one SQL both
    ``docbridge status`` and :func:`core.storage.engine_state.read_engine_status` read).

    Every node is listed (``nodes``); one whose lease ran out is ``gone``. The top-level fields
    describe the first running node by name (the only one, on a single host), and ``sessions``
    holds the SFTP sessions of every running node.
    """
    rows = conn.execute(
        "SELECT name, owner, pid, host, started_at, heartbeat_at, lease_until, listeners, "
        "sessions FROM nodes ORDER BY name"
    ).fetchall()
    depth, parked = conn.execute(
        "SELECT COALESCE(SUM(CASE WHEN state IN ('ready', 'running') THEN 1 ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN state = 'parked' THEN 1 ELSE 0 END), 0) FROM jobs"
    ).fetchone()
    fields: dict[str, object] = {
        "running": False,
        "owner": None,
        "pid": None,
        "host": None,
        "started_at": None,
        "heartbeat_at": None,
        "listeners": {},
        "sessions": (),
        "queue_depth": int(depth),
        "parked": int(parked),
        "nodes": (),
    }
    if not rows:
        return fields
    import json  # only once an engine ran: its listeners and sessions

    nodes: list[dict[str, object]] = []
    sessions: list[dict[str, str]] = []
    for name, owner, pid, host, started_at, heartbeat_at, until, listeners, held in rows:
        running = until >= now
        node: dict[str, object] = {
            "name": name,
            "running": running,
            "pid": pid,
            "host": host,
            "started_at": started_at,
            "heartbeat_at": heartbeat_at,
            "listeners": json.loads(listeners or "{}") if running else {},
        }
        nodes.append(node)
        if not running:
            continue
        sessions += [dict(s, node=name) for s in json.loads(held or "[]")]
        if not fields["running"]:
            fields.update(node, owner=owner)
            del fields["name"]
    fields["sessions"] = tuple(sessions)
    fields["nodes"] = tuple(nodes)
    return fields


def mailbox_names(conn: Tx) -> dict[str, str]:
    """uuid -> name of every mailbox (to name the mailboxes of SFTP sessions)."""
    return dict(conn.execute("SELECT uuid, name FROM mailboxes").fetchall())


def stores_as2_certificates(conn: Tx) -> bool:
    """Whether any AS2 integration holds a certificate (ours or the partner's): only then does
    ``status`` need to read certificates (and load cryptography) for expiry warnings. The same
    rows as :func:`core.storage.integrations.as2_certificates`."""
    row = conn.execute(
        "SELECT 1 FROM integrations i JOIN mailboxes m ON m.uuid = i.mailbox_uuid "
        "LEFT JOIN as2_identities a ON a.mailbox_uuid = i.mailbox_uuid "
        "WHERE i.protocol = 'as2' AND (COALESCE(i.as2_partner_certificate, '') != '' "
        "OR COALESCE(a.certificate_pem, '') != '') LIMIT 1"
    ).fetchone()
    return row is not None
