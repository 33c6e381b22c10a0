"""F6: what the engine does: recent attempts, queue, parked items, SFTP sessions and bans.

Everything comes from the service (so it works the same when the engine runs in another
process); the screen refreshes itself every two seconds while it is open.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from core.models import ActivityRecord, Ban, EngineStatus, JobRow
from core.service import Service
from tui.modals.confirm import ConfirmModal

REFRESH_SECONDS = 2.0


class ActivityScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back", id="activity.back", tooltip="Back to the page"),
        Binding(
            "r",
            "reprocess",
            "Reprocess",
            id="activity.reprocess",
            tooltip="Put the selected parked item back in the queue",
        ),
        Binding(
            "R",
            "reprocess_all",
            "Reprocess all",
            id="activity.reprocess_all",
            tooltip="Put every parked item back in the queue (asks first)",
        ),
        Binding(
            "u",
            "unban",
            "Unban",
            id="activity.unban",
            tooltip="Lift the selected SFTP ban (asks first)",
        ),
        Binding("g", "refresh", "Refresh", id="activity.refresh", tooltip="Read everything again"),
    ]

    def __init__(self, service: Service) -> None:
        super().__init__(id="activity")
        self.service = service
        self.mailbox_names: dict[str, str] = {}
        self.parked: list[JobRow] = []
        self.bans: list[Ban] = []

    def compose(self) -> ComposeResult:
        yield Static(id="activity-summary")
        with VerticalScroll(id="activity-page"):
            yield Static(Text("Parked items (r reprocess, R all)", style="bold"))
            yield DataTable(id="parked", cursor_type="row", zebra_stripes=True)
            yield Static(Text("Recent attempts", style="bold"))
            yield DataTable(id="recent", cursor_type="row", zebra_stripes=True)
            yield Static(Text("Connected SFTP sessions", style="bold"))
            yield DataTable(id="sessions", cursor_type="row")
            yield Static(Text("Banned addresses (u unban)", style="bold"))
            yield DataTable(id="bans", cursor_type="row")
        yield Footer()

    async def on_mount(self) -> None:
        self.query_one("#parked", DataTable).add_columns(
            "Id", "Kind", "Mailbox", "Tries", "Last error"
        )
        self.query_one("#recent", DataTable).add_columns(
            "Time", "Mailbox", "Rule", "Status", "Envelope / file", "Error"
        )
        self.query_one("#sessions", DataTable).add_columns("Mailbox", "Address", "Since")
        self.query_one("#bans", DataTable).add_columns("Address", "Failures", "Banned for")
        self.mailbox_names = {m.uuid: m.name for m in await self.service.list_mailboxes()}
        await self.refresh_data()
        self.set_interval(REFRESH_SECONDS, self.refresh_data)
        self.query_one("#parked", DataTable).focus()

    async def refresh_data(self) -> None:
        status = await self.service.engine_status()
        self.parked = await self.service.list_jobs(("parked",))
        recent = await self.service.activity_log(limit=100)
        self.bans = await self.service.list_bans()
        self._show_summary(status)
        self._fill(
            "#parked",
            (
                (str(j.id), j.kind, self._mailbox(j.mailbox_uuid), str(j.attempts), j.last_error)
                for j in self.parked
            ),
        )
        self._fill("#recent", (self._activity_row(r) for r in recent))
        self._fill(
            "#sessions",
            (
                (self._mailbox(s.get("mailbox", "")), s.get("address", ""), s.get("since", ""))
                for s in status.sessions
            ),
        )
        now = time.time()
        self._fill(
            "#bans",
            (
                (b.address, str(b.failures), f"{max(0, int(b.banned_until - now))} s more")
                for b in self.bans
            ),
        )

    def _show_summary(self, status: EngineStatus) -> None:
        if status.running:
            engine = f"engine: running (pid {status.pid} on {status.host})"
            listeners = "  ".join(
                f"{name} {value}" for name, value in status.listeners.items() if name == "sftp"
            )
        else:
            engine, listeners = "engine: stopped", ""
        text = Text(engine, style="bold")
        text.append(f"   queue: {status.queue_depth} waiting   parked: {status.parked}")
        if listeners:
            text.append(f"   {listeners}")
        self.query_one("#activity-summary", Static).update(text)

    def _mailbox(self, uuid: str) -> str:
        return self.mailbox_names.get(uuid, uuid)

    def _activity_row(self, record: ActivityRecord) -> tuple[str | None, ...]:
        what = record.envelope_uuid or record.file_name or ""
        return (
            record.at.replace("T", " ")[:19],
            self._mailbox(record.mailbox_uuid),
            record.rule,
            record.status,
            what,
            record.error,
        )

    def _fill(self, selector: str, rows: Iterable[tuple[str | None, ...]]) -> None:
        """Replace a table's rows, keeping the cursor where it was; user data never as markup."""
        table = self.query_one(selector, DataTable)
        cursor = table.cursor_row
        table.clear()
        for row in rows:
            table.add_row(*(Text(value or "") for value in row))
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))

    # -- actions ------------------------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss(None)

    async def action_refresh(self) -> None:
        await self.refresh_data()

    async def action_reprocess(self) -> None:
        table = self.query_one("#parked", DataTable)
        if not self.parked or table.cursor_row >= len(self.parked):
            self.notify("No parked item is selected.", markup=False)
            return
        job = self.parked[table.cursor_row]
        await self.service.reprocess([job.id])
        self.notify(f"Item {job.id} is back in the queue.", markup=False)
        await self.refresh_data()

    def action_reprocess_all(self) -> None:
        if not self.parked:
            self.notify("Nothing is parked.", markup=False)
            return
        ids = [job.id for job in self.parked]

        async def confirmed(answer: bool | None) -> None:
            if answer:
                count = await self.service.reprocess(ids)
                self.notify(f"{count} item(s) are back in the queue.", markup=False)
                await self.refresh_data()

        self.app.push_screen(
            ConfirmModal(f"Reprocess all {len(ids)} parked items?", yes_label="Reprocess"),
            confirmed,
        )

    def action_unban(self) -> None:
        table = self.query_one("#bans", DataTable)
        if not self.bans or table.cursor_row >= len(self.bans):
            self.notify("No ban is selected.", markup=False)
            return
        address = self.bans[table.cursor_row].address

        async def confirmed(answer: bool | None) -> None:
            if answer:
                await self.service.unban(address)
                self.notify(f"{address} may log in again.", markup=False)
                await self.refresh_data()

        self.app.push_screen(
            ConfirmModal(f"Lift the ban on {address}?", "Its failed-login count starts again."),
            confirmed,
        )

    def palette_commands(self) -> Iterable[SystemCommand]:
        commands: list[tuple[str, str, Any]] = [
            ("Reprocess parked item", "The selected one (r)", self.action_reprocess),
            ("Reprocess all parked items", "Asks first (R)", self.action_reprocess_all),
            ("Unban address", "The selected SFTP ban (u)", self.action_unban),
            ("Refresh activity", "Read everything again (g)", self.action_refresh),
            ("Back to the page", "escape", self.action_back),
        ]
        for title, help_text, callback in commands:
            yield SystemCommand(title, help_text, callback)
