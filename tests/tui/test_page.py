"""The Integrations page from the keyboard, against a real store (SPEC §3)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, RadioSet, Select, Static, Switch, TextArea

from core.models import DefaultRule, TransferProtocol
from core.service import Service
from tests.tui.conftest import make_app, settle, until, wait_for_page
from tui.modals.choice import SaveDiscardCancelModal
from tui.modals.confirm import ConfirmModal
from tui.modals.password import PasswordModal
from tui.widgets.fields import FieldError
from tui.widgets.header import FormHeader


def text_of(screen, selector: str) -> str:  # type: ignore[no-untyped-def]
    widget = screen.query_one(selector)
    if isinstance(widget, FormHeader):
        return widget.text
    return str(screen.query_one(selector, Static).render())


async def test_page_shows_every_block_prefilled(data_dir: Path, service: Service) -> None:
    first = (await service.list_mailboxes())[0]
    async with make_app(data_dir).run_test(size=(80, 24)) as pilot:
        screen = await wait_for_page(pilot)
        header = text_of(screen, "#page-header")
        assert first.name in header and "integration: OFF" in header
        assert "engine: stopped" in header
        for block in ("toggle", "manage", "connection", "default", "rules", "save"):
            assert screen.query_one(f"#block-{block}").display
        assert screen.query_one("#mailbox", Select).value == first.uuid
        assert first.uuid in text_of(screen, "#mailbox-uuid")
        assert screen.query_one("#protocol", Select).value == TransferProtocol.SFTP.value
        assert screen.query_one("#notify_email", Input).value == ""
        assert screen.query_one("#default-rule", RadioSet).pressed_index == 0
        assert screen.query_one("#reject_reason", TextArea).disabled
        assert "generated on first Save" in str(screen.query_one("#sftp-password").value_text)
        assert "No conversion rules yet" in text_of(screen, "#rules-empty")
        assert not screen.dirty


async def test_toggle_on_is_immediate_and_off_asks(data_dir: Path, service: Service) -> None:
    mailbox = (await service.list_mailboxes())[0]
    async with make_app(data_dir).run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        await pilot.press("f2")
        await settle(pilot)
        assert (await service.get_integration(mailbox.uuid)).enabled
        assert "integration: ON" in text_of(screen, "#page-header")

        await pilot.press("f2")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ConfirmModal)
        await pilot.press("n")
        await settle(pilot)
        assert (await service.get_integration(mailbox.uuid)).enabled
        assert screen.query_one("#enabled", Switch).value

        await pilot.press("f2")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert not (await service.get_integration(mailbox.uuid)).enabled
        assert not screen.query_one("#enabled", Switch).value
    actions = [entry.action for entry in await service.audit_log(mailbox.uuid)]
    assert actions.count("integration.enabled") == 1
    assert actions.count("integration.disabled") == 1


async def test_save_validates_untouched_fields(data_dir: Path, service: Service) -> None:
    mailbox = (await service.list_mailboxes())[0]
    async with make_app(data_dir).run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        await pilot.press("4", "down", "enter")  # default rule 2 needs the notify address
        await settle(pilot)
        assert screen.dirty
        assert "unsaved" in text_of(screen, "#page-header")
        await pilot.press("ctrl+s")
        await settle(pilot)
        error = screen.query_one("#err-notify_email", FieldError)
        assert "email" in error.message.lower()
        assert screen.query_one("#notify_email", Input).has_class("-invalid")
        assert "1 field(s) need attention: Notify by email" in text_of(screen, "#form-summary")
        assert pilot.app.focused is screen.query_one("#notify_email", Input)
        assert not (await service.get_integration(mailbox.uuid)).saved

        await pilot.press(*"ops@example.com")
        await settle(pilot)
        assert error.message == ""
        await pilot.press("ctrl+s")
        await settle(pilot)
    stored = await service.get_integration(mailbox.uuid)
    assert stored.saved and stored.password_set
    assert stored.form.default_rule is DefaultRule.NOTIFY
    assert stored.form.notify_email == "ops@example.com"


async def test_reject_reason_only_for_rule_three(data_dir: Path, service: Service) -> None:
    mailbox = (await service.list_mailboxes())[0]
    async with make_app(data_dir).run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        reason = screen.query_one("#reject_reason", TextArea)
        await pilot.press("4", "down", "down", "enter")
        await settle(pilot)
        assert not reason.disabled
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "Reject reason" in screen.query_one("#err-reject_reason", FieldError).message
        assert pilot.app.focused is reason
        await pilot.press(*"Not accepted here")
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.press("4", "up", "up", "enter")
        await settle(pilot)
        assert reason.disabled
    stored = await service.get_integration(mailbox.uuid)
    assert stored.form.default_rule is DefaultRule.REJECT
    assert stored.form.reject_reason == "Not accepted here"


async def test_password_generated_revealed_copied_then_masked(
    data_dir: Path, service: Service
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        password = screen.revealed_password
        assert password is not None and len(password) >= 22
        assert password in str(screen.query_one("#sftp-password").value_text)
        assert await service.check_password(mailbox.uuid, password)
        await pilot.press("w")
        await settle(pilot)
        assert app.clipboard == password
        await pilot.press("m")
        await settle(pilot)
        assert screen.revealed_password is None
        shown = str(screen.query_one("#sftp-password").value_text)
        assert password not in shown and "•" in shown
        app._clipboard = ""
        await pilot.press("w")  # masked: nothing to copy, a hint instead
        await settle(pilot)
        assert app.clipboard == ""


async def test_copy_host_port_login(data_dir: Path, service: Service) -> None:
    state = await service.page_state()
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_page(pilot)
        await pilot.press("3")  # focus the connection details
        for key, expected in (
            ("h", state.sftp.host),
            ("p", str(state.sftp.port)),
            ("l", state.sftp.login),
        ):
            await pilot.press(key)
            await settle(pilot)
            assert app.clipboard == expected
        await pilot.press("down", "enter")  # enter on a row copies that row
        await settle(pilot)
        assert app.clipboard == str(state.sftp.port)
        notes = [n.message for n in app._notifications]
        assert any("Port copied" in m for m in notes)


async def test_reset_password_asks_and_replaces_it(data_dir: Path, service: Service) -> None:
    mailbox = (await service.list_mailboxes())[0]
    async with make_app(data_dir).run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        first = screen.revealed_password
        assert first is not None
        await pilot.press("3", "ctrl+r")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ConfirmModal)
        await pilot.press("escape")
        await settle(pilot)
        assert await service.check_password(mailbox.uuid, first)
        await pilot.press("ctrl+r")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        second = screen.revealed_password
        assert second is not None and second != first
    assert await service.check_password(mailbox.uuid, second)
    assert not await service.check_password(mailbox.uuid, first)
    audit = await service.audit_log(mailbox.uuid)
    assert "password.reset" in [e.action for e in audit]
    assert not any(first in str(e.details) or second in str(e.details) for e in audit)


async def test_switching_mailbox_with_unsaved_changes_asks(
    data_dir: Path, service: Service
) -> None:
    first, second = (await service.list_mailboxes())[:2]
    async with make_app(data_dir).run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        screen.query_one("#notify_email", Input).value = "a@example.com"
        await settle(pilot)
        assert screen.dirty

        screen.request_mailbox(second.uuid)
        await settle(pilot)
        assert isinstance(pilot.app.screen, SaveDiscardCancelModal)
        await pilot.press("escape")
        await settle(pilot)
        assert screen.state is not None and screen.state.mailbox.uuid == first.uuid
        assert screen.query_one("#mailbox", Select).value == first.uuid

        await pilot.press("2", "enter", "down", "enter")  # open the selector, pick the next one
        await settle(pilot)
        assert isinstance(pilot.app.screen, SaveDiscardCancelModal)
        await pilot.press("d")
        await settle(pilot)
        assert screen.state is not None and screen.state.mailbox.uuid == second.uuid
        assert not screen.dirty
        assert not (await service.get_integration(first.uuid)).saved

        screen.query_one("#notify_email", Input).value = "b@example.com"
        await settle(pilot)
        screen.request_mailbox(first.uuid)
        await settle(pilot)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(pilot.app.screen, PasswordModal))
        await pilot.press("enter")  # the password generated by that Save, shown once
        await settle(pilot)
        assert screen.state is not None and screen.state.mailbox.uuid == first.uuid
    assert (await service.get_integration(second.uuid)).form.notify_email == "b@example.com"


async def test_quit_with_unsaved_changes_asks(data_dir: Path) -> None:
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        screen.query_one("#notify_email", Input).value = "a@example.com"
        await settle(pilot)
        await pilot.press("ctrl+q")
        await settle(pilot)
        assert isinstance(app.screen, SaveDiscardCancelModal)
        await pilot.press("c")
        await settle(pilot)
        assert app.is_running and app.screen is screen
        await pilot.press("ctrl+q")
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert not app.is_running
