"""The engine lease row: who runs the engine of this data directory, and since when."""

from __future__ import annotations

from typing import Any

from core.clock import timestamp
from core.models import EngineStatus
from core.storage.connection import Tx
from core.storage.status_reads import engine_status_in


def read_engine_status(conn: Tx, now: float | None = None) -> EngineStatus:
    """The lease and the queue, in the caller's transaction (read by ``docbridge status`` too)."""
    fields: dict[str, Any] = engine_status_in(conn, timestamp() if now is None else now)
    return EngineStatus(**fields)
