"""Two connections of one process (the TUI's service and its engine) and a CLI command in
another process: every commit stays visible to every process (found walking the TUI: the
second connection's open-and-close of the store file cancelled the first one's locks, the CLI
then deleted the WAL under it, and the TUI's later commits were seen by nobody)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from core.storage.db import connect

READ_COUNT = (
    "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
    "print(c.execute('SELECT COUNT(*) FROM audit_log WHERE actor = ?', ('lock-test',))"
    ".fetchone()[0]); c.close()"
)


def write_one(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, details) VALUES ('now', 'lock-test', 'x', '{}')"
    )


def count_in_another_process(database: Path) -> int:
    result = subprocess.run(
        [sys.executable, "-c", READ_COUNT, str(database)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return int(result.stdout)


def scenario(database: Path) -> tuple[int, bool]:
    first = connect(database)
    write_one(first)
    second = connect(database)  # the engine's connection, opened after the service's
    count_in_another_process(database)  # a CLI command comes and goes
    write_one(first)
    seen = count_in_another_process(database)
    wal_alive = os.path.exists(f"{database}-wal")
    first.close()
    second.close()
    return seen, wal_alive


async def test_a_second_connection_never_hides_the_first_one_s_commits(data_dir: Path) -> None:
    seen, wal_alive = await asyncio.to_thread(scenario, data_dir / "docbridge.sqlite3")
    assert wal_alive  # the live connections' WAL was not deleted under them
    assert seen == 2  # both commits of the first connection, seen by another process
