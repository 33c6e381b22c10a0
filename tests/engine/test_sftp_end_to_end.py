"""The engine's own SFTP listener against the store: the customer's view of an integration."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from core.config import load_config
from core.engine.engine import Engine
from core.service import Service
from tests.engine.conftest import FAST, enable_sftp
from tests.engine.test_customer_files import NEW_UUID, outgoing_xml
from tests.engine.test_default_rules import eventually


def connect(engine: Engine, login: str, password: str) -> Any:
    host, port = engine.listeners["sftp"].rsplit(":", 1)
    return asyncssh.connect(
        host,
        int(port),
        username=login,
        password=password,
        known_hosts=None,
        client_keys=None,
        preferred_auth="password",
    )


async def test_customer_sees_inbox_fill_and_uploads_become_envelopes(
    service: Service, sftp_engine: Engine
) -> None:
    mailbox, password = await enable_sftp(service, "Purchasing")
    sftp_engine.wake()
    waiting = [e.uuid for e in await service.list_envelopes(mailbox)]

    async with connect(sftp_engine, mailbox, password) as conn, conn.start_sftp_client() as sftp:
        assert sorted(await sftp.listdir(".")) == [
            ".",
            "..",
            "cinbox",
            "coutbox",
            "error",
            "inbox",
            "outbox",
        ]

        async def inbox_full() -> bool:
            names = [n for n in await sftp.listdir("inbox") if n.endswith(".xml")]
            return sorted(names) == sorted(f"{u}.xml" for u in waiting)

        await eventually(inbox_full)
        async with sftp.open("outbox/new-order.xml", "wb") as handle:
            await handle.write(outgoing_xml(mailbox))

        async def sent() -> bool:
            return any(e.uuid == NEW_UUID for e in await service.list_envelopes(mailbox))

        await eventually(sent)
        assert "new-order.xml" not in await sftp.listdir("outbox")


async def test_toggle_off_and_password_reset_end_sessions_and_refuse_logins(
    service: Service, sftp_engine: Engine
) -> None:
    mailbox, password = await enable_sftp(service, "Logistics")

    conn = await connect(sftp_engine, mailbox, password)
    await service.set_enabled(mailbox, False)
    await asyncio.wait_for(conn.wait_closed(), 3)  # the kill switch ends open sessions
    with pytest.raises(asyncssh.PermissionDenied):
        await connect(sftp_engine, mailbox, password)

    await service.set_enabled(mailbox, True)
    conn = await connect(sftp_engine, mailbox, password)
    new_password = await service.reset_password(mailbox)
    await asyncio.wait_for(conn.wait_closed(), 3)  # and so does a password reset
    with pytest.raises(asyncssh.PermissionDenied):
        await connect(sftp_engine, mailbox, password)
    async with connect(sftp_engine, mailbox, new_password):
        pass


async def test_ban_is_visible_through_the_service_and_can_be_lifted(
    service: Service, sftp_engine: Engine
) -> None:
    mailbox, password = await enable_sftp(service, "Purchasing")
    for _ in range(5):
        with pytest.raises(asyncssh.PermissionDenied):
            await connect(sftp_engine, mailbox, "wrong")

    async def banned() -> bool:
        return [b.address for b in await service.list_bans()] == ["127.0.0.1"]

    await eventually(banned)
    with pytest.raises((asyncssh.PermissionDenied, asyncssh.DisconnectError)):
        await connect(sftp_engine, mailbox, password)  # even the right password
    assert await service.unban("127.0.0.1")
    assert sftp_engine.sftp is not None

    async def lifted() -> bool:  # the engine picks the unban up within a heartbeat
        return sftp_engine.sftp is not None and not sftp_engine.sftp.throttle.is_banned("127.0.0.1")

    await eventually(lifted)
    async with connect(sftp_engine, mailbox, password):
        pass


async def test_page_shows_the_host_key_fingerprint_customers_pin(
    service: Service, sftp_engine: Engine
) -> None:
    state = await service.page_state()
    assert state.sftp.host_key_fingerprint == sftp_engine.listeners["sftp_host_key"]
    assert state.sftp.host_key_fingerprint.startswith("SHA256:")


async def test_an_engine_that_cannot_listen_gives_its_lease_back(
    service: Service, sftp_engine: Engine, data_dir: Path
) -> None:
    """A second engine on a taken port fails to start, and leaves the running one alone."""
    await sftp_engine.stop()
    host, port = "127.0.0.1", 0
    import socket

    with socket.socket() as taken:
        taken.bind((host, port))
        taken.listen()
        config = await asyncio.to_thread(load_config, data_dir)
        config = replace(config, sftp=replace(config.sftp, port=taken.getsockname()[1]))
        blocked = Engine(config, replace(FAST, run_sftp=True))
        with pytest.raises(OSError):
            await blocked.start()
    assert not (await service.engine_status()).running
    replacement = Engine(await asyncio.to_thread(load_config, data_dir), FAST)
    await replacement.start()  # the lease is free again
    await replacement.stop()


async def test_a_login_in_another_spelling_is_refused_and_makes_no_folder(
    service: Service, sftp_engine: Engine, data_dir: Path
) -> None:
    """One canonical login (the uuid in lower case): other spellings once logged in to an
    empty root of their own, where uploads were acknowledged and never processed."""
    mailbox, password = await enable_sftp(service, "Purchasing")
    mailboxes = data_dir / "mailboxes"

    def roots() -> list[str]:
        return sorted(p.name for p in mailboxes.iterdir()) if mailboxes.exists() else []

    before = roots()
    for login in (mailbox.upper(), f" {mailbox}", f"{mailbox} ", mailbox[:8].upper() + mailbox[8:]):
        with pytest.raises(asyncssh.PermissionDenied):
            async with connect(sftp_engine, login, password):
                pass
        assert sftp_engine.sftp is not None
        sftp_engine.sftp.throttle.unban("127.0.0.1")
    assert set(roots()) - set(before) <= {mailbox}  # the engine's own inbox writes only
    async with connect(sftp_engine, mailbox, password) as conn, conn.start_sftp_client() as sftp:
        assert "inbox" in await sftp.listdir(".")
