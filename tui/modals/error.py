"""An error a user can act on: its title and what to do, never a traceback."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ErrorModal(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,enter", "close", "Close", id="error.close", tooltip="Close this message"),
    ]

    def __init__(self, title: str, hint: str = "") -> None:
        super().__init__(classes="modal error-modal")
        self.error_title = title
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box"):
            yield Static(
                Text("Error: ", style="bold") + Text(self.error_title), classes="modal-title"
            )
            if self.hint:
                yield Static(Text(self.hint), classes="modal-detail")
            with Horizontal(classes="modal-buttons"):
                yield Button("Close (enter)", id="close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
