"""The SQLite connection, its pragmas and transactions, kept off the event loop.

Every statement runs on one dedicated thread that owns the connection, so the event loop never
waits on disk and the connection is never shared across threads. Several processes (a TUI and a
``docbridge serve``) may open the same file: WAL lets readers run beside a writer, writers take the
lock up front with ``BEGIN IMMEDIATE`` and wait for it through ``busy_timeout`` instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeAlias, TypeVar, cast

from core.errors import StoreBusy, StoreError, StoreFull, StoreProblem, StoreUnavailable
from core.storage.schema import migrate

T = TypeVar("T")
P = ParamSpec("P")

Tx: TypeAlias = sqlite3.Connection
"""What a unit of work receives: the transaction :meth:`Database.write` or :meth:`Database.read`
opened for it. Units outside ``core/storage/`` only hand it on to storage functions (they never
run SQL); today it is the SQLite connection, a second backend makes it a ``Protocol``
(docs/scale-out.md)."""

BUSY_TIMEOUT_MS = 30_000
GROUP_LIMIT = 256  # grouped writes per shared transaction: a bound on one commit's work


def _make_private(path: Path) -> None:
    """The store file 0600, without ever closing a descriptor of an existing store.

    POSIX drops *every* lock a process holds on a file when it closes *any* descriptor of
    that file: an open-and-close here, while another connection of this process (the TUI's
    engine beside its service) holds the store, cancels that connection's SQLite locks. The
    next process that opens the store then thinks it is alone, checkpoints and deletes the
    WAL under the live connection, whose later commits nobody else sees. So: a new file is
    created 0600 (nobody holds it yet), an existing one is chmod'ed by path.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        try:
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.chmod(path, 0o600)
        except OSError:
            pass  # not our file to change (a read-only store): SQLite says what it can do
        return
    except OSError:
        return  # SQLite reports what is wrong with the path, as a store error
    os.close(fd)


def connect(path: Path) -> sqlite3.Connection:
    """Open ``path`` with the pragmas every docbridge connection needs, migrated to the latest.

    The file is private (0600): it holds password hashes and audit details. SQLite gives its
    ``-wal`` and ``-shm`` files the database file's mode, so they are private too.
    """
    _make_private(path)
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit is on disk before we acknowledge anything to a client.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn)
    except BaseException:
        conn.close()  # a half-set-up connection is never kept (next call connects afresh)
        raise
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """All or nothing: take the write lock first, so the transaction never fails half-way.

    A failed COMMIT (disk full, I/O error) rolls back too: the caller never sees an open
    transaction, and a later ``BEGIN`` on the same connection works.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        _rollback_quietly(conn)
        raise


@contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A consistent snapshot across several SELECTs."""
    conn.execute("BEGIN")
    try:
        yield conn
    except BaseException:
        _rollback_quietly(conn)
        raise
    conn.execute("COMMIT")


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    """End an open transaction without hiding the error that caused the rollback.

    SQLite may already have rolled back by itself (SQLITE_FULL, SQLITE_IOERR...); then there is
    nothing to do, and a failing ROLLBACK must not replace the original error.
    """
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


# SQLite's primary result codes (the low byte of an extended code) and what a user must do.
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_UNAVAILABLE_CODES: dict[int, StoreProblem] = {
    sqlite3.SQLITE_IOERR: StoreProblem.IO_ERROR,
    sqlite3.SQLITE_CORRUPT: StoreProblem.CORRUPT,
    sqlite3.SQLITE_NOTADB: StoreProblem.CORRUPT,
    sqlite3.SQLITE_READONLY: StoreProblem.READ_ONLY,
    sqlite3.SQLITE_CANTOPEN: StoreProblem.CANNOT_OPEN,
    sqlite3.SQLITE_PERM: StoreProblem.READ_ONLY,
}
# For errors that carry no code (raised by the sqlite3 module itself, or by older Pythons).
_BUSY_TEXTS = ("database is locked", "database table is locked", "database schema is locked")
_UNAVAILABLE_TEXTS: tuple[tuple[str, StoreProblem], ...] = (
    ("disk i/o error", StoreProblem.IO_ERROR),
    ("malformed", StoreProblem.CORRUPT),
    ("file is not a database", StoreProblem.CORRUPT),
    ("readonly database", StoreProblem.READ_ONLY),
    ("read-only", StoreProblem.READ_ONLY),
    ("unable to open database", StoreProblem.CANNOT_OPEN),
)


def store_error(exc: sqlite3.Error, path: Path) -> StoreError | None:
    """The domain error for an SQLite error a user can act on, or None for a defect.

    Constraint violations, misuse and SQL errors stay ``sqlite3`` errors: they are bugs of ours,
    not something an admin can fix, and must reach the log with their traceback.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    name = getattr(exc, "sqlite_errorname", None) or str(exc)
    if isinstance(code, int) and code >= 0:
        primary = code & 0xFF
        if primary in _BUSY_CODES:
            return StoreBusy(path, name)
        if primary == sqlite3.SQLITE_FULL:
            return StoreFull(path, name)
        if primary in _UNAVAILABLE_CODES:
            return StoreUnavailable(path, _UNAVAILABLE_CODES[primary], name)
        return None
    text = str(exc).lower()
    if any(busy in text for busy in _BUSY_TEXTS):
        return StoreBusy(path, name)
    if "database or disk is full" in text:
        return StoreFull(path, name)
    for fragment, problem in _UNAVAILABLE_TEXTS:
        if fragment in text:
            return StoreUnavailable(path, problem, name)
    return None


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
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        loop = asyncio.get_running_loop()
        job = functools.partial(self._run, fn, *args, **kwargs)
        return await loop.run_in_executor(self._executor, job)

    async def write(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn`` in one write transaction (all or nothing) on the database thread."""
        return await self.call(_in_write_transaction, functools.partial(fn, **kwargs), *args)

    async def write_grouped(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
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
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn`` on one consistent snapshot (several SELECTs see the same data)."""
        return await self.call(_in_read_transaction, functools.partial(fn, **kwargs), *args)

    def _run(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
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


@contextlib.contextmanager
def savepoint(conn: sqlite3.Connection) -> Iterator[None]:
    """One item of a batch transaction: an exception undoes this item's writes only (and
    propagates), the batch's other items stay."""
    conn.execute("SAVEPOINT item")
    try:
        yield
    except BaseException:
        # SQLite may have rolled the whole transaction back itself (disk full, I/O error):
        # then there is no savepoint left, and the item's error is what the caller must see.
        if conn.in_transaction:
            conn.execute("ROLLBACK TO item")
            conn.execute("RELEASE item")
        raise
    conn.execute("RELEASE item")
