"""Node leases: one row per running engine (a node), visible to every process and every node.

A node is named (``docbridge serve --node-name``; the host name by default). Its holder renews
the row every second; a lease that ran out, or whose holder's pid is gone on this host, can be
taken over by a process with the same name; a second live process with that name is told who
holds it. On PostgreSQL the lease runs out by the database's clock.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from core.clock import utc_now
from core.storage.connection import Tx, concurrent_write, store_now


@dataclass(frozen=True)
class LeaseHolder:
    name: str
    owner: str
    pid: int
    host: str
    started_at: str


def try_acquire(
    conn: Tx, name: str, owner: str, pid: int, host: str, lease_s: float
) -> LeaseHolder | None:
    """Take node ``name``'s lease; returns None on success, or the live holder that keeps it.
    Run alone (not concurrent): check, then write."""
    now = store_now(conn)
    row = conn.execute(
        "SELECT owner, pid, host, started_at, lease_until FROM nodes WHERE name = ?", (name,)
    ).fetchone()
    if row is not None and row["owner"] != owner and row["lease_until"] >= now:
        holder = LeaseHolder(name, row["owner"], row["pid"], row["host"], row["started_at"])
        if not (holder.host == host and not _pid_alive(holder.pid)):
            return holder
    conn.execute(
        "INSERT INTO nodes (name, owner, pid, host, started_at, heartbeat_at, lease_until, "
        "listeners, sessions) VALUES (?, ?, ?, ?, ?, ?, ?, '{}', '[]') "
        "ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, pid = excluded.pid, "
        "host = excluded.host, started_at = excluded.started_at, "
        "heartbeat_at = excluded.heartbeat_at, lease_until = excluded.lease_until, "
        "listeners = '{}', sessions = '[]'",
        (name, owner, pid, host, utc_now(), utc_now(), now + lease_s),
    )
    return None


@concurrent_write
def renew(conn: Tx, name: str, owner: str, lease_s: float) -> bool:
    """Extend our lease; False means another process took our name (we must stop)."""
    cursor = conn.execute(
        "UPDATE nodes SET heartbeat_at = ?, lease_until = ? WHERE name = ? AND owner = ?",
        (utc_now(), store_now(conn) + lease_s, name, owner),
    )
    return cursor.rowcount == 1


@concurrent_write
def publish(
    conn: Tx, name: str, owner: str, listeners: dict[str, str], sessions: list[dict[str, str]]
) -> None:
    conn.execute(
        "UPDATE nodes SET listeners = ?, sessions = ? WHERE name = ? AND owner = ?",
        (json.dumps(listeners), json.dumps(sessions), name, owner),
    )


def release(conn: Tx, name: str, owner: str) -> None:
    """A clean stop: the node's row and the once-per-store leases it held (another node
    takes them over at its next heartbeat instead of after their lease)."""
    if conn.execute("DELETE FROM nodes WHERE name = ? AND owner = ?", (name, owner)).rowcount:
        conn.execute("DELETE FROM singleton_leases WHERE node = ?", (name,))


def live_owners(conn: Tx) -> list[str]:
    """The owners of every node whose lease still runs (by the store's clock)."""
    rows = conn.execute(
        "SELECT owner FROM nodes WHERE lease_until >= ?", (store_now(conn),)
    ).fetchall()
    return [str(row[0]) for row in rows]


def hold_singleton(conn: Tx, name: str, node: str, lease_s: float) -> bool:
    """Take or keep the named once-per-store lease for ``node``; False while another live node
    holds it. One statement, so two nodes asking at once cannot both win."""
    now = store_now(conn)
    row = conn.execute(
        "INSERT INTO singleton_leases (name, node, lease_until) VALUES (?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET node = excluded.node, lease_until = excluded.lease_until "
        "WHERE singleton_leases.node = excluded.node OR singleton_leases.lease_until < ? "
        "RETURNING node",
        (name, node, now + lease_s, now),
    ).fetchone()
    return row is not None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
