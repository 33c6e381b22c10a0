"""SFTP bans as every process sees them: the engine writes them, the TUI may lift them."""

from __future__ import annotations

from core.clock import timestamp
from core.models import Ban
from core.storage.connection import Tx


def list_bans(conn: Tx, now: float | None = None) -> list[Ban]:
    now = timestamp() if now is None else now
    rows = conn.execute(
        "SELECT address, failures, banned_at, banned_until FROM sftp_bans "
        "WHERE banned_until > ? ORDER BY banned_at",
        (now,),
    ).fetchall()
    return [Ban(r[0], r[1], r[2], r[3]) for r in rows]


def upsert_ban(conn: Tx, ban: Ban) -> None:
    conn.execute(
        "INSERT INTO sftp_bans (address, failures, banned_at, banned_until) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(address) DO UPDATE SET failures = excluded.failures, "
        "banned_at = excluded.banned_at, banned_until = excluded.banned_until",
        (ban.address, ban.failures, ban.banned_at, ban.banned_until),
    )


def delete_ban(conn: Tx, address: str) -> bool:
    return conn.execute("DELETE FROM sftp_bans WHERE address = ?", (address,)).rowcount > 0


def purge_expired(conn: Tx, now: float | None = None) -> None:
    now = timestamp() if now is None else now
    conn.execute("DELETE FROM sftp_bans WHERE banned_until <= ?", (now,))
