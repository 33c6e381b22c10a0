"""Wake-ups across nodes: a node hears at once, through PostgreSQL's LISTEN/NOTIFY, that
another process queued work, instead of at its next poll.

Notifications are sent at commit (never for a rollback) by :class:`PgTx`; only a session that
listens at that moment hears them, so one lost during a reconnect costs a poll interval, never
work: the engine's polling stays underneath and correctness never depends on a notification.
The listener has its own connection, outside the pool (a pooled one would be handed back).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from typing import Any

from core.storage.connection import JOBS_CHANNEL

log = logging.getLogger("docbridge.engine")

RECONNECT_S = (0.5, 1.0, 2.0, 5.0)  # waits between attempts, the last one repeated


async def listen_for_jobs(url: str, on_kind: Callable[[str], None]) -> None:
    """Call ``on_kind(kind)`` for each notified job kind, reconnecting after a lost connection,
    until cancelled."""
    psycopg: Any = await asyncio.to_thread(importlib.import_module, "psycopg")  # reads files
    failures = 0
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=10)
            async with conn:
                await conn.execute(f"LISTEN {JOBS_CHANNEL}")
                failures = 0
                on_kind("")  # whatever was notified while we were not listening
                async for notification in conn.notifies():
                    on_kind(notification.payload)
        except psycopg.Error as exc:
            wait = RECONNECT_S[min(failures, len(RECONNECT_S) - 1)]
            if failures == 0:
                log.warning("job wake-ups lost (%s); polling until they come back", exc)
            failures += 1
            await asyncio.sleep(wait)
