"""F6 Activity: parked items reprocessed and bans lifted from the keyboard, against a real
engine and store."""

from __future__ import annotations

import time
from pathlib import Path

from textual.widgets import DataTable

from core.config import load_config
from core.engine.engine import Engine
from core.service import Service
from core.storage import bans
from core.storage.db import write_transaction
from tests.engine.conftest import FAST, as2_form, enable
from tests.engine.test_default_rules import eventually
from tests.tui.conftest import make_app, settle, wait_for_page
from tui.screens.activity import ActivityScreen


async def park_logistics(service: Service, data_dir: Path) -> str:
    """Logistics over AS2 (not deliverable in this version): its envelopes end parked."""
    logistics = await enable(service, "Logistics", await as2_form(service))
    engine = Engine(load_config(data_dir), FAST)
    await engine.start()
    try:

        async def parked() -> bool:
            return len(await service.list_jobs(("parked",))) == 3

        await eventually(parked)
    finally:
        await engine.stop()
    return logistics


async def test_activity_lists_parked_items_and_reprocesses_the_selected_one(
    data_dir: Path, service: Service
) -> None:
    await park_logistics(service, data_dir)
    first = (await service.list_jobs(("parked",)))[0]
    async with make_app(data_dir).run_test(size=(120, 40)) as pilot:
        await wait_for_page(pilot)
        await pilot.press("f6")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, ActivityScreen)
        parked = screen.query_one("#parked", DataTable)
        assert parked.row_count == 3
        assert "AS2" in str(parked.get_row_at(0)[4])
        assert "Logistics" in str(parked.get_row_at(0)[2])
        recent = screen.query_one("#recent", DataTable)
        assert recent.row_count >= 3
        await pilot.press("r")
        await settle(pilot)
        assert first.id not in {j.id for j in await service.list_jobs(("parked",))}
        assert screen.query_one("#parked", DataTable).row_count == 2
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(pilot.app.screen, ActivityScreen)


async def test_activity_lifts_a_ban_after_confirmation(data_dir: Path, service: Service) -> None:
    def ban(conn) -> None:  # type: ignore[no-untyped-def]
        with write_transaction(conn):
            bans.upsert_ban(conn, "192.0.2.7", 5, time.time() + 600)

    await service.db.call(ban)  # as the engine's SFTP listener records one
    async with make_app(data_dir).run_test(size=(120, 40)) as pilot:
        await wait_for_page(pilot)
        await pilot.press("f6")
        await settle(pilot)
        screen = pilot.app.screen
        assert screen.query_one("#bans", DataTable).row_count == 1
        await pilot.press("u")
        await settle(pilot)
        await pilot.press("n")  # no: nothing changes
        await settle(pilot)
        assert [b.address for b in await service.list_bans()] == ["192.0.2.7"]
        await pilot.press("u")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert await service.list_bans() == []
        assert screen.query_one("#bans", DataTable).row_count == 0
    assert any(e.action == "sftp.unban" for e in await service.audit_log())


def use_free_ports(data_dir: Path) -> None:
    (data_dir / "docbridge.toml").write_text("[sftp]\nport = 0\n", encoding="utf-8")


async def test_the_tui_runs_the_engine_in_process_and_shows_it(
    data_dir: Path, service: Service
) -> None:
    from tui.app import DocbridgeApp

    use_free_ports(data_dir)
    app = DocbridgeApp(data_dir, actor="test@tui", cursor_blink=False, run_engine=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        status = await service.engine_status()
        assert status.running and status.owner == app.engine.owner  # type: ignore[union-attr]
        await app.refresh_engine_status()
        await settle(pilot)
        assert f"engine: running (pid {status.pid})" in str(
            screen.query_one("#page-header").render()
        )
        assert screen.state is not None
        assert screen.state.sftp.host_key_fingerprint == status.listeners["sftp_host_key"]
    assert not (await service.engine_status()).running  # quitting stops it


async def test_a_second_tui_works_as_a_client_of_the_running_engine(
    data_dir: Path, service: Service
) -> None:
    from tui.app import DocbridgeApp

    use_free_ports(data_dir)
    engine = Engine(load_config(data_dir), FAST)
    await engine.start()
    try:
        app = DocbridgeApp(data_dir, actor="test@tui", cursor_blink=False, run_engine=True)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for_page(pilot)
            assert app.engine is None
            assert (await service.engine_status()).owner == engine.owner
    finally:
        await engine.stop()
