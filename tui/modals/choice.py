"""Unsaved changes: save, discard or cancel (``s`` / ``d`` / ``escape``)."""

from __future__ import annotations

from typing import Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

Choice = Literal["save", "discard", "cancel"]


class SaveDiscardCancelModal(ModalScreen[Choice]):
    BINDINGS = [
        Binding("s", "choose('save')", "Save", id="unsaved.save", tooltip="Save, then go on"),
        Binding(
            "d", "choose('discard')", "Discard", id="unsaved.discard", tooltip="Drop the changes"
        ),
        Binding("c", "choose('cancel')", "Cancel", id="unsaved.cancel", tooltip="Stay here"),
        Binding("escape", "choose('cancel')", "Cancel", show=False, id="unsaved.escape"),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__(classes="modal")
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box"):
            yield Static(Text(self.question, style="bold"), classes="modal-title")
            if self.detail:
                yield Static(Text(self.detail), classes="modal-detail")
            with Horizontal(classes="modal-buttons"):
                yield Button("Save (s)", id="save", variant="primary", compact=True)
                yield Button("Discard (d)", id="discard", variant="error", compact=True)
                yield Button("Cancel (c)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_choose(str(event.button.id))

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)  # type: ignore[arg-type]
