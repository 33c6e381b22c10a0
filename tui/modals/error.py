"""An error: its title and what to do; for a defect also the details, to copy into a report."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static

from tui.clipboard import copy_text
from tui.keys import bindings, key_label
from tui.toast import say


class ErrorModal(ModalScreen[None]):
    BINDINGS = bindings("error.close", "error.copy")

    def __init__(self, title: str, hint: str = "", details: str = "") -> None:
        super().__init__(classes="modal error-modal")
        self.error_title = title
        self.hint = hint
        self.details = details

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box"):
            yield Static(
                Text("Error: ", style="bold") + Text(self.error_title), classes="modal-title"
            )
            if self.hint:
                yield Static(Text(self.hint), classes="modal-detail")
            if self.details:
                with VerticalScroll(classes="error-details"):
                    yield Static(Text(self.details), id="error-details")
            with Horizontal(classes="modal-buttons"):
                yield Button(
                    f"Close ({key_label(self.app, 'error.close')})", id="close", compact=True
                )
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_copy_details(self) -> None:
        copy_text(self.app, f"{self.error_title}\n{self.hint}\n\n{self.details}".strip())
        say(self.app, "Details copied.", title="Error")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "copy_details":
            return bool(self.details)
        return True
