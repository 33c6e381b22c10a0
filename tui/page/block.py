"""What every block of the Integrations page is, and the messages blocks send to the page.

A block owns its fields, bindings, hints and actions. The page gives it the stored state
(``fill``), asks it for its part of the form (``read``), and hears from it through typed messages;
a block never reaches into another block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from textual.containers import Vertical
from textual.message import Message
from textual.widget import Widget

from core.models import IntegrationForm, PageState
from tui.toast import say

if TYPE_CHECKING:
    from core.service import Service

Command = tuple[str, str, Callable[[], Any]]
"""A palette entry: title, help text, callback."""


class PageBlock(Vertical):
    """One numbered block of the page, with its number and title in the border."""

    NUMBER = 0
    TITLE = ""
    state: PageState  # set by fill(), before the block is shown

    def __init__(self, service: Service, *, id: str) -> None:
        super().__init__(id=id, classes="block")
        self.service = service
        self.border_title = f"({self.NUMBER}) {self.TITLE}" if self.NUMBER else self.TITLE

    def fill(self, state: PageState) -> None:
        """Show the stored state; must not post change messages (the page prevents them)."""

    def read(self, form: IntegrationForm) -> IntegrationForm:
        """The form with this block's fields as the user left them."""
        return form

    def first_field(self) -> Widget | None:
        """Where a jump to this block lands: its first field."""
        return None

    def field_widget(self, key: str) -> Widget | None:
        """The widget of an invalid field, for the page to focus after a refused Save."""
        return None

    def commands(self) -> Iterable[Command]:
        """Palette entries of this block, only those that make sense now."""
        return ()

    def say(self, message: str, *, title: str = "", severity: Any = "information") -> None:
        say(self.app, message, title=title, severity=severity)


class FieldEdited(Message):
    """The user changed a field of the form (``key`` None: a field without its own error)."""

    def __init__(self, key: str | None) -> None:
        super().__init__()
        self.key = key


class PageStateChanged(Message):
    """A block's immediate action changed stored state (toggle, password, rules, identity)."""

    def __init__(self, state_update: Callable[[PageState], PageState]) -> None:
        super().__init__()
        self.state_update = state_update


class MailboxRequested(Message):
    """The user chose another mailbox; the page asks about unsaved changes first."""

    def __init__(self, mailbox_uuid: str) -> None:
        super().__init__()
        self.mailbox_uuid = mailbox_uuid
