"""The one-line header of a form screen: where you are, and whether anything is unsaved.

The unsaved marker has its own cell at the right, so a long mailbox name or a narrow terminal
shortens the left part (with an ellipsis) and never hides the marker.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

UNSAVED = "* unsaved changes"


class FormHeader(Horizontal):
    DEFAULT_CSS = """
    FormHeader { height: 1; background: $panel; color: $text; padding: 0 1; }
    FormHeader > .header-text { width: 1fr; height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    FormHeader > .header-dirty { width: auto; height: 1; text-style: bold reverse; display: none; }
    FormHeader.-dirty > .header-dirty { display: block; }
    """

    def compose(self) -> ComposeResult:
        yield Static(classes="header-text")
        yield Static(Text(UNSAVED), classes="header-dirty")

    def show(self, text: Text, dirty: bool) -> None:
        self.query_one(".header-text", Static).update(text)
        self.set_class(dirty, "-dirty")

    @property
    def text(self) -> str:
        plain = str(self.query_one(".header-text", Static).render())
        return f"{plain}  {UNSAVED}" if self.has_class("-dirty") else plain
