"""Block (7): the Save button, the result of the last Save, and the unsaved marker."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.widgets import Button, Static

from tui.keys import key_label
from tui.page.block import PageBlock
from tui.widgets.header import UNSAVED


class SaveBar(PageBlock):
    NUMBER = 7
    TITLE = "Save"

    def compose(self) -> ComposeResult:
        yield Static(id="form-summary")
        yield Button("Save", id="save", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.show_dirty(False)

    def show_dirty(self, dirty: bool) -> None:
        label = f"Save ({key_label(self.app, 'page.save')})"
        self.query_one("#save", Button).label = f"{label}  {UNSAVED}" if dirty else label

    @on(Button.Pressed, "#save")
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.screen.run_action("save")
