"""F1: every key of the TUI, by where it works, with the user's keymap applied."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static


def key_sections() -> list[tuple[str, Sequence[BindingType]]]:
    """Where each group of keys works, from the classes that declare them."""
    from tui.app import DocbridgeApp
    from tui.modals.choice import SaveDiscardCancelModal
    from tui.modals.confirm import ConfirmModal
    from tui.screens.activity import ActivityScreen
    from tui.screens.integrations import As2DetailsBlock, IntegrationsScreen, SftpDetailsBlock
    from tui.screens.rule_form import RuleFormScreen
    from tui.widgets.fields import CopyRow
    from tui.widgets.rule_table import RuleTable

    return [
        ("Everywhere", DocbridgeApp.BINDINGS),
        ("Integrations page (outside text fields)", IntegrationsScreen.BINDINGS),
        ("(3) SFTP connection details", SftpDetailsBlock.BINDINGS),
        ("(3) AS2 connection details", As2DetailsBlock.BINDINGS),
        ("A value with a copy action", CopyRow.BINDINGS),
        ("(5) Conversion rules table", RuleTable.BINDINGS),
        ("Rule form", RuleFormScreen.BINDINGS),
        ("Activity (F6)", ActivityScreen.BINDINGS),
        ("Confirmation questions", ConfirmModal.BINDINGS),
        ("Unsaved changes question", SaveDiscardCancelModal.BINDINGS),
    ]


EXTRA_KEYS = [
    ("Everywhere", "tab / shift+tab", "Next / previous field"),
    ("Everywhere", "ctrl+p", "Command palette: every action by name"),
    ("Fields", "enter / space", "Open a selector, flip a switch or checkbox, press a button"),
    ("Fields", "up / down", "Move in a selector, radio set or table"),
]


def help_table(keymap: Mapping[str, str]) -> Table:
    table = Table(box=None, expand=True, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("Where", no_wrap=False, ratio=2)
    table.add_column("Key", no_wrap=True)
    table.add_column("Action (binding id)", ratio=3)
    for where, bindings in key_sections():
        for item in bindings:
            if not isinstance(item, Binding):
                continue
            key = keymap.get(item.id or "", item.key) if item.id else item.key
            description = item.tooltip or item.description or item.action
            table.add_row(
                Text(where), Text(key.replace(",", " / ")), Text(f"{description} ({item.id})")
            )
    for where, key, description in EXTRA_KEYS:
        table.add_row(Text(where), Text(key), Text(description))
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,f1,q", "close", "Close", id="help.close", tooltip="Close the help"),
    ]

    def compose(self) -> ComposeResult:
        keymap: Mapping[str, str] = getattr(self.app, "_keymap", {})
        with VerticalScroll(id="help-body", classes="modal-box help-box") as body:
            body.border_title = "Keys (escape closes; keys can be remapped by binding id)"
            self.table = help_table(keymap)
            yield Static(self.table, id="help-table")
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)
