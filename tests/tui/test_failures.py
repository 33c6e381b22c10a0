"""Failures never take the app down: store errors and defects in workers, actions and timers.

The store errors are real sqlite3 exceptions raised inside the database thread, so they pass
through the one translation the core has (``Database.call``) as they would from a full disk.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

import tui.app
from core.models import Direction, RuleForm
from core.service import Service
from core.storage.db import Database
from tests.rules.samples import IDENTITY_MAP
from tests.tui.conftest import make_app, settle, until, wait_for_page
from tui.modals.error import ErrorModal

STORE_FAULTS = {
    "locked": (sqlite3.OperationalError("database is locked"), "busy"),
    "disk full": (sqlite3.OperationalError("database or disk is full"), "full"),
    "i/o": (sqlite3.OperationalError("disk I/O error"), "i/o error"),
}


class Faults:
    """Switchable faults in the database thread."""

    def __init__(self) -> None:
        self.error: BaseException | None = None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = Database._run

        def run(db: Database, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            def failing(conn: sqlite3.Connection, *a: Any, **k: Any) -> Any:
                if self.error is not None:
                    raise self.error  # inside the real call: translated as a real one is
                return fn(conn, *a, **k)

            return real(db, failing, *args, **kwargs)

        monkeypatch.setattr(Database, "_run", run)


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[Faults]:
    injected = Faults()
    injected.install(monkeypatch)
    yield injected


def polling_app(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tui.app.DocbridgeApp:
    """The app polling the engine status every 50 ms (the timer under test)."""
    monkeypatch.setattr(tui.app, "ENGINE_POLL_SECONDS", 0.05)
    return tui.app.DocbridgeApp(data_dir, actor="test@tui", cursor_blink=False, poll_engine=True)


def error_modal(app: Any) -> ErrorModal:
    assert isinstance(app.screen, ErrorModal), app.screen
    return app.screen


@pytest.mark.parametrize("kind", sorted(STORE_FAULTS))
async def test_a_store_error_during_save_is_a_message_and_nothing_is_saved(
    data_dir: Path, service: Service, faults: Faults, kind: str
) -> None:
    error, words = STORE_FAULTS[kind]
    mailbox = (await service.list_mailboxes())[0]
    app = make_app(data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        page = await wait_for_page(pilot)
        page.query_one("#notify_email", Input).value = "ops@example.com"
        await settle(pilot)
        faults.error = error
        await pilot.press("ctrl+s")
        await settle(pilot)
        modal = error_modal(app)
        assert words in f"{modal.error_title} {modal.hint}".lower()
        assert not modal.details  # an expected error: what to do, no traceback
        assert app.is_running and page.dirty
        faults.error = None
        await pilot.press("escape", "ctrl+s")
        await settle(pilot)
        assert app.screen is page and not page.dirty
    assert (await service.get_integration(mailbox.uuid)).form.notify_email == "ops@example.com"


@pytest.mark.parametrize("kind", [*sorted(STORE_FAULTS), "defect"])
async def test_an_error_in_a_rule_action_keeps_the_app_running(
    data_dir: Path, service: Service, faults: Faults, kind: str
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    template = (await service.list_templates(mailbox.account_uuid))[0]
    await service.create_rule(
        mailbox.uuid,
        RuleForm(
            "R", Direction.IN, template.uuid, naming_pattern="a.xml", conversion_map=IDENTITY_MAP
        ),
    )
    app = make_app(data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        page = await wait_for_page(pilot)
        await pilot.press("5")
        faults.error = STORE_FAULTS[kind][0] if kind in STORE_FAULTS else RuntimeError("bug")
        await pilot.press("ctrl+t")
        await settle(pilot)
        modal = error_modal(app)
        if kind == "defect":
            assert "RuntimeError" in modal.error_title and "bug" in modal.details
        assert app.is_running
        faults.error = None
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is page
        await pilot.press("ctrl+t")
        await settle(pilot)
    assert (await service.list_rules(mailbox.uuid))[0].enabled


async def test_a_defect_in_a_timer_is_shown_once_and_the_app_keeps_running(
    data_dir: Path, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = polling_app(data_dir, monkeypatch)
    async with app.run_test(size=(80, 24)) as pilot:
        page = await wait_for_page(pilot)
        calls = 0

        async def broken() -> Any:
            nonlocal calls
            calls += 1
            raise RuntimeError("status query broke")

        assert app.service is not None
        monkeypatch.setattr(app.service, "engine_status", broken)
        await until(pilot, lambda: calls >= 5)  # the timer keeps firing
        modals = [s for s in app.screen_stack if isinstance(s, ErrorModal)]
        assert len(modals) == 1 and "status query broke" in modals[0].error_title
        assert app.is_running
        monkeypatch.undo()
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is page


async def test_a_store_error_in_the_status_timer_is_shown_in_the_header(
    data_dir: Path, faults: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = polling_app(data_dir, monkeypatch)
    async with app.run_test(size=(80, 24)) as pilot:
        page = await wait_for_page(pilot)
        await until(pilot, lambda: "engine: stopped" in page.query_one("#page-header").text)
        faults.error = STORE_FAULTS["locked"][0]
        await until(pilot, lambda: "engine: ?" in page.query_one("#page-header").text)
        assert app.is_running and app.screen is page
        faults.error = None
        await until(pilot, lambda: "engine: stopped" in page.query_one("#page-header").text)


async def test_a_busy_sftp_port_keeps_the_page_and_says_where_to_change_it(
    data_dir: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (data_dir / "docbridge.toml").write_text(f"[sftp]\nport = {port}\n", encoding="utf-8")
        app = tui.app.DocbridgeApp(
            data_dir, actor="test@tui", cursor_blink=False, poll_engine=False, run_engine=True
        )
        async with app.run_test(size=(80, 24)) as pilot:
            page = await wait_for_page(pilot)

            def advice() -> str:
                return " ".join(n.message for n in app._notifications if "could not" in n.message)

            await until(pilot, lambda: bool(advice()))
            assert "docbridge.toml" in advice() and "[sftp] port" in advice()
            assert "docbridge serve" not in advice()  # it would meet the same busy port
            assert app.is_running and app.screen is page and app.engine is None
