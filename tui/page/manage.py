"""Block (2): which mailbox, which protocol, and the notification address."""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Select, Static

from core.models import IntegrationForm, PageState, TransferProtocol
from tui.errors import guarded
from tui.keys import key_label
from tui.page.block import Command, FieldEdited, MailboxRequested, PageBlock
from tui.widgets.fields import FieldError, FieldRow, FormInput


class ManageBlock(PageBlock):
    NUMBER = 2
    TITLE = "Manage integration"

    class ProtocolChosen(Message):
        def __init__(self, protocol: TransferProtocol) -> None:
            super().__init__()
            self.protocol = protocol

    def __init__(self, service, state: PageState, *, id: str) -> None:  # type: ignore[no-untyped-def]
        super().__init__(service, id=id)
        self.state = state

    def compose(self) -> ComposeResult:
        # Built from the loaded state: the selector never offers a blank entry.
        yield FieldRow(
            "Mailbox",
            Select[str](
                self._mailbox_options(self.state),
                id="mailbox",
                allow_blank=False,
                value=self.state.mailbox.uuid,
                compact=True,
            ),
        )
        yield Static(id="mailbox-uuid", classes="under-field")
        yield FieldRow(
            "Protocol",
            Select[str](
                [("SFTP", TransferProtocol.SFTP.value), ("AS2", TransferProtocol.AS2.value)],
                id="protocol",
                allow_blank=False,
                value=self.state.integration.form.protocol.value,
                compact=True,
            ),
        )
        yield FieldRow(
            "Notify by email",
            FormInput("notify_email", id="notify_email", placeholder="e.g. ops@example.com"),
        )
        yield FieldError("notify_email", id="err-notify_email")

    @staticmethod
    def _mailbox_options(state: PageState) -> list[tuple[Text, str]]:
        return [(Text(m.name), m.uuid) for m in state.mailboxes]

    def fill(self, state: PageState) -> None:
        self.state = state
        with self.prevent(Select.Changed, Input.Changed):
            select = self.query_one("#mailbox", Select)
            select.set_options(self._mailbox_options(state))
            select.value = state.mailbox.uuid
            self.query_one("#protocol", Select).value = state.integration.form.protocol.value
            self.query_one("#notify_email", Input).value = state.integration.form.notify_email
        self.query_one("#mailbox-uuid", Static).update(
            Text.assemble(("UUID ", "dim"), state.mailbox.uuid)
        )

    def read(self, form: IntegrationForm) -> IntegrationForm:
        value = self.query_one("#protocol", Select).value
        protocol = TransferProtocol(value) if isinstance(value, str) else TransferProtocol.SFTP
        notify = self.query_one("#notify_email", Input).value.strip()
        return replace(form, protocol=protocol, notify_email=notify)

    @property
    def protocol(self) -> TransferProtocol:
        value = self.query_one("#protocol", Select).value
        return TransferProtocol(value) if isinstance(value, str) else TransferProtocol.SFTP

    def first_field(self) -> Widget:
        return self.query_one("#mailbox", Select)

    def field_widget(self, key: str) -> Widget | None:
        widgets = {"notify_email": "#notify_email", "protocol": "#protocol"}
        return self.query_one(widgets[key]) if key in widgets else None

    def show_stored_mailbox(self) -> None:
        """The switch was cancelled: the selector goes back to the mailbox on screen."""
        with self.prevent(Select.Changed):
            self.query_one("#mailbox", Select).value = self.state.mailbox.uuid

    @guarded
    def open_mailbox_selector(self) -> None:
        """F3: bring the selector into view first, so its list never covers the header."""
        select = self.query_one("#mailbox", Select)
        self.screen.set_focus(select, scroll_visible=False)
        select.scroll_visible(animate=False, top=True)
        self.call_after_refresh(select.action_show_overlay)

    @guarded
    def choose_protocol(self, protocol: TransferProtocol) -> None:
        self.query_one("#protocol", Select).value = protocol.value

    @on(Select.Changed, "#mailbox")
    def _mailbox_changed(self, event: Select.Changed) -> None:
        event.stop()
        if isinstance(event.value, str) and event.value != self.state.mailbox.uuid:
            self.post_message(MailboxRequested(event.value))

    @on(Select.Changed, "#protocol")
    def _protocol_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.ProtocolChosen(self.protocol))
        self.post_message(FieldEdited(None))

    @on(Input.Changed, "#notify_email")
    def _notify_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(FieldEdited("notify_email"))

    def commands(self) -> list[Command]:
        mailbox_key = key_label(self.app, "page.switch_mailbox")
        commands: list[Command] = [
            (
                "Switch mailbox",
                f"Choose another mailbox ({mailbox_key})",
                self.open_mailbox_selector,
            )
        ]
        if self.protocol is TransferProtocol.AS2:
            commands.append(
                (
                    "Use SFTP",
                    "Connection protocol SFTP",
                    lambda: self.choose_protocol(TransferProtocol.SFTP),
                )
            )
        else:
            commands.append(
                (
                    "Use AS2",
                    "Connection protocol AS2",
                    lambda: self.choose_protocol(TransferProtocol.AS2),
                )
            )
        for mailbox in self.state.mailboxes:
            if mailbox.uuid != self.state.mailbox.uuid:
                commands.append(
                    (
                        f"Mailbox: {mailbox.name}",
                        f"Switch to {mailbox.uuid}",
                        lambda uuid=mailbox.uuid: self.post_message(MailboxRequested(uuid)),  # type: ignore[misc]
                    )
                )
        return commands
