"""SQLite failures reach a user as domain errors that say what to do; nothing is half-written.

Each failure is the real thing: a lock held by another connection, a database at its page limit,
a file over the process's size limit, a read-only, a damaged and a missing file.
"""

from __future__ import annotations

import os
import resource
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import (
    DocbridgeError,
    StoreBusy,
    StoreFull,
    StoreProblem,
    StoreUnavailable,
)
from core.models import Direction, RuleForm
from core.service import Service
from core.storage.db import Database, write_transaction
from tests.rules.samples import IDENTITY_MAP

BLOB = 1024 * 1024


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "docbridge.sqlite3")
    await database.call(
        lambda conn: conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB)")
    )
    yield database
    await database.close()


def add_two_notes(conn: sqlite3.Connection, size: int = BLOB) -> None:
    """One small note, then a large one: a failure on the second must take the first back."""
    with write_transaction(conn):
        conn.execute("INSERT INTO notes (body) VALUES ('small')")
        conn.execute("INSERT INTO notes (body) VALUES (randomblob(?))", (size,))


def count_notes(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM notes").fetchone()[0])


@pytest.fixture
def other_process_lock(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A second connection (as another docbridge process would) holding the write lock."""
    other = sqlite3.connect(tmp_path / "docbridge.sqlite3", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    yield other
    if other.in_transaction:
        other.execute("ROLLBACK")
    other.close()


async def test_a_lock_held_by_another_process_is_store_busy(
    store: Database, other_process_lock: sqlite3.Connection
) -> None:
    def write_impatiently(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA busy_timeout = 20")
        add_two_notes(conn, 10)

    with pytest.raises(StoreBusy) as raised:
        await store.call(write_impatiently)

    error = raised.value
    assert isinstance(error, DocbridgeError)
    assert "Another docbridge process holds the store; try again in a moment" in str(error)
    assert isinstance(error.__cause__, sqlite3.OperationalError)
    assert error.__cause__.sqlite_errorcode == sqlite3.SQLITE_BUSY

    other_process_lock.execute("ROLLBACK")
    assert await store.call(count_notes) == 0
    await store.call(add_two_notes, 10)  # once the lock is gone the same write goes through
    assert await store.call(count_notes) == 2


async def test_a_full_database_is_store_full_and_nothing_was_half_saved(store: Database) -> None:
    def fill_up(conn: sqlite3.Connection) -> None:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        add_two_notes(conn)

    with pytest.raises(StoreFull) as raised:
        await store.call(fill_up)

    error = raised.value
    message = str(error)
    assert "Free disk space on" in message
    assert str(store.path) in message
    assert "nothing was half-saved" in message
    assert isinstance(error.__cause__, sqlite3.OperationalError)
    assert error.__cause__.sqlite_errorcode == sqlite3.SQLITE_FULL

    assert await store.call(count_notes) == 0  # the small note went back with the large one
    await store.call(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823"))
    await store.call(add_two_notes)  # the connection is usable again, not stuck in a transaction
    assert await store.call(count_notes) == 2


async def test_a_write_error_on_disk_is_store_unavailable(store: Database) -> None:
    def write_past_the_file_size_limit(conn: sqlite3.Connection) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, hard))
        try:
            add_two_notes(conn)  # the WAL write past 256 KB fails with EFBIG: SQLITE_IOERR_WRITE
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

    with pytest.raises(StoreUnavailable) as raised:
        await store.call(write_past_the_file_size_limit)

    error = raised.value
    assert error.problem is StoreProblem.IO_ERROR
    assert "disk I/O error" in str(error)
    assert "Check the disk holding it" in str(error)
    assert isinstance(error.__cause__, sqlite3.Error)
    assert error.__cause__.sqlite_errorcode & 0xFF == sqlite3.SQLITE_IOERR
    assert await store.call(count_notes) == 0


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable for this process (immutable when running as root)."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip("running as root on a file system without chattr +i: cannot make it read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


async def test_a_read_only_store_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "docbridge.sqlite3"
    setup = Database(path)
    await setup.call(lambda conn: conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body)"))
    await setup.close()  # the last connection checkpoints the WAL into the file
    with read_only(path):
        store = Database(path)
        try:
            with pytest.raises(StoreUnavailable) as raised:
                await store.call(add_two_notes, 10)
        finally:
            await store.close()
    error = raised.value
    assert error.problem is StoreProblem.READ_ONLY
    assert f"The store {path} is read-only" in str(error)
    assert "write permission" in str(error)
    check = sqlite3.connect(path)
    assert check.execute("SELECT count(*) FROM notes").fetchone()[0] == 0
    check.close()


async def test_a_damaged_store_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "docbridge.sqlite3"
    setup = Database(path)
    await setup.call(lambda conn: conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body)"))
    await setup.call(add_two_notes, 10)
    root_page, page_size = await setup.call(
        lambda conn: (
            conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'notes'").fetchone()[0],
            conn.execute("PRAGMA page_size").fetchone()[0],
        )
    )
    await setup.close()  # the last connection checkpoints the WAL into the file
    with path.open("r+b") as file:  # a disk that returned garbage for the table's page
        file.seek((root_page - 1) * page_size)
        file.write(b"\xa5" * page_size)

    store = Database(path)
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await store.call(count_notes)
    finally:
        await store.close()
    error = raised.value
    assert error.problem is StoreProblem.CORRUPT
    assert f"The store {path} is damaged" in str(error)
    assert "restore the file from a backup" in str(error)


async def test_a_file_that_is_no_database_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "docbridge.sqlite3"
    path.write_bytes(b"this is a spreadsheet, not a database\n" * 200)
    store = Database(path)
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await store.call(count_notes)
    finally:
        await store.close()
    assert raised.value.problem is StoreProblem.CORRUPT
    assert path.read_bytes() == b"this is a spreadsheet, not a database\n" * 200


async def test_a_missing_folder_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "gone" / "docbridge.sqlite3"
    store = Database(path)
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await store.call(count_notes)
    finally:
        await store.close()
    assert raised.value.problem is StoreProblem.CANNOT_OPEN
    assert f"The store {path} cannot be opened" in str(raised.value)
    assert "Check that its folder exists" in str(raised.value)
    assert not path.parent.exists()


async def test_a_defect_in_our_sql_stays_an_sqlite_error(store: Database) -> None:
    """Only what an admin can act on becomes a domain error; our own bugs keep their traceback."""
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await store.call(lambda conn: conn.execute("SELECT * FROM no_such_table"))
    with pytest.raises(sqlite3.IntegrityError):
        await store.call(
            lambda conn: conn.execute("INSERT INTO notes (id, body) VALUES (1, 'a'), (1, 'b')")
        )
    assert await store.call(count_notes) == 0


async def test_the_service_reports_a_busy_store_and_creates_no_rule(
    service: Service, data_dir: Path
) -> None:
    state = await service.page_state()
    mailbox = state.mailbox.uuid
    form = RuleForm(
        name="Orders in",
        direction=Direction.IN,
        template_uuid=state.templates[0].uuid,
        naming_pattern="{envelopeUuid}.xml",
        conversion_map=IDENTITY_MAP,
    )
    before = await service.list_rules(mailbox)
    await service.db.call(lambda conn: conn.execute("PRAGMA busy_timeout = 20"))
    other = sqlite3.connect(data_dir / "docbridge.sqlite3", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreBusy, match="try again in a moment"):
            await service.create_rule(mailbox, form)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await service.list_rules(mailbox) == before
    created = await service.create_rule(mailbox, replace(form, name="Orders in, again"))
    assert [r.uuid for r in await service.list_rules(mailbox)] == [
        *(r.uuid for r in before),
        created.uuid,
    ]
