"""The contract suite's fixtures: every test here runs once on SQLite and once on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.models import Account, Mailbox
from core.storage import accounts, integrations
from core.storage.connection import Tx
from core.storage.store import Store, open_store


@dataclass(frozen=True)
class StoreTarget:
    """Where a store lives, so that a second handle (or another process) can open it."""

    backend: str
    database_path: Path
    url: str

    def open(self) -> Store:
        return open_store(self.database_path, self.url)

    def argv(self) -> list[str]:
        """How a child process is told which store to open (tests/storage/claimer.py)."""
        return [str(self.database_path), self.url]


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> StoreTarget:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    return StoreTarget(request.param, tmp_path / "docbridge.sqlite3", url)


@pytest.fixture
async def store(store_target: StoreTarget) -> AsyncIterator[Store]:
    opened = store_target.open()
    try:
        yield opened
    finally:
        await opened.close()


def add_mailbox(tx: Tx, mailbox_uuid: str, *, enabled: bool = True) -> None:
    """An account with one mailbox whose integration is on (claims take only those)."""
    accounts.insert_account(tx, Account(uuid="acc-" + mailbox_uuid, name="Account"))
    mailbox = Mailbox(uuid=mailbox_uuid, account_uuid="acc-" + mailbox_uuid, name=mailbox_uuid)
    accounts.insert_mailbox(tx, mailbox, 0)
    integrations.set_enabled(tx, mailbox_uuid, enabled)
