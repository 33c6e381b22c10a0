"""The database door on PostgreSQL: the same ``call``/``write``/``read`` as SQLite's
:class:`core.storage.db.Database`, for several nodes sharing one database.

Units of work are synchronous functions of a transaction, as on SQLite; here they run on a few
threads, each with a connection from a psycopg pool, so the event loop never waits on the
network. A unit is one transaction. Writes run one at a time across every node (a
transaction-scoped advisory lock, as SQLite's ``BEGIN IMMEDIATE``) unless the unit is marked
:func:`~core.storage.connection.concurrent_write`: those (job claims, completions, heartbeats)
run side by side and settle conflicts with row locks. A unit PostgreSQL aborts for a
serialization failure or a deadlock is run again.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from core.errors import StoreError
from core.storage.connection import CONCURRENT_MARK
from core.storage.store_url import redacted

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

T = TypeVar("T")
P = ParamSpec("P")

THREADS = 4  # units at once per process; also the pool's size
# pg_advisory_xact_lock key that serialises unmarked writes across every node.
WRITE_LOCK = 0x646F_6362_7772_6974 & 0x7FFF_FFFF_FFFF_FFFF
RETRIES = 8  # runs of a unit aborted by a serialization failure or a deadlock
CONNECT_TIMEOUT_S = 30.0


class PgDatabase:
    """Runs units of work on PostgreSQL; the only door to it."""

    def __init__(
        self, url: str, *, threads: int = THREADS, connect_timeout_s: float = CONNECT_TIMEOUT_S
    ) -> None:
        self.url = url
        self.where = redacted(url)  # what messages name: never the password
        self.path = Path(self.where)
        self._connect_timeout_s = connect_timeout_s
        self._threads = threads
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="docbridge-pg")
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()
        self._closing: asyncio.Future[None] | None = None
        self._writes_under_way = 0

    async def call(
        self, fn: Callable[Concatenate[Any, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn`` in one transaction without the write lock: what SQLite runs on its bare
        connection, statement by statement (single reads, mostly), is at least as isolated
        here and waits for no writer."""
        unit = functools.partial(fn, **kwargs)
        job = functools.partial(self._run, "write", True, unit, args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    async def write(
        self, fn: Callable[Concatenate[Any, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn`` in one write transaction (all or nothing) on a database thread."""
        concurrent = bool(getattr(fn, CONCURRENT_MARK, False))
        unit = functools.partial(fn, **kwargs)
        job = functools.partial(self._run, "write", concurrent, unit, args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    async def write_grouped(
        self, fn: Callable[Concatenate[Any, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """A write of its own: PostgreSQL commits concurrent transactions together itself
        (its WAL flush serves every commit waiting on it), so nothing is gained by sharing."""
        self._writes_under_way += 1
        try:
            return await self.write(fn, *args, **kwargs)
        finally:
            self._writes_under_way -= 1

    @property
    def waiting_writes(self) -> int:
        return self._writes_under_way

    async def read(
        self, fn: Callable[Concatenate[Any, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn`` on one consistent snapshot (REPEATABLE READ, read only)."""
        unit = functools.partial(fn, **kwargs)
        job = functools.partial(self._run, "read", True, unit, args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    def _run(self, mode: str, concurrent: bool, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        # psycopg is imported here, on a database thread: importing it reads files (package
        # metadata), which must not happen on the event loop.
        import psycopg
        from psycopg import errors as pg_errors
        from psycopg_pool import PoolTimeout

        for attempt in range(1, RETRIES + 1):
            try:
                return self._run_once(mode, concurrent, fn, args)
            except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected):
                if attempt == RETRIES:
                    raise
                time.sleep(0.005 * attempt)  # on a database thread, never the loop
            except psycopg.Error as exc:
                translated = store_error(exc, self.where)
                if translated is None:
                    raise
                raise translated from exc
            except PoolTimeout as exc:
                raise _unreachable(self.where, str(exc)) from exc
        raise AssertionError("unreachable")

    def _run_once(
        self, mode: str, concurrent: bool, fn: Callable[..., T], args: tuple[Any, ...]
    ) -> T:
        from core.storage.postgres.connection import PgTx

        pool = self._open_pool()
        with pool.connection(timeout=self._connect_timeout_s) as conn:
            tx = PgTx(conn)
            with conn.transaction():
                if mode == "read":
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                elif not concurrent:
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                result = fn(tx, *args)
                tx.send_notices()
                return result

    def _open_pool(self) -> ConnectionPool:
        import psycopg
        from psycopg_pool import ConnectionPool

        from core.storage.postgres.connection import configure_connection
        from core.storage.postgres.schema import migrate

        with self._pool_lock:
            if self._pool is None:
                # One connection first: its error (refused login, no such database) is the one
                # to show, where a pool would only time out retrying. It migrates, too.
                with psycopg.connect(
                    self.url, autocommit=True, connect_timeout=max(1, int(self._connect_timeout_s))
                ) as conn:
                    migrate(conn)
                pool = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self._threads + 1,
                    kwargs={"autocommit": True},
                    configure=configure_connection,
                    open=False,
                    name="docbridge",
                )
                pool.open(wait=True, timeout=self._connect_timeout_s)
                self._pool = pool
            return self._pool

    async def wake_ups(self, on_kind: Callable[[str], None]) -> None:
        """Call ``on_kind(kind)`` when any process queues a job of that kind, until cancelled
        ("" : look for every kind)."""
        from core.storage.postgres.listener import listen_for_jobs

        await listen_for_jobs(self.url, on_kind)

    async def close(self) -> None:
        """Close the pool and the threads; callers closing at once share the one shutdown."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(asyncio.to_thread(self._close))
        await asyncio.shield(self._closing)

    def _close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None


# SQLSTATE classes and codes a person can act on; anything else is a defect of ours.
_UNREACHABLE_CLASSES = ("08", "57P")  # connection exceptions; server shut down
_MESSAGES: dict[str, tuple[str, str]] = {
    "53100": (
        "The disk of the PostgreSQL store {where} is full",
        "Free disk space on the database server, then try again; nothing was half-saved.",
    ),
    "53200": (
        "The PostgreSQL store {where} ran out of memory",
        "Look at the database server's memory, then try again; nothing was half-saved.",
    ),
    "53300": (
        "The PostgreSQL store {where} has no connection left",
        "Raise max_connections on the server or run fewer nodes; nothing was changed.",
    ),
    "25006": (
        "The PostgreSQL store {where} is read-only",
        "It is a standby (after a failover?): point [store] url at the primary; nothing was "
        "changed.",
    ),
    "28000": (
        "The PostgreSQL store {where} refused docbridge's login",
        "Check the user and password in [store] url (or DOCBRIDGE_STORE_URL).",
    ),
    "28P01": (
        "The PostgreSQL store {where} refused docbridge's password",
        "Check the password in [store] url (or DOCBRIDGE_STORE_URL).",
    ),
    "3D000": (
        "The PostgreSQL database {where} does not exist",
        "Create it (createdb), or correct the database name in [store] url.",
    ),
    "55P03": (
        "The PostgreSQL store {where} is busy",
        "Another node holds what this needs; try again in a moment. Nothing was changed.",
    ),
    "57014": (
        "The PostgreSQL store {where} cancelled a statement",
        "A statement timeout or an admin cancelled it; try again. Nothing was changed.",
    ),
}


def store_error(exc: psycopg.Error, where: str) -> StoreError | None:
    """The domain error for a PostgreSQL error a user can act on, or None for a defect."""
    import psycopg

    code = exc.sqlstate or _code_in_connect_error(str(exc))
    if code in _MESSAGES:
        title, hint = _MESSAGES[code]
        return StoreError(title.format(where=where), hint, path=Path(where), sqlite_error=code)
    if code.startswith(_UNREACHABLE_CLASSES) or (
        isinstance(exc, psycopg.OperationalError) and not code
    ):
        return _unreachable(where, str(exc).strip())
    return None


# A failed connect carries no SQLSTATE, only the server's words.
_CONNECT_TEXTS = (
    ("does not exist", "3D000"),  # database "x" does not exist (a role's is a login failure)
    ("password authentication failed", "28P01"),
    ("no pg_hba.conf entry", "28000"),
    ("too many clients", "53300"),
)


def _code_in_connect_error(text: str) -> str:
    if 'role "' in text and "does not exist" in text:
        return "28000"
    return next((code for words, code in _CONNECT_TEXTS if words in text), "")


def _unreachable(where: str, detail: str) -> StoreError:
    return StoreError(
        f"The PostgreSQL store {where} cannot be reached",
        "Check that the database server runs and that [store] url (or DOCBRIDGE_STORE_URL) "
        "names it; a change under way may or may not have been saved: look before you redo "
        f"it. ({detail.splitlines()[0] if detail else 'no detail'})",
        path=Path(where),
        sqlite_error="08000",
    )
