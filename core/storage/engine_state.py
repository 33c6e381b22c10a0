"""The engine lease row: who runs the engine of this data directory, and since when."""

from __future__ import annotations

import json
import sqlite3

from core.clock import timestamp
from core.models import EngineStatus


def read_engine_status(conn: sqlite3.Connection, now: float | None = None) -> EngineStatus:
    now = timestamp() if now is None else now
    row = conn.execute("SELECT * FROM engine_lease WHERE id = 1").fetchone()
    depth, parked = conn.execute(
        "SELECT COALESCE(SUM(state IN ('ready', 'running')), 0), "
        "COALESCE(SUM(state = 'parked'), 0) FROM jobs"
    ).fetchone()
    if row is None or row["lease_until"] < now:
        return EngineStatus(running=False, queue_depth=depth, parked=parked)
    return EngineStatus(
        running=True,
        owner=row["owner"],
        pid=row["pid"],
        host=row["host"],
        started_at=row["started_at"],
        heartbeat_at=row["heartbeat_at"],
        listeners=json.loads(row["listeners"] or "{}"),
        sessions=tuple(json.loads(row["sessions"] or "[]")),
        queue_depth=depth,
        parked=parked,
    )
