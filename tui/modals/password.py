"""A password generated while the page is going away (mailbox switch, quit): shown once here."""

from __future__ import annotations

from rich.text import Text
from textual._time import get_time
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static

from tui.clipboard import copy_text
from tui.keys import bindings, key_label
from tui.toast import say


class PasswordModal(ModalScreen[None]):
    BINDINGS = bindings("password.copy", "password.close")

    def __init__(self, mailbox_name: str, password: str) -> None:
        super().__init__(classes="modal")
        self.mailbox_name = mailbox_name
        self.password = password

    def compose(self) -> ComposeResult:
        copy = key_label(self.app, "password.copy")
        with Vertical(classes="modal-box"):
            yield Static(
                Text(f"New SFTP password of {self.mailbox_name}", style="bold"),
                classes="modal-title",
            )
            yield Static(Text(self.password, style="bold"), id="new-password")
            yield Static(
                Text(
                    f"Shown once: copy it now ({copy}). It is stored only as a hash; "
                    "a lost password can only be reset."
                ),
                classes="modal-detail",
            )
            with Horizontal(classes="modal-buttons"):
                yield Button(f"Copy ({copy})", id="copy", compact=True)
                yield Button(
                    f"Done ({key_label(self.app, 'password.close')})",
                    id="done",
                    variant="primary",
                    compact=True,
                )
        yield Footer()

    def on_mount(self) -> None:
        self.shown_at = get_time()  # keys typed before this are no answer (tui.app)
        self.query_one("#done", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "copy":
            self.action_copy()
        else:
            self.dismiss(None)

    def action_copy(self) -> None:
        copy_text(self.app, self.password)
        say(
            self.app,
            "Password copied (it stays visible here if your terminal ignores OSC 52).",
            title="Copied",
        )

    def action_close(self) -> None:
        self.dismiss(None)
