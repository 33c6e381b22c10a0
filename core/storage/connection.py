"""The SQLite connection without the event loop: opening it with docbridge's pragmas,
transactions, savepoints and what its errors mean to a user.

:mod:`core.storage.db` runs these on its database thread for the async callers; a one-shot
command (``docbridge envelope receive``) uses them directly, without loading asyncio.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from core.clock import timestamp
from core.errors import StoreBusy, StoreError, StoreFull, StoreProblem, StoreUnavailable
from core.storage.schema import migrate

U = TypeVar("U", bound=Callable[..., Any])


class Cursor(Protocol):
    """What a statement returns: rows (by index and by column name) and a count."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Tx(Protocol):
    """What a unit of work receives: the transaction :meth:`Database.write` or
    :meth:`Database.read` opened for it, on either backend (docs/scale-out.md).

    Units outside ``core/storage/`` only hand it on to storage functions (they never run SQL).
    Storage functions write SQL both backends run (``?`` placeholders; the PostgreSQL
    connection translates them) and ask :func:`is_postgres` where the dialects differ.
    """

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor: ...

    @property
    def in_transaction(self) -> bool: ...


def is_postgres(tx: Tx) -> bool:
    """Whether this transaction runs on PostgreSQL (where the SQL dialects differ)."""
    return getattr(tx, "dialect", "sqlite") == "postgres"


def store_now(tx: Tx) -> float:
    """Seconds since the epoch by the store's clock, for leases, due times and bans.

    On PostgreSQL the database's clock decides, so nodes whose clocks disagree still agree on
    which lease ran out; SQLite serves one host, whose clock is the store's.
    """
    now = getattr(tx, "store_now", None)
    return float(now()) if now is not None else timestamp()


ROWS_PER_INSERT = 100  # rows of one multi-row INSERT (SQLite allows 32,766 variables)


def insert_rows(tx: Tx, insert: str, rows: list[tuple[Any, ...]]) -> None:
    """``insert`` ("INSERT INTO t (a, b)") for every row, one multi-row statement per
    ``ROWS_PER_INSERT`` rows: on a networked store a statement per row costs more than the
    rows themselves."""
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start : start + ROWS_PER_INSERT]
        row = "(" + ", ".join("?" * len(chunk[0])) + ")"
        tx.execute(
            f"{insert} VALUES {', '.join([row] * len(chunk))}", tuple(v for r in chunk for v in r)
        )


JOBS_CHANNEL = "docbridge_jobs"  # core.storage.postgres.listener listens on it


def notify_job(tx: Tx, kind: str) -> None:
    """Tell the engines of every node, once this transaction commits, that a job of ``kind``
    is waiting (PostgreSQL's NOTIFY); nothing to do on SQLite, where engines poll."""
    notify = getattr(tx, "notify", None)
    if notify is not None:
        notify(JOBS_CHANNEL, str(kind))


def concurrent_write(unit: U) -> U:
    """Marks a unit of work that stays correct beside other writers without the store's write
    lock (its conflicts are settled by row locks, ``SKIP LOCKED`` or ``ON CONFLICT``).

    SQLite runs every write alone anyway. PostgreSQL runs unmarked units one at a time across
    every node (a transaction-scoped advisory lock), as SQLite would, since their
    check-then-act was written for that; marked ones (job claims and completions, heartbeats)
    run side by side, which is what lets several engines share the work.
    """
    setattr(unit, CONCURRENT_MARK, True)
    return unit


CONCURRENT_MARK = "_docbridge_concurrent_write"


BUSY_TIMEOUT_MS = 30_000


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
        rollback_quietly(conn)
        raise


@contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A consistent snapshot across several SELECTs."""
    conn.execute("BEGIN")
    try:
        yield conn
    except BaseException:
        rollback_quietly(conn)
        raise
    conn.execute("COMMIT")


def rollback_quietly(conn: sqlite3.Connection) -> None:
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


@contextlib.contextmanager
def savepoint(conn: Tx) -> Iterator[None]:
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
