"""Database.write and Database.read: one transaction per call, all or nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.storage.db import Database


def _make_table(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS notes (text TEXT NOT NULL)")


def _add(conn: sqlite3.Connection, *texts: str) -> int:
    for text in texts:
        conn.execute("INSERT INTO notes (text) VALUES (?)", (text,))
    return len(texts)


def _add_then_fail(conn: sqlite3.Connection, text: str) -> None:
    _add(conn, text)
    raise ValueError("the second half of the work failed")


def _texts(conn: sqlite3.Connection) -> list[str]:
    return [str(row[0]) for row in conn.execute("SELECT text FROM notes ORDER BY rowid")]


async def test_write_commits_everything_or_nothing(tmp_path: Path) -> None:
    db = Database(tmp_path / "store.sqlite3")
    try:
        await db.write(_make_table)
        assert await db.write(_add, "one", "two") == 2
        with pytest.raises(ValueError, match="second half"):
            await db.write(_add_then_fail, "three")
        assert await db.read(_texts) == ["one", "two"]
    finally:
        await db.close()


async def test_write_is_seen_by_another_connection_at_once(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    db = Database(path)
    try:
        await db.write(_make_table)
        await db.write(_add, "durable")
        other = sqlite3.connect(path)
        try:
            assert _texts(other) == ["durable"]
        finally:
            other.close()
    finally:
        await db.close()
