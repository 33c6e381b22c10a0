"""The store a process uses, whichever backend: what the service and the engine hold.

SQLite in the data directory is the embedded default; ``[store] url`` (or
``DOCBRIDGE_STORE_URL``) names a PostgreSQL database shared by several nodes. Both offer the
same door (:class:`Store`): units of work given to ``write``/``read``, never SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

T = TypeVar("T")
P = ParamSpec("P")


class Store(Protocol):
    """Runs units of work (functions of a :class:`~core.storage.connection.Tx`), each in one
    transaction, off the event loop."""

    path: Path  # what error messages name: the SQLite file, or the redacted URL

    async def call(
        self, fn: Callable[Concatenate[Any, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    async def write(
        self, fn: Callable[Concatenate[Any, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    async def write_grouped(
        self, fn: Callable[Concatenate[Any, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    async def read(
        self, fn: Callable[Concatenate[Any, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    @property
    def waiting_writes(self) -> int: ...

    async def wake_ups(self, on_kind: Callable[[str], None]) -> None:
        """Call ``on_kind`` with the kind of each job another process queues, until cancelled
        (PostgreSQL: LISTEN/NOTIFY); returns at once where there are none (SQLite)."""

    async def close(self) -> None: ...


def open_store(database_path: Path, url: str = "") -> Store:
    """PostgreSQL when ``url`` names it, else SQLite at ``database_path`` (nothing connects
    until the first unit runs)."""
    if url:
        from core.storage.postgres.database import PgDatabase  # psycopg: only for PostgreSQL

        return PgDatabase(url)
    from core.storage.db import Database

    return Database(database_path)
