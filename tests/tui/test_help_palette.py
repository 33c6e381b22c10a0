"""Help (F1) and the command palette, checked against lists written here, not computed."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import RadioSet, Select, Switch

from core.models import Direction, RuleForm, TransferProtocol
from core.service import Service
from tests.rules.samples import IDENTITY_MAP
from tests.tui.conftest import make_app, settle, wait_for_page
from tui.screens.activity import ActivityScreen
from tui.screens.help import HelpScreen, help_rows
from tui.screens.rule_form import RuleFormScreen

EXPECTED_HELP = [
    ("Everywhere", "ctrl+q", "app.quit"),
    ("Everywhere", "F1", "app.help"),
    ("Everywhere", "F6", "app.activity"),
    ("Everywhere", "F4", "app.conversions"),
    ("Everywhere", "ctrl+p", "app.command_palette"),
    ("Integrations page (also inside text fields)", "ctrl+s", "page.save"),
    ("Integrations page (also inside text fields)", "F2", "page.toggle"),
    ("Integrations page (also inside text fields)", "F3", "page.switch_mailbox"),
    ("Integrations page (also inside text fields)", "ctrl+n", "rules.add"),
    ("Integrations page (also inside text fields)", "escape", "page.leave_field"),
    ("Integrations page (outside text fields)", "1", "page.block1"),
    ("Integrations page (outside text fields)", "2", "page.block2"),
    ("Integrations page (outside text fields)", "3", "page.block3"),
    ("Integrations page (outside text fields)", "4", "page.block4"),
    ("Integrations page (outside text fields)", "5", "page.block5"),
    ("Integrations page (outside text fields)", "down", "page.next_field"),
    ("Integrations page (outside text fields)", "up", "page.previous_field"),
    ("(3) SFTP connection details", "h", "sftp.copy_host"),
    ("(3) SFTP connection details", "p", "sftp.copy_port"),
    ("(3) SFTP connection details", "l", "sftp.copy_login"),
    ("(3) SFTP connection details", "w", "sftp.copy_password"),
    ("(3) SFTP connection details", "m", "sftp.hide_password"),
    ("(3) SFTP connection details", "ctrl+r", "sftp.reset_password"),
    ("(3) AS2 connection details", "ctrl+l", "as2.copy_url"),
    ("(3) AS2 connection details", "ctrl+g", "as2.export_certificate"),
    ("(3) AS2 connection details", "ctrl+o", "as2.import_certificate"),
    ("A value with a copy action", "enter", "field.copy"),
    ("(5) Conversion rules table", "enter", "rules.open"),
    ("(5) Conversion rules table", "ctrl+t", "rules.toggle"),
    ("(5) Conversion rules table", "ctrl+d", "rules.clone"),
    ("(5) Conversion rules table", "delete", "rules.delete"),
    ("(5) Conversion rules table", "shift+up", "rules.up"),
    ("(5) Conversion rules table", "shift+down", "rules.down"),
    ("Rule form", "ctrl+s", "rule.save"),
    ("Rule form", "ctrl+r", "rule.run"),
    ("Rule form", "F5", "rule.clone"),
    ("Rule form", "F8", "rule.delete"),
    ("Rule form", "escape", "rule.back"),
    ("Activity (F6)", "escape", "activity.back"),
    ("Activity (F6)", "r", "activity.reprocess"),
    ("Activity (F6)", "R", "activity.reprocess_all"),
    ("Activity (F6)", "u", "activity.unban"),
    ("Activity (F6)", "g", "activity.refresh"),
    ("Activity (F6)", "tab", "activity.next_section"),
    ("Activity (F6)", "shift+tab", "activity.previous_section"),
    ("Activity (F6)", "1", "activity.items"),
    ("Activity (F6)", "2", "activity.attempts"),
    ("Activity (F6)", "3", "activity.sessions"),
    ("Activity (F6)", "4", "activity.bans"),
    ("Activity (F6)", "5", "activity.as2"),
    ("Activity (F6)", "c", "activity.conversions"),
    ("Conversion log (F4)", "escape", "conversions.back"),
    ("Conversion log (F4)", "v", "conversions.view"),
    ("Conversion log (F4)", "space", "conversions.mark"),
    ("Conversion log (F4)", "r", "conversions.reprocess"),
    ("Conversion log (F4)", "m", "conversions.more"),
    ("Conversion log (F4)", "f", "conversions.filters"),
    ("Conversion log (F4)", "g", "conversions.refresh"),
    ("A conversion's input and output", "escape", "conversion_view.close"),
    ("Confirmation questions", "y", "confirm.yes"),
    ("Confirmation questions", "n", "confirm.no"),
    ("Confirmation questions", "escape", "confirm.cancel"),
    ("Unsaved changes question", "s", "unsaved.save"),
    ("Unsaved changes question", "d", "unsaved.discard"),
    ("Unsaved changes question", "c / escape", "unsaved.cancel"),
    ("New password dialog", "w", "password.copy"),
    ("New password dialog", "enter / escape", "password.close"),
    ("Error message", "escape / enter", "error.close"),
    ("Error message", "c", "error.copy"),
    ("Certificate dialogs", "escape", "export.cancel"),
    ("Certificate dialogs", "ctrl+s", "import.use"),
    ("Certificate dialogs", "escape", "import.cancel"),
    ("Help (F1)", "escape / F1 / q", "help.close"),
    ("Everywhere", "tab / shift+tab", "Next / previous field"),
    ("Fields", "enter / space", "Open a selector, flip a switch or checkbox, press a button"),
    ("Fields", "up / down", "Move in a selector, radio set or table"),
    ("Rule form editor (conversion map)", "F7", "Select all text in the editor"),
    ("Rule form editor (conversion map)", "ctrl+z / ctrl+y", "Undo / redo"),
]


def shown_rows(keymap: dict[str, str]) -> list[tuple[str, str, str]]:
    rows = []
    for where, key, text in help_rows(keymap):
        binding_id = text.rsplit("(", 1)[-1].rstrip(")") if text.endswith(")") else text
        rows.append((where, key, binding_id))
    return rows


def test_help_lists_every_key_once_in_the_expected_order() -> None:
    assert shown_rows({}) == EXPECTED_HELP
    assert [key for _, key, _ in EXPECTED_HELP].count("ctrl+p") == 1


def test_help_shows_remapped_keys() -> None:
    rows = shown_rows({"page.save": "ctrl+w", "rules.toggle": "f9"})
    assert ("Integrations page (also inside text fields)", "ctrl+w", "page.save") in rows
    assert ("(5) Conversion rules table", "F9", "rules.toggle") in rows


async def test_f1_opens_help_with_the_table_and_its_own_footer(data_dir: Path) -> None:
    app = make_app(data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_page(pilot)
        await pilot.press("f1")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        assert "escape" in app.active_bindings and "ctrl+s" not in app.active_bindings
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, HelpScreen)


async def run_command(pilot, title: str) -> None:  # type: ignore[no-untyped-def]
    app = pilot.app
    commands = {c.title: c for c in app.get_system_commands(app.screen)}
    assert title in commands, sorted(commands)
    commands[title].callback()
    await settle(pilot)


async def test_palette_commands_do_what_they_say(data_dir: Path, service: Service) -> None:
    first, second = (await service.list_mailboxes())[:2]
    template = (await service.list_templates(first.account_uuid))[0]
    await service.create_rule(
        first.uuid,
        RuleForm(
            "R",
            Direction.IN,
            template.uuid,
            naming_pattern="{envelopeUuid}.x",
            conversion_map=IDENTITY_MAP,
        ),
    )
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        page = await wait_for_page(pilot)
        state = page.state

        await run_command(pilot, "Copy host")
        assert app.clipboard == state.sftp.host
        await run_command(pilot, "Copy port")
        assert app.clipboard == str(state.sftp.port)
        await run_command(pilot, "Copy login")
        assert app.clipboard == state.sftp.login

        await run_command(pilot, "Go to block 4: default rule")
        assert app.focused is page.query_one("#default-rule", RadioSet)

        await run_command(pilot, "Toggle integration on/off")
        assert (await service.get_integration(first.uuid)).enabled
        assert page.query_one("#enabled", Switch).value

        await run_command(pilot, "Enable/disable rule")
        assert (await service.list_rules(first.uuid))[0].enabled

        await run_command(pilot, "Open rule")
        assert isinstance(app.screen, RuleFormScreen)
        await run_command(pilot, "Back")
        assert app.screen is page

        await run_command(pilot, "Add rule")
        assert isinstance(app.screen, RuleFormScreen) and app.screen.rule is None
        await run_command(pilot, "Back")

        await run_command(pilot, "Help")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await settle(pilot)
        await run_command(pilot, "Activity")
        assert isinstance(app.screen, ActivityScreen)
        await pilot.press("escape")
        await settle(pilot)

        await run_command(pilot, "Use AS2")
        assert page.query_one("#protocol", Select).value == TransferProtocol.AS2.value
        await run_command(pilot, "Copy Self URL")
        assert app.clipboard == state.as2_self_url
        await run_command(pilot, "Use SFTP")
        assert page.query_one("#protocol", Select).value == TransferProtocol.SFTP.value

        await run_command(pilot, "Save")
        assert (await service.get_integration(first.uuid)).saved
        assert page.revealed_password is not None
        await run_command(pilot, "Copy password")
        assert app.clipboard == page.revealed_password
        await run_command(pilot, "Hide password")
        assert page.revealed_password is None

        await run_command(pilot, f"Mailbox: {second.name}")
        assert page.state.mailbox.uuid == second.uuid
