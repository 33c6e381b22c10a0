"""The reference the intake bench compares against: raw sqlite3, one commit per envelope.

This is deliberately not docbridge (no storage door, no checks): the same durability
(WAL, synchronous=FULL) and a row per envelope holding its XML, committed one at a time, as an
application without group commit would. tests/test_architecture.py allows SQL here alone.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path


def commits_per_second(path: Path, documents: list[bytes]) -> float:
    """Insert each document in its own durable transaction; envelopes per second."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS envelopes (uuid TEXT PRIMARY KEY, mailbox TEXT, xml BLOB)"
        )
        began = time.perf_counter()
        for document in documents:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO envelopes VALUES (?, ?, ?)", (str(uuid.uuid4()), "bench", document)
            )
            conn.execute("COMMIT")
        return len(documents) / (time.perf_counter() - began)
    finally:
        conn.close()
