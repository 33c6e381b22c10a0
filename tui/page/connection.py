"""Block (3): the connection details of the chosen protocol (SFTP or AS2)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widget import Widget

from core.models import As2Identity, IntegrationForm, PageState, TransferProtocol
from tui.page.as2 import As2Details
from tui.page.block import Command, PageBlock
from tui.page.sftp import SftpDetails


class ConnectionBlock(PageBlock):
    NUMBER = 3
    TITLE = "Connection details"

    def __init__(self, service, state: PageState, *, id: str) -> None:  # type: ignore[no-untyped-def]
        super().__init__(service, id=id)
        self.state = state

    def compose(self) -> ComposeResult:
        yield SftpDetails(self.service, id="sftp")
        as2_now = self.state.integration.form.protocol is TransferProtocol.AS2
        yield As2Details(self.service, id="as2", build=as2_now)

    @property
    def sftp(self) -> SftpDetails:
        return self.query_one(SftpDetails)

    @property
    def as2(self) -> As2Details:
        return self.query_one(As2Details)

    def fill(self, state: PageState) -> None:
        self.state = state
        self.sftp.fill(state)
        self.as2.fill(state)
        self.show_protocol(state.integration.form.protocol)

    def show_protocol(self, protocol: TransferProtocol) -> None:
        self.sftp.display = protocol is TransferProtocol.SFTP
        self.as2.display = protocol is TransferProtocol.AS2
        if protocol is TransferProtocol.AS2:
            self.as2.build()
        if protocol is not TransferProtocol.SFTP:
            self.sftp.mask_password()

    @property
    def protocol(self) -> TransferProtocol:
        return TransferProtocol.AS2 if self.as2.display else TransferProtocol.SFTP

    def read(self, form: IntegrationForm) -> IntegrationForm:
        # The AS2 fields are kept even while SFTP is chosen: switching back loses nothing.
        return self.as2.read(form)

    def first_field(self) -> Widget | None:
        return self.as2.first_field() if self.as2.display else self.sftp.first_field()

    def field_widget(self, key: str) -> Widget | None:
        return self.as2.field_widget(key) if self.as2.display else None

    def identity_created(self, identity: As2Identity) -> None:
        self.as2.identity_created(identity)

    def commands(self) -> list[Command]:
        return self.as2.commands() if self.as2.display else self.sftp.commands()
