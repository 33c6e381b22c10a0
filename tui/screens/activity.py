"""F6: what the engine does, one section at a time so it reads at 80x24.

Sections: items needing attention (retrying, parked), recent attempts, connected SFTP sessions,
banned addresses, recent AS2 messages in and out with their MDNs. A detail pane under the table
shows the selected row in full (error, ids).
Everything comes from :meth:`core.service.Service.activity_view` (the same in a client of
another process's engine), with states derived in the core; the screen refreshes every two
seconds while it is in front. A failing refresh never ends the app: it is reported once, named in
the summary line while it lasts, and refreshing goes on.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane, Tabs

from core.models import (
    ActivityView,
    As2Message,
    AttemptView,
    BanView,
    ItemState,
    ItemView,
    JobKind,
)
from core.service import Service
from tui.errors import guarded, report_error
from tui.keys import bindings, key_label
from tui.modals.confirm import ConfirmModal
from tui.toast import say
from tui.widgets.activity_sections import (
    SECTION_BY_ID,
    SECTIONS,
    as2_facts,
    as2_row,
    clip,
    facts,
    layout,
    tab_titles,
    when,
)

REFRESH_SECONDS = 2.0


class ActivityScreen(Screen[None]):
    CSS_PATH = "activity.tcss"
    BINDINGS = bindings(
        "activity.back",
        "activity.reprocess",
        "activity.reprocess_all",
        "activity.unban",
        "activity.refresh",
        "activity.next_section",
        "activity.previous_section",
        "activity.items",
        "activity.attempts",
        "activity.sessions",
        "activity.bans",
        "activity.as2",
        "activity.conversions",
    )

    def __init__(self, service: Service) -> None:
        super().__init__(id="activity")
        self.service = service
        self.view: ActivityView | None = None
        self.fault: str | None = None  # the refresh error being reported, once
        self._width = 0

    def compose(self) -> ComposeResult:
        yield Static(id="activity-summary")
        with TabbedContent(id="sections"):
            for section in SECTIONS:
                with TabPane(section.title, id=f"section-{section.id}"):
                    yield DataTable(id=section.id, cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="detail-pane"):
            yield Static(id="detail")
        yield Footer()

    async def on_mount(self) -> None:
        self.query_one(Tabs).can_focus = False  # tab moves between sections, not onto the tabs
        self.query_one("#detail-pane").can_focus = False
        await self.refresh_data()
        self.set_interval(REFRESH_SECONDS, self._tick)
        self.query_one("#items", DataTable).focus()

    # -- reading -------------------------------------------------------------------------------

    @guarded
    async def _tick(self) -> None:
        if self.app.screen is not self:  # a dialog (e.g. the error) is open: wait for it
            return
        await self.refresh_data()

    async def refresh_data(self) -> None:
        try:
            view = await self.service.activity_view()
        except Exception as error:  # every kind is reported; none ends the app
            self._refresh_failed(error)
            return
        self.fault = None
        self.view = view
        self._show(view)

    def _refresh_failed(self, error: Exception) -> None:
        fault = f"{type(error).__name__}: {error}"
        if fault != self.fault:  # a repeating error is reported once, then named in the summary
            self.fault = fault
            report_error(self.app, error)
        self._show_summary()

    def _show(self, view: ActivityView) -> None:
        self._show_summary()
        names = view.mailbox_names
        rows: dict[str, list[tuple[str, tuple[str | None, ...]]]] = {
            "items": [(str(i.job.id), self._item_row(i)) for i in view.items],
            "attempts": [(str(a.record.id), self._attempt_row(a)) for a in view.attempts],
            "sessions": [
                (str(n), (names.get(s.get("mailbox", ""), s.get("mailbox", "")), s.get("address")))
                for n, s in enumerate(view.status.sessions)
            ],
            "bans": [(b.ban.address, self._ban_row(b)) for b in view.bans],
            "as2": [
                (str(m.id), as2_row(m, names.get(m.mailbox_uuid, m.mailbox_uuid)))
                for m in view.as2_messages
            ],
        }
        for section in SECTIONS:  # in order: the last one records the width the columns fit
            self._fill(section.id, rows[section.id])
        counts = {section_id: len(found) for section_id, found in rows.items()}
        keys = {s.id: key_label(self.app, s.key_id) for s in SECTIONS}
        tabs = self.query_one(TabbedContent)
        for section_id, title in tab_titles(counts, keys, self.size.width or 80).items():
            tabs.get_tab(f"section-{section_id}").label = Content(title)
        self._show_detail()

    def _show_summary(self) -> None:
        text = Text()
        if self.fault is not None:
            text.append("Refresh failed: ", style="bold red")
            text.append(f"{self.fault} (trying again every {REFRESH_SECONDS:g} s)\n")
        if self.view is not None:
            status = self.view.status
            if status.running:
                text.append(f"engine: running (pid {status.pid} on {status.host})", style="bold")
            else:
                text.append("engine: stopped", style="bold")
            retrying = sum(1 for i in self.view.items if i.state is ItemState.RETRYING)
            text.append(
                f"   queue: {status.queue_depth}   retrying: {retrying}   parked: {status.parked}"
            )
            for listener in ("sftp", "as2"):
                if listener in status.listeners:
                    text.append(f"   {listener} {status.listeners[listener]}")
        self.query_one("#activity-summary", Static).update(text)

    @staticmethod
    def _item_row(item: ItemView) -> tuple[str | None, ...]:
        job = item.job
        return (str(job.id), item.label, item.mailbox_name, job.kind, job.last_error)

    @staticmethod
    def _attempt_row(attempt: AttemptView) -> tuple[str | None, ...]:
        record = attempt.record
        what = record.envelope_uuid or record.file_name
        return (record.at[11:19], attempt.mailbox_name, attempt.label, what, record.error)

    @staticmethod
    def _ban_row(ban: BanView) -> tuple[str | None, ...]:
        return (ban.ban.address, str(ban.ban.failures), when(ban.ban.banned_at)[:19], ban.label)

    def _fill(self, section_id: str, rows: list[tuple[str, tuple[str | None, ...]]]) -> None:
        """Replace a table's rows; the cursor stays on the same item when it is still there."""
        section = SECTION_BY_ID[section_id]
        table = self.query_one(f"#{section_id}", DataTable)
        shown = layout(section, self.size.width or 80)
        if not table.columns or self._width != self.size.width:
            table.clear(columns=True)
            for index, size in shown:
                label = section.columns[index][0]
                table.add_column(label, width=size, key=label)
        selected = self._selected_key(table)
        cursor = table.cursor_row
        table.clear()
        for key, row in rows:
            table.add_row(*(clip(row[i], w) for i, w in shown), key=key)
        if table.row_count:
            keys = [key for key, _ in rows]
            target = keys.index(selected) if selected in keys else cursor
            table.move_cursor(row=min(max(target, 0), table.row_count - 1))
        if section_id == SECTIONS[-1].id:
            self._width = self.size.width

    @staticmethod
    def _selected_key(table: DataTable[Any]) -> str | None:
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    # -- the selected row in full --------------------------------------------------------------

    @property
    def section(self) -> str:
        active = self.query_one(TabbedContent).active or "section-items"
        return active.removeprefix("section-")

    def _selected(self, section_id: str) -> Any:
        rows: dict[str, tuple[Any, ...]] = {}
        if self.view is not None:
            rows = {
                "items": self.view.items,
                "attempts": self.view.attempts,
                "sessions": self.view.status.sessions,
                "bans": self.view.bans,
                "as2": self.view.as2_messages,
            }
        table = self.query_one(f"#{section_id}", DataTable)
        found = rows.get(section_id, ())
        if not found or table.cursor_row >= len(found):
            return None
        return found[table.cursor_row]

    def _show_detail(self) -> None:
        pane = self.query_one("#detail-pane")
        tab = key_label(self.app, "activity.next_section")
        log = key_label(self.app, "activity.conversions")
        pane.border_title = f"Details · {tab}: next section · {log}: conversion log"
        selected = self._selected(self.section)
        detail = self.query_one("#detail", Static)
        if selected is None:
            detail.update(Text("Nothing here.", style="dim"))
        else:
            detail.update(self._describe(selected))

    def _describe(self, selected: Any) -> RenderableType:
        names = self.view.mailbox_names if self.view is not None else {}
        if isinstance(selected, As2Message):
            return as2_facts(selected, names.get(selected.mailbox_uuid, selected.mailbox_uuid))
        if isinstance(selected, ItemView):
            job = selected.job
            ref = "File" if job.kind is JobKind.FILE else "Envelope"
            return facts(
                ("State", f"{selected.label} · job {job.id} ({job.kind})"),
                ("Mailbox", f"{selected.mailbox_name} ({job.mailbox_uuid})"),
                (ref, job.ref),
                ("Changed", when(job.updated_at)),
                ("Error", job.last_error or "—"),
            )
        if isinstance(selected, AttemptView):
            record = selected.record
            job_id = f"{selected.job_id}" if selected.job_id is not None else ""
            return facts(
                ("Outcome", selected.label),
                ("Time", when(record.at)),
                ("Mailbox", f"{selected.mailbox_name} ({record.mailbox_uuid})"),
                ("Rule", record.rule),
                ("Envelope", record.envelope_uuid),
                ("File", record.file_name),
                ("Job", job_id),
                ("Error", record.error),
            )
        if isinstance(selected, BanView):
            ban = selected.ban
            return facts(
                ("Address", ban.address),
                ("Failures", f"{ban.failures} failed logins"),
                ("Banned at", when(ban.banned_at)),
                ("Time left", selected.label),
            )
        mailbox = str(selected.get("mailbox", ""))
        return facts(
            ("Mailbox", f"{names.get(mailbox, mailbox)} ({mailbox})"),
            ("Address", selected.get("address")),
            ("Since", selected.get("since")),
        )

    def on_resize(self) -> None:
        if self.view is not None:
            self._show(self.view)  # the flexible columns take the new width

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == self.section:
            self._show_detail()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.query_one(f"#{self.section}", DataTable).focus()
        self._show_detail()
        self.refresh_bindings()

    # -- actions -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("reprocess", "reprocess_all"):
            return self.section == "items"
        if action == "unban":
            return self.section == "bans"
        return True

    @guarded
    def action_back(self) -> None:
        self.dismiss(None)

    @guarded
    async def action_refresh(self) -> None:
        await self.refresh_data()

    @guarded
    def action_show_section(self, section_id: str) -> None:
        self.query_one(TabbedContent).active = f"section-{section_id}"

    @guarded
    def action_next_section(self, step: int) -> None:
        ids = [section.id for section in SECTIONS]
        self.action_show_section(ids[(ids.index(self.section) + step) % len(ids)])

    @guarded
    async def action_reprocess(self) -> None:
        item = self._selected("items")
        if not isinstance(item, ItemView):
            say(self.app, "No parked or retrying item is selected.")
            return
        await self.service.reprocess([item.job.id])
        say(self.app, f"Item {item.job.id} is back in the queue.")
        await self.refresh_data()

    @guarded
    def action_reprocess_all(self) -> None:
        parked = [i.job.id for i in self.view.items] if self.view is not None else []
        if not parked:
            say(self.app, "Nothing is parked or retrying.")
            return
        self.app.push_screen(
            ConfirmModal(
                f"Reprocess all {len(parked)} items now?",
                "Each starts again with fresh attempts.",
                yes_label="Reprocess",
            ),
            functools.partial(self._reprocess_answered, parked),
        )

    @guarded
    async def _reprocess_answered(self, ids: list[int], answer: bool | None) -> None:
        if answer:
            count = await self.service.reprocess(ids)
            say(self.app, f"{count} item(s) are back in the queue.")
            await self.refresh_data()

    @guarded
    def action_unban(self) -> None:
        ban = self._selected("bans")
        if not isinstance(ban, BanView):
            say(self.app, "No ban is selected.")
            return
        self.app.push_screen(
            ConfirmModal(
                f"Lift the ban on {ban.ban.address}?", "Its failed-login count starts again."
            ),
            functools.partial(self._unban_answered, ban.ban.address),
        )

    @guarded
    async def _unban_answered(self, address: str, answer: bool | None) -> None:
        if answer:
            await self.service.unban(address)
            say(self.app, f"{address} may log in again.")
            await self.refresh_data()

    def palette_commands(self) -> Iterable[SystemCommand]:
        def key(binding_id: str) -> str:
            return key_label(self.app, binding_id)

        commands: list[tuple[str, str, Any]] = [
            (
                "Reprocess item",
                f"The selected parked or retrying one ({key('activity.reprocess')})",
                self.action_reprocess,
            ),
            (
                "Reprocess all items",
                f"Asks first ({key('activity.reprocess_all')})",
                self.action_reprocess_all,
            ),
            (
                "Unban address",
                f"The selected SFTP ban ({key('activity.unban')})",
                self.action_unban,
            ),
            (
                "Refresh activity",
                f"Read everything again ({key('activity.refresh')})",
                self.action_refresh,
            ),
            (
                "Conversion log",
                f"Switch to every conversion attempt ({key('activity.conversions')})",
                self.app.action_conversions,  # type: ignore[attr-defined]
            ),
            ("Back to the page", key("activity.back"), self.action_back),
        ]
        for title, help_text, callback in commands:
            yield SystemCommand(title, help_text, callback)
