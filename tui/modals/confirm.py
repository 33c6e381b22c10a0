"""A yes/no question: ``y`` confirms, ``n`` or ``escape`` declines."""

from __future__ import annotations

from rich.text import Text
from textual._time import get_time
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static

from tui.keys import bindings, key_label


class ConfirmModal(ModalScreen[bool]):
    """Ask before an action that cannot be undone; dismisses with True only on yes."""

    BINDINGS = bindings("confirm.yes", "confirm.no", "confirm.cancel")

    def __init__(self, question: str, detail: str = "", yes_label: str = "Yes") -> None:
        super().__init__(classes="modal")
        self.question = question
        self.detail = detail
        self.yes_label = yes_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box"):
            yield Static(Text(self.question, style="bold"), classes="modal-title")
            if self.detail:
                yield Static(Text(self.detail), classes="modal-detail")
            with Horizontal(classes="modal-buttons"):
                yes, no = key_label(self.app, "confirm.yes"), key_label(self.app, "confirm.no")
                yield Button(f"{self.yes_label} ({yes})", id="yes", variant="error", compact=True)
                yield Button(f"No ({no})", id="no", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.shown_at = get_time()  # keys typed before this are no answer (tui.app)
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
