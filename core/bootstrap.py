"""Creating a data directory, and loading the demo account into it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from core import demo
from core.config import Config, load_config, write_default_config
from core.envelope_checks import RECIPIENT_ROLE
from core.errors import InvalidInput
from core.models import Account, Mailbox, Template, TemplateVersion
from core.service import Service
from core.storage import accounts, logs
from core.storage.db import Tx, connect


@dataclass(frozen=True)
class InitResult:
    data_dir: Path
    created: bool
    demo_loaded: bool
    envelopes_received: int


async def init_data_dir(data_dir: Path, with_demo: bool, actor: str) -> InitResult:
    """Create what is missing (config, database); with ``with_demo``, load the demo account
    once. Running it again changes nothing, so ``make run`` can call it every time."""
    created, config = await asyncio.to_thread(_create_data_dir, data_dir)
    if not with_demo:
        return InitResult(data_dir, created, False, 0)
    service = Service(config, actor)
    try:
        account = await asyncio.to_thread(demo.load_demo_account)
        loaded = await service.db.write(_load_demo_account, actor, account)
        received = 0
        if loaded:
            for recipient, data in await asyncio.to_thread(_demo_envelopes, loaded):
                await service.receive_envelope(recipient, data)
                received += 1
    finally:
        await service.close()
    return InitResult(data_dir, created, bool(loaded), received)


def _create_data_dir(data_dir: Path) -> tuple[bool, Config]:
    """Config and schema, on a worker thread (file and SQLite work): whether it was new."""
    created = not (data_dir / "docbridge.toml").exists()
    write_default_config(data_dir)
    config = load_config(data_dir)
    if not config.store_url:  # PostgreSQL: the service's first unit migrates it
        connect(config.database_path).close()  # creates and migrates the schema
    return created, config


def _demo_envelopes(mailbox_uuids: list[str]) -> list[tuple[str, bytes]]:
    """Each demo envelope file's content and the demo mailbox it is addressed to."""
    envelopes = []
    for path in demo.demo_envelope_files():
        data = path.read_bytes()
        envelopes.append((_recipient_of(path, data, mailbox_uuids), data))
    return envelopes


def _load_demo_account(tx: Tx, actor: str, data: demo.DemoAccount) -> list[str]:
    """Insert the demo account unless an account exists; returns the new mailbox uuids."""
    if accounts.list_accounts(tx):
        return []
    account = Account(uuid=data.uuid, name=data.name)
    accounts.insert_account(tx, account)
    for position, mailbox in enumerate(data.mailboxes):
        accounts.insert_mailbox(tx, Mailbox(mailbox.uuid, account.uuid, mailbox.name), position)
    for template in data.templates:
        versions = [
            TemplateVersion(template.uuid, v.version, tuple(dict(d) for d in v.documents))
            for v in template.versions
        ]
        accounts.insert_template(
            tx,
            Template(
                template.uuid, account.uuid, template.name, tuple(v.version for v in versions)
            ),
            versions,
        )
    logs.append_audit(tx, actor, "demo.loaded", details={"account": account.uuid})
    return [m.uuid for m in data.mailboxes]


def _recipient_of(path: Path, data: bytes, mailbox_uuids: list[str]) -> str:
    """The demo mailbox an envelope file is addressed to: its ``recipient`` role, which
    ``receive_envelope`` requires to be the mailbox that receives it."""
    from core.envelope_xml import parse_envelope_xml

    recipient = parse_envelope_xml(data).role_mailbox(RECIPIENT_ROLE)
    if recipient not in mailbox_uuids:
        raise InvalidInput(
            f"Demo envelope {path.name} is addressed to no demo mailbox (recipient {recipient}).",
            "Reinstall docbridge; its demo data is damaged.",
        )
    return recipient
