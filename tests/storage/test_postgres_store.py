"""What only PostgreSQL has to prove: several nodes share it, so the database's clock decides
leases, simultaneous starts migrate once, and its errors say what an admin can do."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from core.errors import DocbridgeError, StoreError
from core.models import JobKind
from core.storage import jobs
from core.storage.connection import Tx
from core.storage.postgres.database import PgDatabase
from core.storage.postgres.schema import SCHEMA_VERSION
from tests.engine.test_default_rules import eventually
from tests.pg_server import PostgresServer
from tests.storage.conftest import add_mailbox


def _seed_one(tx: Tx) -> None:
    add_mailbox(tx, "mb-1")
    jobs.enqueue(tx, JobKind.ENVELOPE, "env-1", "mb-1")


async def test_leases_run_out_by_the_database_clock_not_the_nodes(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node whose clock is an hour ahead must not think a live node's claim ran out (nor an
    hour-late node keep a dead one's claim)."""
    db = PgDatabase(postgres_url)
    try:
        await db.write(_seed_one)
        (claimed,) = await db.write(jobs.claim, JobKind.ENVELOPE, "node-a", 60.0, 1)
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
        assert await db.write(jobs.release_expired) == 0
        monkeypatch.setattr(time, "time", lambda: real_time() - 3600)
        (expired,) = await db.write(jobs.claim, JobKind.ENVELOPE, "node-a", 0.0, 1) or [None]
        assert expired is None  # still running under node-a's lease: nothing to claim
    finally:
        await db.close()
    assert claimed.attempts == 1


def _schema_version(tx: Tx) -> int:
    return int(tx.execute("SELECT count(*) FROM docbridge_schema").fetchone()[0])


async def test_nodes_starting_together_migrate_once(postgres_url: str) -> None:
    nodes = [PgDatabase(postgres_url) for _ in range(6)]
    try:
        versions = await asyncio.gather(*(node.read(_schema_version) for node in nodes))
    finally:
        await asyncio.gather(*(node.close() for node in nodes))
    assert versions == [SCHEMA_VERSION] * 6  # one row per migration: nobody ran it twice


async def test_an_unreachable_server_is_a_store_error_that_says_so(
    postgres_server: PostgresServer,
) -> None:
    url = f"postgresql://nobody:s3cret@127.0.0.1:{postgres_server.port + 1}/docbridge"
    db = PgDatabase(url, connect_timeout_s=2.0)
    try:
        with pytest.raises(StoreError) as raised:
            await db.read(_schema_version)
    finally:
        await db.close()
    assert "cannot be reached" in raised.value.title
    assert "s3cret" not in f"{raised.value.title} {raised.value.hint}"  # the password never shows


async def test_a_missing_database_is_named(postgres_server: PostgresServer) -> None:
    db = PgDatabase(postgres_server.url("no_such_db"), connect_timeout_s=5.0)
    try:
        with pytest.raises(StoreError) as raised:
            await db.read(_schema_version)
    finally:
        await db.close()
    where = postgres_server.url("no_such_db")
    assert raised.value.title == f"The PostgreSQL database {where} does not exist"


def _enqueue_then_fail(tx: Tx) -> None:
    jobs.enqueue(tx, JobKind.FILE, "rolled-back", "mb-1")
    raise RuntimeError("the rest of the unit failed")


async def test_queued_work_is_announced_at_commit_and_never_after_a_rollback(
    postgres_url: str,
) -> None:
    """Other nodes wake at once when work is queued (LISTEN/NOTIFY), only for committed work."""
    db = PgDatabase(postgres_url)
    heard: list[str] = []
    listening = asyncio.create_task(db.wake_ups(heard.append))
    try:
        await db.write(add_mailbox, "mb-1")
        await eventually(lambda: _async_true(bool(heard)))  # listening now (it said "")
        with pytest.raises(RuntimeError):
            await db.write(_enqueue_then_fail)
        await db.write(jobs.enqueue, JobKind.MAIL, "committed", "mb-1")
        await eventually(lambda: _async_true("mail" in heard))
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
        await db.close()
    # Notifications arrive in commit order: had the rolled-back one been sent, it would be here.
    assert "file" not in heard


async def _async_true(value: bool) -> bool:
    return value


def _from_the_future(tx: Tx) -> None:
    tx.execute("INSERT INTO docbridge_schema (version) VALUES (?)", (SCHEMA_VERSION + 1,))


async def test_a_store_migrated_by_a_newer_docbridge_is_refused(postgres_url: str) -> None:
    """A node left on an older version must not write to a schema it does not know."""
    newer = PgDatabase(postgres_url)
    try:
        await newer.write(_from_the_future)
    finally:
        await newer.close()
    older = PgDatabase(postgres_url)
    try:
        with pytest.raises(DocbridgeError, match="newer than this docbridge"):
            await older.read(_schema_version)
    finally:
        await older.close()
