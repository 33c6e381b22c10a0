"""A Save never undoes a change made elsewhere meanwhile (the CLI, another window): it is
refused with what changed, and the other change stays (found walking the TUI as a new user:
a notify address set with the CLI was silently wiped by the next Save on an open page)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import Input, TextArea

from core.service import Service
from tests.conftest import run_cli
from tests.tui.conftest import make_app, settle, until, wait_for_page
from tui.modals.error import ErrorModal


async def test_a_save_on_a_page_loaded_before_a_cli_change_is_refused(
    data_dir: Path, service: Service
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        changed = await asyncio.to_thread(
            run_cli,
            data_dir,
            "integration",
            "set",
            mailbox.uuid,
            "--notify-email",
            "cli@example.com",
        )
        assert changed.returncode == 0, changed.stderr
        screen.query_one("#reject_reason", TextArea).load_text("Closed for stocktaking.")
        await settle(pilot)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, ErrorModal))
        modal = app.screen
        assert isinstance(modal, ErrorModal)
        assert "changed elsewhere" in modal.error_title
        assert "notify_email" in modal.hint
    stored = await service.get_integration(mailbox.uuid)
    assert stored.form.notify_email == "cli@example.com"  # not undone
    assert stored.form.reject_reason == ""  # and nothing of the page was saved


async def test_saving_twice_from_the_same_page_is_no_conflict(
    data_dir: Path, service: Service
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        for address in ("first@example.com", "second@example.com"):
            screen.query_one("#notify_email", Input).value = address
            await settle(pilot)
            await pilot.press("ctrl+s")
            await settle(pilot)
            assert not isinstance(app.screen, ErrorModal)
            stored = await service.get_integration(mailbox.uuid)
            assert stored.form.notify_email == address
