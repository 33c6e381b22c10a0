"""One PostgreSQL connection dressed as the transaction units of work expect (:class:`Tx`).

Storage functions write their SQL once, with SQLite's ``?`` placeholders; this module turns them
into psycopg's ``%s`` (outside quoted text), gives rows that answer by index and by column name
like ``sqlite3.Row``, stores Python booleans in the integer columns both schemas use, and reads
the time from the database's clock.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Dumper
from psycopg.pq import TransactionStatus


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """``?`` → ``%s`` and ``%`` → ``%%`` outside single-quoted text (the SQL is ours, a fixed
    set of statements, so the cache stays small)."""
    out: list[str] = []
    quoted = False
    for char in sql:
        if char == "'":
            quoted = not quoted
            out.append(char)
        elif quoted:
            out.append(char)
        elif char == "?":
            out.append("%s")
        elif char == "%":
            out.append("%%")
        else:
            out.append(char)
    return "".join(out)


class Row(tuple[Any, ...]):
    """A result row read by position or by column name, as ``sqlite3.Row`` is."""

    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self._index[key])
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> Any:
    description = cursor.description or []
    index = {column.name: position for position, column in enumerate(description)}
    return lambda values: Row(values, index)


class _BoolAsInteger(Dumper):
    """Booleans go into integer columns (the schema mirrors SQLite's, which has no booleans)."""

    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


def configure_connection(conn: psycopg.Connection[Any]) -> None:
    """Set up a new pooled connection: rows by name, booleans as integers."""
    conn.row_factory = _row_factory
    conn.adapters.register_dumper(bool, _BoolAsInteger)


class IntegrityViolation(sqlite3.IntegrityError):
    """A unique or foreign key constraint refused a statement on PostgreSQL. A subclass of
    ``sqlite3.IntegrityError`` so that units catching a conflict work on both backends."""


class PgCursor:
    """The part of a DB-API cursor the storage functions use."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor.fetchall())


class PgTx:
    """A PostgreSQL connection as a :class:`core.storage.connection.Tx`."""

    dialect = "postgres"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self._now: float | None = None
        self.notices: set[tuple[str, str]] = set()  # (channel, payload), sent at commit

    def execute(self, sql: str, parameters: Any = (), /) -> PgCursor:
        try:
            cursor = self.conn.execute(translate(sql), parameters or None)
        except pg_errors.IntegrityError as exc:
            raise IntegrityViolation(str(exc)) from exc
        return PgCursor(cursor)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> PgCursor:
        cursor = self.conn.cursor()
        try:
            cursor.executemany(translate(sql), list(parameters))
        except pg_errors.IntegrityError as exc:
            raise IntegrityViolation(str(exc)) from exc
        return PgCursor(cursor)

    @property
    def in_transaction(self) -> bool:
        return self.conn.info.transaction_status != TransactionStatus.IDLE

    def notify(self, channel: str, payload: str) -> None:
        """Sent when the transaction commits (once per distinct payload), never on rollback."""
        self.notices.add((channel, payload))

    def send_notices(self) -> None:
        """Queue the notifications in the transaction (PostgreSQL delivers them at commit)."""
        for channel, payload in sorted(self.notices):
            self.conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    def store_now(self) -> float:
        """The transaction's start by the database clock (``now()``), read once per
        transaction: every lease and due time a unit writes is from the same instant."""
        if self._now is None:
            row = self.conn.execute("SELECT extract(epoch FROM now())::float8").fetchone()
            assert row is not None  # a SELECT without FROM gives one row
            self._now = float(row[0])
        return self._now


def open_read_only(url: str) -> PgTx:
    """A session whose every statement runs in its own read-only transaction (the look-ups of
    conversion maps, in the worker processes); connection errors as ``sqlite3`` errors, the
    vocabulary the callers already handle."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        conn.execute("SET default_transaction_read_only = on")
    except psycopg.Error as exc:
        raise sqlite3.OperationalError(str(exc).strip()) from exc
    configure_connection(conn)
    return PgTx(conn)
