"""Unsaved changes: save, discard or cancel (keys from ``tui.keys``: unsaved.*)."""

from __future__ import annotations

from typing import Literal

from rich.text import Text
from textual._time import get_time
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static

from tui.keys import bindings, key_label

Choice = Literal["save", "discard", "cancel"]


class SaveDiscardCancelModal(ModalScreen[Choice]):
    BINDINGS = bindings("unsaved.save", "unsaved.discard", "unsaved.cancel")

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
                key = lambda binding_id: key_label(self.app, binding_id)  # noqa: E731
                yield Button(
                    f"Save ({key('unsaved.save')})", id="save", variant="primary", compact=True
                )
                yield Button(
                    f"Discard ({key('unsaved.discard')})",
                    id="discard",
                    variant="error",
                    compact=True,
                )
                yield Button(f"Cancel ({key('unsaved.cancel')})", id="cancel", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.shown_at = get_time()  # keys typed before this are no answer (tui.app)
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_choose(str(event.button.id))

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)  # type: ignore[arg-type]
