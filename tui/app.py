"""The docbridge TUI. For now a minimal overview of the account's mailboxes; the full
Integrations page builds on it."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from core.errors import DocbridgeError
from core.service import Service, default_actor


class DocbridgeApp(App[None]):
    TITLE = "docbridge"
    SUB_TITLE = "Integrations"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", tooltip="Leave docbridge"),
    ]

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.service: Service | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="status")
        yield DataTable(id="mailboxes", cursor_type="row")
        yield Footer()

    async def on_mount(self) -> None:
        table = self.query_one("#mailboxes", DataTable)
        table.add_columns("Mailbox", "UUID", "Integration", "Protocol", "Default rule")
        try:
            self.service = await Service.open(self.data_dir, default_actor("tui"))
            mailboxes = await self.service.list_mailboxes()
        except DocbridgeError as exc:
            self.query_one("#status", Static).update(Text(str(exc)))
            return
        if not mailboxes:
            self.query_one("#status", Static).update(
                "No mailbox yet: run 'docbridge init --demo' to load the demo account."
            )
        for mailbox in mailboxes:
            integration = await self.service.get_integration(mailbox.uuid)
            table.add_row(
                Text(mailbox.name),
                mailbox.uuid,
                "ON" if integration.enabled else "OFF",
                integration.form.protocol.value.upper(),
                integration.form.default_rule.label,
            )

    async def on_unmount(self) -> None:
        if self.service is not None:
            await self.service.close()


def run_app(data_dir: Path) -> int:
    """Open the data directory and run the app until the user quits."""
    DocbridgeApp(data_dir).run()
    return 0
