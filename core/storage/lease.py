"""The engine lease: at most one engine per data directory, visible to every process.

The holder renews the row every second; a lease that ran out, or whose holder's pid is gone on
this host, can be taken over. A second engine is told who holds it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from core.clock import timestamp, utc_now
from core.storage.connection import Tx


@dataclass(frozen=True)
class LeaseHolder:
    owner: str
    pid: int
    host: str
    started_at: str


def try_acquire(conn: Tx, owner: str, pid: int, host: str, lease_s: float) -> LeaseHolder | None:
    """Take the lease; returns None on success, or the live holder that keeps it."""
    now = timestamp()
    row = conn.execute("SELECT * FROM engine_lease WHERE id = 1").fetchone()
    if row is not None and row["owner"] != owner and row["lease_until"] >= now:
        holder = LeaseHolder(row["owner"], row["pid"], row["host"], row["started_at"])
        if not (holder.host == host and not _pid_alive(holder.pid)):
            return holder
    conn.execute(
        "INSERT INTO engine_lease (id, owner, pid, host, started_at, heartbeat_at, lease_until, "
        "listeners, sessions) VALUES (1, ?, ?, ?, ?, ?, ?, '{}', '[]') "
        "ON CONFLICT(id) DO UPDATE SET owner = excluded.owner, pid = excluded.pid, "
        "host = excluded.host, started_at = excluded.started_at, "
        "heartbeat_at = excluded.heartbeat_at, lease_until = excluded.lease_until, "
        "listeners = '{}', sessions = '[]'",
        (owner, pid, host, utc_now(), utc_now(), now + lease_s),
    )
    return None


def renew(conn: Tx, owner: str, lease_s: float) -> bool:
    """Extend our lease; False means another engine took it (we must stop)."""
    cursor = conn.execute(
        "UPDATE engine_lease SET heartbeat_at = ?, lease_until = ? WHERE id = 1 AND owner = ?",
        (utc_now(), timestamp() + lease_s, owner),
    )
    return cursor.rowcount == 1


def publish(
    conn: Tx, owner: str, listeners: dict[str, str], sessions: list[dict[str, str]]
) -> None:
    conn.execute(
        "UPDATE engine_lease SET listeners = ?, sessions = ? WHERE id = 1 AND owner = ?",
        (json.dumps(listeners), json.dumps(sessions), owner),
    )


def release(conn: Tx, owner: str) -> None:
    conn.execute("DELETE FROM engine_lease WHERE id = 1 AND owner = ?", (owner,))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
