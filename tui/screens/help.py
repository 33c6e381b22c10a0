"""F1: every key of the TUI, by where it works, with the user's keymap applied.

The rows come from the one key table (``tui.keys``), the same table the widgets build their
bindings from, so help cannot drift from what the keys do.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from tui.keys import KEYS, WIDGET_KEYS, active_key, bindings, display


def help_rows(keymap: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(where, key, what it does (binding id)) for every key, the keymap applied."""
    rows = [
        (spec.where, display(active_key(keymap, spec.id)), f"{spec.tooltip} ({spec.id})")
        for spec in KEYS
    ]
    rows += list(WIDGET_KEYS)
    return rows


def help_table(keymap: Mapping[str, str]) -> Group:
    """Per place a heading and a two-column table (key, what it does): readable at 80."""
    parts: list[RenderableType] = []
    sections: dict[str, list[tuple[str, str]]] = {}
    for where, key, description in help_rows(keymap):
        sections.setdefault(where, []).append((key, description))
    for where, rows in sections.items():
        table = Table(box=None, expand=True, show_header=False, pad_edge=False)
        table.add_column("Key", no_wrap=True, width=16)
        table.add_column("Action (binding id)", ratio=1)
        for key, description in rows:
            table.add_row(Text(key, style="bold"), Text(description))
        if parts:
            parts.append(Text(""))
        parts += [Text(where, style="bold underline"), table]
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    BINDINGS = bindings("help.close")

    def compose(self) -> ComposeResult:
        keymap: Mapping[str, str] = getattr(self.app, "_keymap", {}) or {}
        with VerticalScroll(id="help-body", classes="modal-box help-box") as body:
            body.border_title = "Keys (escape closes; keymap.toml remaps them by binding id)"
            yield Static(help_table(keymap), id="help-table")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def action_close(self) -> None:
        self.dismiss(None)
