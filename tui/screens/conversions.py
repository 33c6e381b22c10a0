"""F4: the conversion log (issue 9) — every attempt to convert, newest first.

Filters (mailbox, rule, status, a keyword in the file name, subject, envelope uuid or rule name)
apply as they change, in a worker that a newer change replaces. The selected record is shown in
full under the table; its kept input and output open read-only (enter or v). Records marked with
space (or else the selected one) are reprocessed after a question; the answer says what was
queued and what was skipped, and why. Everything comes from the service's conversion desk; the
list is read again every two seconds while the screen is in front, and a failing read is reported
once, named in the summary line while it lasts.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Select, Static

from core.models import (
    ConversionFilter,
    ConversionRecord,
    Mailbox,
)
from core.service import Service
from tui.errors import guarded, report_error, run_guarded
from tui.keys import bindings, key_label
from tui.modals.confirm import ConfirmModal
from tui.modals.conversion_payload import ConversionPayloadModal
from tui.toast import say
from tui.widgets.conversion_cells import cells, columns_for, details, readable
from tui.widgets.conversion_filters import NO_RULE, ConversionFilterBar, Filters

REFRESH_SECONDS = 2.0
PAGE_SIZE = 200


class ConversionsScreen(Screen[None]):
    CSS_PATH = "conversions.tcss"
    BINDINGS = bindings(
        "conversions.back",
        "conversions.view",
        "conversions.mark",
        "conversions.reprocess",
        "conversions.more",
        "conversions.filters",
        "conversions.refresh",
    )

    def __init__(self, service: Service, filters: Filters | None = None) -> None:
        super().__init__(id="conversions")
        self.service = service
        self.filters = filters or Filters()
        self.limit = PAGE_SIZE
        self.records: list[ConversionRecord] = []
        self.total = 0
        self.marked: set[int] = set()
        self.mailboxes: list[Mailbox] = []
        self.fault: str | None = None
        self.last_reprocess: str = ""
        self.loaded = False
        self._shown: tuple[Any, ...] | None = None  # what the table shows (to skip a repaint)

    def compose(self) -> ComposeResult:
        yield Static(id="conversions-summary")
        yield ConversionFilterBar(self.filters, id="conversions-filters")
        yield DataTable(id="conversions-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="conversion-detail-pane"):
            yield Static(id="conversion-detail")
        yield Footer()

    async def on_mount(self) -> None:
        self.query_one("#conversion-detail-pane").can_focus = False
        self.query_one(DataTable).focus()
        await self._load_choices()
        await self.refresh_data()
        self.loaded = True
        self.set_interval(REFRESH_SECONDS, self._tick)

    # -- filters -------------------------------------------------------------------------------

    async def _load_choices(self) -> None:
        self.mailboxes = await self.service.list_mailboxes()
        rules = {m.uuid: await self.service.list_rules(m.uuid) for m in self.mailboxes}
        bar = self.query_one(ConversionFilterBar)
        bar.set_choices(self.mailboxes, rules)
        self.filters = bar.filters  # a rule of another mailbox is no filter

    @property
    def mailbox_names(self) -> dict[str, str]:
        return {m.uuid: m.name for m in self.mailboxes}

    @on(ConversionFilterBar.Changed)
    def _filters_edited(self, event: ConversionFilterBar.Changed) -> None:
        event.stop()
        self.filters = event.filters
        self._filters_changed()

    @on(Input.Submitted, "#filter-keyword")
    def _keyword_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one(DataTable).focus()

    def _filters_changed(self) -> None:
        self.limit = PAGE_SIZE
        # A newer change replaces a read still running (exclusive), so typing never queues.
        self.run_worker(self._reload, group="conversions-load", exclusive=True, exit_on_error=False)

    @guarded
    async def _reload(self) -> None:
        await self.refresh_data()

    def conversion_filter(self) -> ConversionFilter:
        f = self.filters
        return ConversionFilter(
            mailbox_uuid=f.mailbox_uuid,
            rule_uuid=None if f.rule_uuid == NO_RULE else f.rule_uuid,
            no_rule=f.rule_uuid == NO_RULE,
            status=f.status,
            keyword=f.keyword,
            limit=self.limit,
        )

    # -- reading -------------------------------------------------------------------------------

    @guarded
    async def _tick(self) -> None:
        if self.app.screen is not self:  # a dialog is open: wait for it
            return
        await self.refresh_data()

    async def refresh_data(self) -> None:
        query = self.conversion_filter()
        try:
            records = await self.service.conversions.records(query)
            total = await self.service.conversions.count(query)
        except Exception as error:  # every kind is reported; none ends the app
            self._refresh_failed(error)
            return
        if query != self.conversion_filter():
            return  # the filters changed meanwhile: a newer read shows its answer
        self.fault = None
        self.records, self.total = records, total
        self._show()

    def _refresh_failed(self, error: Exception) -> None:
        fault = f"{type(error).__name__}: {error}"
        if fault != self.fault:  # a repeating error is reported once, then named
            self.fault = fault
            report_error(self.app, error)
        self._show_summary()

    def _show(self) -> None:
        self._show_summary()
        table = self.query_one(DataTable)
        width = self.size.width or 80
        shown = columns_for(width, with_mailbox=self.filters.mailbox_uuid is None)
        state = (width, shown, tuple(self.records), frozenset(self.marked))
        if state == self._shown:
            return
        self._shown = state
        selected = self._selected_key(table)
        cursor = table.cursor_row
        table.clear(columns=True)
        for column, size in shown:
            table.add_column(column.label, width=size, key=column.key)
        names = self.mailbox_names
        for record in self.records:
            name = names.get(record.mailbox_uuid, record.mailbox_uuid[:8])
            table.add_row(*cells(record, name, record.id in self.marked, shown), key=str(record.id))
        if table.row_count:
            keys = [str(r.id) for r in self.records]
            target = keys.index(selected) if selected in keys else cursor
            table.move_cursor(row=min(max(target, 0), table.row_count - 1))
        self._show_detail()

    def _show_summary(self) -> None:
        text = Text()
        if self.fault is not None:
            text.append("Refresh failed: ", style="bold red")
            text.append(f"{self.fault} (trying again every {REFRESH_SECONDS:g} s)\n")
        text.append("Conversion log", style="bold")
        shown = len(self.records)
        if self.total > shown:
            more = key_label(self.app, "conversions.more")
            text.append(f"  {shown:,} of {self.total:,} records ({more}: more)")
        else:
            text.append(f"  {self.total:,} record{'s' if self.total != 1 else ''}")
        if self.marked:
            text.append(f"  {len(self.marked)} marked", style="bold")
        if self.last_reprocess:
            text.append(f"  {self.last_reprocess}")
        self.query_one("#conversions-summary", Static).update(text)

    @staticmethod
    def _selected_key(table: DataTable[Any]) -> str | None:
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    # -- the selected record -------------------------------------------------------------------

    def selected(self) -> ConversionRecord | None:
        table = self.query_one(DataTable)
        if not self.records or table.cursor_row >= len(self.records):
            return None
        return self.records[table.cursor_row]

    def _show_detail(self) -> None:
        pane = self.query_one("#conversion-detail-pane")
        view, mark = (
            key_label(self.app, "conversions.view"),
            key_label(self.app, "conversions.mark"),
        )
        pane.border_title = f"Record · {view}: input and output · {mark}: mark"
        record = self.selected()
        detail = self.query_one("#conversion-detail", Static)
        if record is None:
            detail.update(Text(self._empty_text(), style="dim"))
        else:
            name = self.mailbox_names.get(record.mailbox_uuid, record.mailbox_uuid)
            detail.update(details(record, name, self.service.config.conversion.keep_bytes))

    def _empty_text(self) -> str:
        if self.filters.narrowing:
            return "No record matches these filters."
        return (
            "No conversion yet. Each file a rule converts (or fails to) is recorded here, with "
            "its input and output."
        )

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_view()

    def on_resize(self) -> None:
        if self.loaded:
            self._show()

    # -- actions -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("mark", "view", "more"):
            return isinstance(self.focused, DataTable)  # space and letters type in the keyword
        return True

    @guarded
    def action_back(self) -> None:
        if isinstance(self.focused, Input | Select):
            self.query_one(DataTable).focus()  # escape leaves a filter first
            return
        self.dismiss(None)

    @guarded
    def action_filters(self) -> None:
        self.query_one(ConversionFilterBar).focus_keyword()

    @guarded
    async def action_refresh(self) -> None:
        await self.refresh_data()

    @guarded
    async def action_more(self) -> None:
        if self.total <= len(self.records):
            say(self.app, "Every matching record is shown.")
            return
        self.limit += PAGE_SIZE
        await self.refresh_data()

    @guarded
    def action_mark(self) -> None:
        record = self.selected()
        if record is None:
            return
        self.marked ^= {record.id}
        self._show()
        table = self.query_one(DataTable)
        table.move_cursor(row=min(table.cursor_row + 1, table.row_count - 1))

    @guarded
    def action_view(self) -> None:
        record = self.selected()
        if record is None:
            say(self.app, "No record is selected.")
            return
        run_guarded(self, self._open_payload(record), group="conversions-view")

    async def _open_payload(self, record: ConversionRecord) -> None:
        payload = await self.service.conversions.payload(record.id)
        payload = await asyncio.to_thread(readable, payload)
        keep = self.service.config.conversion.keep_bytes
        self.app.push_screen(ConversionPayloadModal(record, payload, keep))

    @guarded
    def action_reprocess(self) -> None:
        ids = sorted(self.marked, reverse=True)
        if not ids:
            record = self.selected()
            if record is None:
                say(self.app, "No record is selected.")
                return
            ids = [record.id]
        what = f"record {ids[0]}" if len(ids) == 1 else f"{len(ids)} records"
        self.app.push_screen(
            ConfirmModal(
                f"Reprocess {what}?",
                "Each input runs through the rules again; a success is logged as REPROCESSED.",
                yes_label="Reprocess",
            ),
            functools.partial(self._reprocess_answered, ids),
        )

    @guarded
    async def _reprocess_answered(self, ids: list[int], answer: bool | None) -> None:
        if not answer:
            return
        result = await self.service.conversions.reprocess(ids)
        self.marked -= set(ids)
        self.last_reprocess = (
            f"Reprocess: {len(result.queued)} queued, {len(result.skipped)} skipped"
        )
        message = f"{len(result.queued)} record(s) queued again."
        if result.skipped:
            reasons = "; ".join(f"{i}: {why}" for i, why in result.skipped)
            message += f" Skipped {len(result.skipped)}: {reasons}"
        say(
            self.app,
            message,
            title="Reprocess",
            severity="warning" if result.skipped else "information",
            timeout=15 if result.skipped else None,
        )
        await self.refresh_data()

    def palette_commands(self) -> Iterable[SystemCommand]:
        def key(binding_id: str) -> str:
            return key_label(self.app, binding_id)

        commands: list[tuple[str, str, Any]] = [
            (
                "View input and output",
                f"Of the selected record ({key('conversions.view')})",
                self.action_view,
            ),
            (
                "Reprocess records",
                f"The marked ones, else the selected one; asks first "
                f"({key('conversions.reprocess')})",
                self.action_reprocess,
            ),
            ("Filter the log", key("conversions.filters"), self.action_filters),
            ("Refresh the log", key("conversions.refresh"), self.action_refresh),
            ("Back", key("conversions.back"), self.action_back),
        ]
        for title, help_text, callback in commands:
            yield SystemCommand(title, help_text, callback)


def open_conversions(app: App[Any], service: Service, *, from_page: bool = True) -> None:
    """Open the log: from the page for its mailbox (from the rules table: for the selected
    rule), else for every mailbox; the page's rule counters are read again when it closes."""
    from tui.page.rules import RulesBlock
    from tui.screens.integrations import IntegrationsScreen

    page = next((s for s in app.screen_stack if isinstance(s, IntegrationsScreen)), None)
    filters = Filters()
    block: RulesBlock | None = None
    if page is not None:
        block = page.query_one(RulesBlock)
    if page is not None and block is not None and from_page:
        filters = Filters(mailbox_uuid=page.state.mailbox.uuid)
        if app.screen is page and block.has_focus_within:
            rule = block.selected()
            if rule is not None:
                filters = replace(filters, rule_uuid=rule.uuid)

    def closed(_: None) -> None:
        if block is not None and block.is_mounted:
            block.refresh_counters_soon()

    app.push_screen(ConversionsScreen(service, filters), closed)
