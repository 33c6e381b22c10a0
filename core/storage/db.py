"""The database door for async callers: every statement on one thread, kept off the event loop.

Every statement runs on one dedicated thread that owns the connection, so the event loop never
waits on disk and the connection is never shared across threads. Several processes (a TUI and a
``docbridge serve``) may open the same file: WAL lets readers run beside a writer, writers take the
lock up front with ``BEGIN IMMEDIATE`` and wait for it through ``busy_timeout`` instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeAlias, TypeVar, cast

from core.storage.connection import (
    BUSY_TIMEOUT_MS,
    Tx,
    connect,
    read_transaction,
    savepoint,
    store_error,
    write_transaction,
)
from core.storage.connection import rollback_quietly as _rollback_quietly

__all__ = [
    "BUSY_TIMEOUT_MS",
    "Database",
    "Tx",
    "connect",
    "read_transaction",
    "savepoint",
    "store_error",
    "write_transaction",
]

T = TypeVar("T")
P = ParamSpec("P")

GROUP_LIMIT = 256  # grouped writes per shared transaction: a bound on one commit's work


class Database:
    """Runs functions of a connection on the database thread; the only door to SQLite.

    SQLite errors a user can act on (locked, disk full, I/O error, read-only, damaged) leave
    :meth:`call` as :class:`~core.errors.StoreError` subclasses, chained to the ``sqlite3``
    error; any transaction ``fn`` left open is rolled back first, so nothing is half-written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="docbridge-db")
        self._conn: sqlite3.Connection | None = None
        self._closing: asyncio.Future[None] | None = None
        self._group: list[_Grouped] = []  # grouped writes waiting for the next shared commit
        self._group_lock = threading.Lock()
        self._group_flush_queued = False

    async def call(
        self,
        fn: Callable[Concatenate[Any, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        loop = asyncio.get_running_loop()
        job = functools.partial(self._run, fn, *args, **kwargs)
        return await loop.run_in_executor(self._executor, job)

    async def write(
        self,
        fn: Callable[Concatenate[Any, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn`` in one write transaction (all or nothing) on the database thread."""
        return await self.call(_in_write_transaction, functools.partial(fn, **kwargs), *args)

    async def write_grouped(
        self,
        fn: Callable[Concatenate[Any, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Like :meth:`write`, but sharing one durable commit with the grouped writes that
        arrive while the database thread is busy (group commit).

        Each write runs in its own savepoint: one that raises undoes its own changes only and
        raises to its caller, the others commit. Every caller is answered after the commit, so
        an answered write is on disk; if the commit fails, every write of the group fails.
        """
        loop = asyncio.get_running_loop()
        item = _Grouped(functools.partial(fn, **kwargs), args, loop, loop.create_future())
        with self._group_lock:
            self._group.append(item)
            flush = not self._group_flush_queued
            self._group_flush_queued = True
        if flush:
            try:
                self._executor.submit(self._flush_group)
            except RuntimeError:  # closed: nothing will run it
                with self._group_lock:
                    self._group.remove(item)
                    self._group_flush_queued = False
                raise
        return cast(T, await item.answer)

    @property
    def waiting_writes(self) -> int:
        """Grouped writes queued for the next shared commit (how busy intake is)."""
        with self._group_lock:
            return len(self._group)

    def _flush_group(self) -> None:
        """On the database thread: run the waiting grouped writes in one transaction."""
        while True:
            with self._group_lock:
                items = self._group[:GROUP_LIMIT]
                del self._group[:GROUP_LIMIT]
                more = bool(self._group)
                self._group_flush_queued = more
            if items:
                self._commit_group(items)
            if not more:
                return
            try:  # the rest after the work queued meanwhile: a stream of writes starves no one
                self._executor.submit(self._flush_group)
                return
            except RuntimeError:  # shutting down: finish them here
                continue

    def _commit_group(self, items: list[_Grouped]) -> None:
        try:
            outcomes = self._run(_run_group, items, self.path)
        except BaseException as exc:
            outcomes = [(None, exc)] * len(items)
        for item, outcome in zip(items, outcomes, strict=True):
            with contextlib.suppress(RuntimeError):  # the caller's loop has closed
                item.loop.call_soon_threadsafe(_settle, item.answer, outcome)

    async def read(
        self,
        fn: Callable[Concatenate[Any, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn`` on one consistent snapshot (several SELECTs see the same data)."""
        return await self.call(_in_read_transaction, functools.partial(fn, **kwargs), *args)

    def _run(
        self,
        fn: Callable[Concatenate[Any, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        try:
            if self._conn is None:
                self._conn = connect(self.path)
            conn = self._conn
            try:
                return fn(conn, *args, **kwargs)
            except BaseException:
                _rollback_quietly(conn)
                raise
        except sqlite3.Error as exc:
            translated = store_error(exc, self.path)
            if translated is None:
                raise
            raise translated from exc

    async def wake_ups(self, on_kind: Callable[[str], None]) -> None:
        """Processes on one host have no notifications: the engine polls (and a service in
        the same process wakes it directly). Returns at once."""

    async def close(self) -> None:
        """Close the connection and end the database thread; the next calls do nothing.

        Callers that close at the same time all wait for the one shutdown, and a caller that is
        cancelled while waiting does not cut it short. The thread is joined from another thread:
        a join on the loop would stall every session until the last statement finished.
        """
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._shut_down())
        elif self._closing.done():
            return
        await asyncio.shield(self._closing)

    async def _shut_down(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close)
        finally:
            await asyncio.to_thread(self._executor.shutdown, True)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass(frozen=True)
class _Grouped:
    """A grouped write: its work, and where and how its caller is answered."""

    fn: Callable[..., object]
    args: tuple[object, ...]
    loop: asyncio.AbstractEventLoop
    answer: asyncio.Future[object]


_Outcome: TypeAlias = tuple[object, BaseException | None]


def _run_group(conn: sqlite3.Connection, items: list[_Grouped], path: Path) -> list[_Outcome]:
    """Each item in its savepoint, one commit for all; an item's error is its own outcome."""
    outcomes: list[_Outcome] = []
    with write_transaction(conn):
        for item in items:
            try:
                with savepoint(conn):
                    outcomes.append((item.fn(conn, *item.args), None))
            except Exception as exc:
                if not conn.in_transaction:
                    raise  # SQLite rolled everything back: the whole group fails with this
                outcomes.append((None, _as_store_error(exc, path)))
    return outcomes


def _as_store_error(exc: Exception, path: Path) -> BaseException:
    """An SQLite error a user can act on as its store error (chained), anything else as is."""
    translated = store_error(exc, path) if isinstance(exc, sqlite3.Error) else None
    if translated is None:
        return exc
    translated.__cause__ = exc
    return translated


def _settle(answer: asyncio.Future[object], outcome: _Outcome) -> None:
    if answer.done():  # the caller was cancelled; its write stands
        return
    result, error = outcome
    if error is None:
        answer.set_result(result)
    else:
        answer.set_exception(error)


def _in_write_transaction(conn: sqlite3.Connection, fn: Callable[..., T], /, *args: object) -> T:
    with write_transaction(conn):
        return fn(conn, *args)


def _in_read_transaction(conn: sqlite3.Connection, fn: Callable[..., T], /, *args: object) -> T:
    with read_transaction(conn):
        return fn(conn, *args)
