"""Defects a new user met on the Integrations page (issue 7), each pinned by a test."""

from __future__ import annotations

import re
from pathlib import Path

from textual._xterm_parser import XTermParser
from textual.widgets import Footer, Input, Select, Switch
from textual.widgets._select import SelectOverlay

from core.models import Direction, IntegrationForm, RuleForm, TransferProtocol
from core.service import Service
from tests.rules.samples import IDENTITY_MAP
from tests.tui.conftest import (
    MENDELSON,
    burst,
    make_app,
    screen_lines,
    settle,
    until,
    wait_for_page,
)
from tui.modals.choice import SaveDiscardCancelModal
from tui.modals.confirm import ConfirmModal
from tui.modals.password import PasswordModal
from tui.screens.integrations import IntegrationsScreen
from tui.screens.rule_form import RuleFormScreen
from tui.widgets.fields import CopyRow, FieldError
from tui.widgets.header import FormHeader
from tui.widgets.rule_table import RuleTable


async def save_as2(service: Service, mailbox_uuid: str) -> None:
    state = await service.page_state(mailbox_uuid)
    form = IntegrationForm(
        protocol=TransferProtocol.AS2,
        as2=state.integration.form.as2.__class__(
            self_id=state.integration.form.as2.self_id,
            partner_url="https://as2.example.com/as2",
            partner_certificate=(MENDELSON / "cert_mecas2_public.pem").read_text(),
            partner_id="PARTNER",
        ),
    )
    await service.save_integration(mailbox_uuid, form)


async def add_rule(service: Service, name: str, version: int | None = None) -> None:
    mailbox = (await service.list_mailboxes())[0]
    template = (await service.list_templates(mailbox.account_uuid))[0]
    await service.create_rule(
        mailbox.uuid,
        RuleForm(
            name,
            Direction.IN,
            template.uuid,
            template_version=version,
            naming_pattern="{envelopeUuid}.xml",
            conversion_map=IDENTITY_MAP,
        ),
    )


async def store_snapshot(service: Service) -> tuple[object, ...]:
    """Everything a stray key could change: every integration and every rule."""
    mailboxes = await service.list_mailboxes()
    integrations = [await service.get_integration(m.uuid) for m in mailboxes]
    rules = [await service.list_rules(m.uuid) for m in mailboxes]
    return (tuple(integrations), tuple(tuple(r) for r in rules))


# -- 1. global keys inside text fields ----------------------------------------------------------


async def test_f2_and_f3_work_while_typing_in_a_text_field(
    data_dir: Path, service: Service
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    async with make_app(data_dir).run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        field = screen.query_one("#notify_email", Input)
        screen.set_focus(field)
        await pilot.press("a", "f2")
        await settle(pilot)
        assert (await service.get_integration(mailbox.uuid)).enabled
        await pilot.press("b")  # the focus stayed in the field: typing goes on there
        assert pilot.app.focused is field and field.value == "ab"
        screen.set_focus(screen.query_one("#notify_email", Input))
        await pilot.press("f3")
        await settle(pilot)
        assert screen.query_one("#mailbox", Select).expanded


# -- 2. a generated password is always shown once --------------------------------------------


async def test_password_generated_by_save_in_the_switch_dialog_is_shown(
    data_dir: Path, service: Service
) -> None:
    first, second = (await service.list_mailboxes())[:2]
    async with make_app(data_dir).run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        screen.query_one("#notify_email", Input).value = "ops@example.com"
        await settle(pilot)
        screen.request_mailbox(second.uuid)
        await settle(pilot)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(pilot.app.screen, PasswordModal))
        modal = pilot.app.screen
        assert isinstance(modal, PasswordModal)
        assert await service.check_password(first.uuid, modal.password)
        await pilot.press("w")
        assert pilot.app.clipboard == modal.password
        await pilot.press("enter")
        await settle(pilot)
        assert screen.state.mailbox.uuid == second.uuid


async def test_password_generated_by_save_on_quit_is_shown_before_exiting(
    data_dir: Path, service: Service
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        screen.query_one("#notify_email", Input).value = "ops@example.com"
        await settle(pilot)
        await pilot.press("ctrl+q")
        await settle(pilot)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, PasswordModal))
        assert app.is_running
        modal = app.screen
        assert isinstance(modal, PasswordModal)
        assert await service.check_password(mailbox.uuid, modal.password)
        await pilot.press("enter")
        await until(pilot, lambda: not app.is_running)


# -- 3. keys typed fast never act on the page -------------------------------------------------


async def test_a_burst_meant_for_a_field_changes_nothing(data_dir: Path, service: Service) -> None:
    mailbox = (await service.list_mailboxes())[0]
    await save_as2(service, mailbox.uuid)
    await add_rule(service, "Keep me")
    before = await store_snapshot(service)
    app = make_app(data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await wait_for_page(pilot)
        typed = "https://partner.example.com/as2 acxKJ rm yes"
        for jump in ("3", "5", "4", "1"):
            await burst(pilot, jump, "tab", "tab", "tab", *typed)
            # whatever was focused, no dialog and no rule form opened from the letters
            assert app.screen is screen, f"block {jump}: {app.screen!r}"
            await pilot.press("escape")
        assert not isinstance(app.screen, RuleFormScreen | ConfirmModal)
    assert await store_snapshot(service) == before


async def test_keys_on_the_switch_do_not_turn_the_integration_on(
    data_dir: Path, service: Service
) -> None:
    before = await store_snapshot(service)
    async with make_app(data_dir).run_test(size=(80, 24)) as pilot:
        await wait_for_page(pilot)
        await burst(pilot, "1", *"note 1 done", "enter", "space")
        assert not pilot.app.screen.query_one("#enabled", Switch).value
    assert await store_snapshot(service) == before


async def test_bunched_editing_keys_apply_in_the_order_typed(data_dir: Path) -> None:
    async with make_app(data_dir).run_test(size=(80, 24)) as pilot:
        screen = await wait_for_page(pilot)
        field = screen.query_one("#notify_email", Input)
        screen.set_focus(field)
        await settle(pilot)  # focusing selects the (empty) text: let that happen first
        for start, keys, expected in (
            ("km", ("backspace", "x"), "kx"),
            ("Q14", ("left", "left", "5"), "Q514"),
            ("abc", ("home", "end", "7"), "abc7"),
            ("ABC", ("ctrl+u", "X", "Y", "Z"), "XYZ"),
        ):
            field.value = start
            field.cursor_position = len(start)
            await settle(pilot)
            await burst(pilot, *keys)
            assert field.value == expected, keys


async def test_editing_keys_after_a_jump_in_the_same_burst_stay_in_order(
    data_dir: Path,
) -> None:
    async with make_app(data_dir).run_test(size=(80, 24)) as pilot:
        screen = await wait_for_page(pilot)
        field = screen.query_one("#notify_email", Input)
        field.value = "old@example.com"
        await settle(pilot)
        # from block 1: jump, two tabs into "Notify by email", clear it, type, correct
        await burst(pilot, "2", "tab", "tab", "ctrl+u", *"abcd", "backspace", "Z", "left", "Y")
        assert pilot.app.focused is field
        assert field.value == "abcYZ"


async def test_a_question_is_not_answered_by_keys_typed_before_it_appeared(
    data_dir: Path, service: Service
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    await service.set_enabled(mailbox.uuid, True)
    async with make_app(data_dir).run_test(size=(80, 24)) as pilot:
        await wait_for_page(pilot)
        await burst(pilot, "f2", "y", "enter")
        assert isinstance(pilot.app.screen, ConfirmModal)  # still asking
        assert (await service.get_integration(mailbox.uuid)).enabled
        await pilot.press("y")  # pressed once the question is on screen: an answer
        await settle(pilot)
    assert not (await service.get_integration(mailbox.uuid)).enabled


async def test_saved_gives_way_to_the_next_edit(data_dir: Path) -> None:
    async with make_app(data_dir).run_test(size=(80, 24)) as pilot:
        screen = await wait_for_page(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        summary = screen.query_one("#form-summary")
        assert "Saved." in str(summary.render())
        await pilot.press("4", "down", "enter")
        await settle(pilot)
        assert screen.dirty and "Saved." not in str(summary.render())


async def test_a_block_jump_lands_on_the_blocks_first_field(
    data_dir: Path, service: Service
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    async with make_app(data_dir).run_test(size=(80, 24)) as pilot:
        screen = await wait_for_page(pilot)
        await burst(pilot, "3", "tab")  # bunched: the tab must start from block 3
        assert pilot.app.focused is screen.query_one("#sftp-port")
        await save_as2(service, mailbox.uuid)
        screen.fill(await service.page_state(mailbox.uuid))
        await settle(pilot)
        url = screen.query_one("#as2-partner_url", Input)
        url.value = ""
        await burst(pilot, "escape", "3", "tab", "tab", "tab", *"https://b.example/as2")
        assert pilot.app.focused is url  # Self URL, Self certificate, Self ID, Recipient URL
        assert url.value == "https://b.example/as2"


# -- 4. no blank mailbox ---------------------------------------------------------------------


async def test_the_mailbox_selector_offers_no_blank_entry(data_dir: Path, service: Service) -> None:
    names = [m.name for m in await service.list_mailboxes()]
    async with make_app(data_dir).run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        await pilot.press("f3")
        await settle(pilot)
        overlay = screen.query_one("#mailbox", Select).query_one(SelectOverlay)
        offered = [str(option.prompt) for option in overlay._options]
        assert offered == names
        await pilot.press("escape")


# -- 6. one answer to "unsaved?" --------------------------------------------------------------


async def test_unsaved_markers_agree_and_show_at_80_columns(
    data_dir: Path, service: Service
) -> None:
    for size in ((80, 24), (120, 60)):
        app = make_app(data_dir)
        async with app.run_test(size=size) as pilot:
            screen = await wait_for_page(pilot)
            header = screen.query_one(FormHeader)
            assert not screen.dirty and "unsaved" not in header.text
            assert "unsaved" not in str(screen.query_one("#save").label)
            screen.query_one("#protocol", Select).value = TransferProtocol.AS2.value
            await settle(pilot)
            assert screen.dirty and "unsaved" in header.text
            assert "unsaved" in str(screen.query_one("#save").label)
            top = screen_lines(pilot)[0]
            assert top.rstrip().endswith("* unsaved changes"), top
            await pilot.press("ctrl+q")
            await settle(pilot)
            assert isinstance(app.screen, SaveDiscardCancelModal)
            await pilot.press("d")
            await until(pilot, lambda app=app: not app.is_running)


async def test_quit_right_after_launch_does_not_ask(data_dir: Path) -> None:
    app = make_app(data_dir)
    async with app.run_test(size=(120, 60)) as pilot:
        await wait_for_page(pilot)
        await pilot.press("ctrl+q")
        await until(pilot, lambda: not app.is_running)


# -- 7. the revealed password does not stay on screen -----------------------------------------


async def test_revealed_password_is_masked_on_leaving_the_block_and_after_the_timeout(
    data_dir: Path,
) -> None:
    config = data_dir / "docbridge.toml"
    text = config.read_text()
    assert "password_reveal_seconds = 60" in text
    config.write_text(text.replace("password_reveal_seconds = 60", "password_reveal_seconds = 5"))
    async with make_app(data_dir).run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert screen.revealed_password is not None
        await pilot.press("4")  # leave block (3)
        await settle(pilot)
        assert screen.revealed_password is None
        assert "•" in str(screen.query_one("#sftp-password", CopyRow).value_text)

        await pilot.press("3", "ctrl+r")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert screen.revealed_password is not None
        await until(pilot, lambda: screen.revealed_password is None, within_s=15)


# -- 8. F3 keeps the header visible -------------------------------------------------------------


async def test_f3_brings_the_selector_into_view_before_opening_it(data_dir: Path) -> None:
    async with make_app(data_dir).run_test(size=(80, 24)) as pilot:
        screen = await wait_for_page(pilot)
        screen.set_focus(screen.query_one("#save"))
        await settle(pilot)
        await pilot.press("f3")
        await settle(pilot)
        select = screen.query_one("#mailbox", Select)
        assert select.expanded
        overlay = select.query_one(SelectOverlay)
        assert overlay.region.y >= 1  # below the header line
        assert "docbridge" in screen_lines(pilot)[0]


# -- 9. readable at 80 columns ------------------------------------------------------------------


async def test_at_80_columns_values_are_whole_and_the_rules_table_fits(
    data_dir: Path, service: Service
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    await save_as2(service, mailbox.uuid)
    for n in range(3):
        await add_rule(service, f"A rather long rule name number {n} for invoices", 1)
    async with make_app(data_dir).run_test(size=(80, 24)) as pilot:
        screen = await wait_for_page(pilot)
        state = screen.state
        lines: list[str] = []
        for block in ("3", "5"):
            await pilot.press(block)
            await settle(pilot)
            lines += screen_lines(pilot)
        screen.set_focus(screen.query_one("#as2-partner-cert"))
        await settle(pilot)
        lines += screen_lines(pilot)
        text = "\n".join(lines)
        assert any(state.as2_self_url in line for line in lines)  # never cut or wrapped
        assert not re.search(r"\b\d+(\.\d+){4,}=", text)  # no raw OIDs in subjects
        assert "emailAddress=" in text or "E=" in text
        table = screen.query_one("#rules", RuleTable)
        assert table.virtual_size.width <= table.scrollable_content_region.width
        assert any("Failed" in line for line in lines)


# -- 10. no errors before the user typed ---------------------------------------------------------


async def test_no_errors_show_before_the_user_types(data_dir: Path) -> None:
    async with make_app(data_dir).run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        screen.query_one("#protocol", Select).value = TransferProtocol.AS2.value
        await settle(pilot)
        await pilot.press("3", "tab", "tab", "tab", "tab")  # through AS2 fields, typing nothing
        await settle(pilot)
        assert [e.message for e in screen.query(FieldError) if e.message] == []
        assert not any(w.has_class("-invalid") for w in screen.query(Input))
        await pilot.press("ctrl+n")
        await settle(pilot)
        form = pilot.app.screen
        assert isinstance(form, RuleFormScreen)
        await pilot.press("tab", "tab")
        await settle(pilot)
        assert [e.message for e in form.query(FieldError) if e.message] == []


# -- 11. the palette follows the context; a discarded switch generates nothing -------------------


async def test_palette_offers_only_what_applies(data_dir: Path, service: Service) -> None:
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        page = await wait_for_page(pilot)
        titles = {c.title for c in app.get_system_commands(page)}
        assert {"Copy host", "Use AS2"} <= titles
        assert not {"Copy Self URL", "Export self certificate", "Open rule"} & titles
        page.query_one("#protocol", Select).value = TransferProtocol.AS2.value
        await settle(pilot)
        titles = {c.title for c in app.get_system_commands(page)}
        assert {"Copy Self URL", "Use SFTP", "Load recipient certificate"} <= titles
        assert not {"Copy host", "Reset password"} & titles


async def test_choosing_as2_then_discarding_generates_no_key_pair(
    data_dir: Path, service: Service
) -> None:
    first, second = (await service.list_mailboxes())[:2]
    keys_before = sorted(p.name for p in (data_dir / "keys").rglob("*"))
    async with make_app(data_dir).run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        screen.query_one("#protocol", Select).value = TransferProtocol.AS2.value
        await settle(pilot)
        screen.request_mailbox(second.uuid)
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
    assert (await service.page_state(first.uuid)).as2_identity is None
    assert sorted(p.name for p in (data_dir / "keys").rglob("*")) == keys_before


# -- 12. the rule form keeps a pinned template version ---------------------------------------------


async def test_rule_form_keeps_a_pinned_template_version(data_dir: Path, service: Service) -> None:
    mailbox = (await service.list_mailboxes())[0]
    await add_rule(service, "Pinned", version=1)
    async with make_app(data_dir).run_test(size=(120, 40)) as pilot:
        await wait_for_page(pilot)
        await pilot.press("5", "enter")
        await settle(pilot)
        form = pilot.app.screen
        assert isinstance(form, RuleFormScreen)
        assert form.query_one("#rule-version", Select).value == "1"
        assert not form.dirty
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(pilot.app.screen, IntegrationsScreen)
    [rule] = await service.list_rules(mailbox.uuid)
    assert rule.form.template_version == 1


# -- 13. hints follow the keymap ---------------------------------------------------------


async def test_on_screen_hints_follow_the_keymap(data_dir: Path, service: Service) -> None:
    (data_dir / "keymap.toml").write_text(
        '"sftp.copy_host" = "o"\n"rules.add" = "ctrl+b"\n"page.toggle" = "f9"\n'
    )
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        page = await wait_for_page(pilot)
        text = "\n".join(screen_lines(pilot))
        assert "o copy" in str(page.query_one("#sftp-host", CopyRow).hint)
        assert "ctrl+b add" in str(page.query_one("#rules-hint").render())
        assert "F9 turns it on" in text
        assert "Add new rule (ctrl+b)" in str(page.query_one("#add-rule").label)
        helps = {c.title: c.help for c in app.get_system_commands(page)}
        assert helps["Copy host"] == "SFTP host (o)"
        assert helps["Add rule"] == "New conversion rule (ctrl+b)"
        await pilot.press("3", "o")
        await settle(pilot)
        assert app.clipboard == page.state.sftp.host


# -- 14. smaller ones ---------------------------------------------------------


async def test_the_reject_reason_takes_long_text_over_several_lines(
    data_dir: Path, service: Service
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    reason = "Not accepted here. " * 20
    async with make_app(data_dir).run_test(size=(80, 24)) as pilot:
        screen = await wait_for_page(pilot)
        await pilot.press("4", "down", "down", "enter", "tab")
        await settle(pilot)
        area = screen.query_one("#reject_reason")
        assert pilot.app.focused is area
        area.insert(reason)  # type: ignore[attr-defined]
        await settle(pilot)
        assert area.size.height > 1  # wraps instead of scrolling sideways
        await pilot.press("ctrl+s")
        await settle(pilot)
    assert (await service.get_integration(mailbox.uuid)).form.reject_reason == reason


async def test_dialogs_show_their_own_keys(data_dir: Path, service: Service) -> None:
    await service.set_enabled((await service.list_mailboxes())[0].uuid, True)
    app = make_app(data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_page(pilot)
        await pilot.press("f2")
        await settle(pilot)
        modal = app.screen
        assert isinstance(modal, ConfirmModal)
        assert modal.query(Footer)
        keys = set(app.active_bindings)
        assert {"y", "n", "escape"} <= keys
        assert not {"ctrl+s", "f2", "f3"} & keys
        await pilot.press("n")


async def test_down_moves_to_the_next_field_instead_of_scrolling_it_away(
    data_dir: Path,
) -> None:
    async with make_app(data_dir).run_test(size=(80, 24)) as pilot:
        screen = await wait_for_page(pilot)
        assert pilot.app.focused is screen.query_one("#enabled", Switch)
        await pilot.press("down")
        await settle(pilot)
        focused = pilot.app.focused
        assert focused is screen.query_one("#mailbox")
        assert focused is not None and focused.region.y >= 1  # still on screen


async def test_escape_then_a_digit_typed_fast_leaves_the_field_and_jumps(data_dir: Path) -> None:
    """Over SSH, escape then 4 typed quickly arrive as one sequence ("ESC 4"), which Textual
    reads as macOS Option+4 ("¢"): it must leave the field and go to block 4 instead."""
    async with make_app(data_dir).run_test(size=(80, 24)) as pilot:
        screen = await wait_for_page(pilot)
        field = screen.query_one("#notify_email", Input)
        screen.set_focus(field)
        await settle(pilot)
        driver = pilot.app._driver
        assert driver is not None
        for event in XTermParser().feed("ab\x1b4"):
            event.set_sender(pilot.app)
            driver.send_message(event)
        await settle(pilot)
        assert field.value == "ab"
        assert pilot.app.focused is screen.query_one("#default-rule")


async def test_escape_still_closes_an_open_selector(data_dir: Path) -> None:
    async with make_app(data_dir).run_test(size=(80, 24)) as pilot:
        screen = await wait_for_page(pilot)
        await pilot.press("f3")
        await settle(pilot)
        select = screen.query_one("#mailbox", Select)
        assert select.expanded
        await pilot.press("escape")
        await settle(pilot)
        assert not select.expanded
