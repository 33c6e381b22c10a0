"""F4 Conversion log: filters narrow the list, a record's input and output are readable (binary
as hex, a payload above conversion.keep_bytes named as such), reprocess says what it queued
and what it skipped, and with a real engine a FAILED file reprocessed after the rule is fixed
comes back REPROCESSED; the page's rule counters follow the log."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static, TextArea

from core.bootstrap import init_data_dir
from core.engine.engine import Engine
from core.models import (
    ConversionFilter,
    ConversionStatus,
    Direction,
    IntegrationForm,
)
from core.service import Service
from core.sftp.folders import ensure_mailbox_root
from core.storage import conversions
from core.storage.conversions import NewConversion
from tests.engine.conftest import enable, engine, smtp_server
from tests.engine.test_customer_files import drop
from tests.engine.test_default_rules import eventually
from tests.rules.samples import BROKEN_AT_LINE_4, CSV_TO_ORDERS_1_0, ORDERS_CSV, out_rule
from tests.tui.conftest import make_app, screen_lines, settle, until, wait_for_page
from tui.app import DocbridgeApp
from tui.modals.confirm import ConfirmModal
from tui.modals.conversion_payload import ConversionPayloadModal
from tui.screens.activity import ActivityScreen
from tui.screens.conversions import PAGE_SIZE, ConversionsScreen, Filters
from tui.widgets.conversion_filters import NO_RULE
from tui.widgets.rule_table import RuleTable

__all__ = ["engine", "smtp_server"]  # the engine fixtures, for the end-to-end test

SMALL = (80, 24)
ENVELOPE_1 = "3f1d6c2a-7b8e-4c5d-9a0b-1e2f3a4b5c6d"
ENVELOPE_2 = "8a7b6c5d-4e3f-4a1b-8c9d-0e1f2a3b4c5d"
INVOICE_ENVELOPE = "c0ffee00-1234-4abc-9def-0123456789ab"
XLSX_HEAD = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + bytes(range(200))
OUTPUT_XML = b'<envelopes><envelope templateUuid="t">Order PO-1</envelope></envelopes>'


async def seed(service: Service) -> dict[str, str]:
    """Six records written straight to the log (no engine timing): OUT successes and failures
    of one rule in Purchasing, a file no rule took, an XLSX input, payloads above the keep
    bound, and an IN record of another mailbox by its default rule."""
    mailboxes = await service.list_mailboxes()
    purchasing, payable = mailboxes[0].uuid, mailboxes[1].uuid
    rule = await service.create_rule(purchasing, out_rule("Orders CSV", CSV_TO_ORDERS_1_0))
    keep = service.config.conversion.keep_bytes
    # A reprocessed OUT record is staged in its mailbox's folder (as the engine makes it).
    await asyncio.to_thread(ensure_mailbox_root, service.config.mailboxes_dir, purchasing)
    entries = [
        NewConversion(
            payable,
            Direction.IN,
            None,
            "default:copy",
            ConversionStatus.PROCESSED,
            envelope_uuid=INVOICE_ENVELOPE,
            file_name=f"inbox/{INVOICE_ENVELOPE}.xml",
            subject="Invoice 7",
        ),
        NewConversion(
            purchasing,
            Direction.OUT,
            rule.uuid,
            "Orders CSV",
            ConversionStatus.PROCESSED,
            envelope_uuid=f"{ENVELOPE_1},{ENVELOPE_2}",
            file_name="coutbox/orders.csv",
            subject="Order PO-1",
            input_name="orders.csv",
            input=ORDERS_CSV,
            output=OUTPUT_XML,
        ),
        NewConversion(
            purchasing,
            Direction.OUT,
            rule.uuid,
            "Orders CSV",
            ConversionStatus.FAILED,
            file_name="coutbox/broken.csv",
            error="Rule 'Orders CSV' failed: the conversion map, line 4: expected an expression",
            input_name="broken.csv",
            input=ORDERS_CSV,
        ),
        NewConversion(
            purchasing,
            Direction.OUT,
            None,
            "",
            ConversionStatus.FAILED,
            file_name="coutbox/nomatch.txt",
            error="No conversion rule matches this file.",
            input_name="nomatch.txt",
            input=b"hello\n",
        ),
        NewConversion(
            purchasing,
            Direction.OUT,
            rule.uuid,
            "Orders CSV",
            ConversionStatus.PROCESSED,
            file_name="coutbox/orders.xlsx",
            input_name="orders.xlsx",
            input=XLSX_HEAD,
            output=b"<envelopes>" + b" " * keep + b"</envelopes>",
        ),
        NewConversion(
            purchasing,
            Direction.OUT,
            rule.uuid,
            "Orders CSV",
            ConversionStatus.FAILED,
            file_name="coutbox/huge.csv",
            error="Rule 'Orders CSV' failed: too many rows",
            input_name="huge.csv",
            input=b"x" * (keep + 1),
        ),
    ]
    for entry in entries:
        await service.db.write(conversions.record, entry, keep)
    return {"purchasing": purchasing, "payable": payable, "rule": rule.uuid}


@asynccontextmanager
async def _opened(data_dir: Path) -> AsyncIterator[Service]:
    service = await Service.open(data_dir, actor="test@seed")
    try:
        yield service
    finally:
        await service.close()


def log_screen(pilot: Pilot[None]) -> ConversionsScreen:
    screen = pilot.app.screen
    assert isinstance(screen, ConversionsScreen)
    return screen


def files(pilot: Pilot[None]) -> list[str]:
    return [r.file_name for r in log_screen(pilot).records]


async def open_log(pilot: Pilot[None]) -> ConversionsScreen:
    await wait_for_page(pilot)
    await pilot.press("f4")
    await until(pilot, lambda: isinstance(pilot.app.screen, ConversionsScreen))
    screen = log_screen(pilot)
    await until(pilot, lambda: screen.loaded)
    await settle(pilot)
    return screen


async def test_f4_opens_the_page_mailboxs_log_and_the_filters_narrow_it(data_dir: Path) -> None:
    async with _opened(data_dir) as service:
        ids = await seed(service)
    app = make_app(data_dir)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_log(pilot)
        # The page's mailbox, newest first; the other mailbox's IN record is not listed.
        assert files(pilot) == [
            "coutbox/huge.csv",
            "coutbox/orders.xlsx",
            "coutbox/nomatch.txt",
            "coutbox/broken.csv",
            "coutbox/orders.csv",
        ]
        assert screen.query_one("#filter-mailbox", Select).value == ids["purchasing"]
        text = "\n".join(screen_lines(pilot))
        assert "Conversion log  5 records" in text
        assert "no rule" in text  # the file no rule took

        screen.query_one("#filter-status", Select).value = "FAILED"
        await until(pilot, lambda: len(files(pilot)) == 3)
        assert files(pilot) == ["coutbox/huge.csv", "coutbox/nomatch.txt", "coutbox/broken.csv"]

        await pilot.press("f")  # to the keyword
        assert isinstance(screen.focused, Input)
        for key in "broken":
            await pilot.press(key)
        await until(pilot, lambda: files(pilot) == ["coutbox/broken.csv"])
        await pilot.press("escape")  # leaves the field, stays on the log
        assert isinstance(screen.focused, DataTable)
        assert pilot.app.screen is screen

        screen.query_one("#filter-keyword", Input).value = ""
        screen.query_one("#filter-status", Select).clear()
        screen.query_one("#filter-mailbox", Select).clear()  # every mailbox
        await until(pilot, lambda: len(files(pilot)) == 6)
        assert files(pilot)[-1] == f"inbox/{INVOICE_ENVELOPE}.xml"
        screen.query_one("#filter-mailbox", Select).value = ids["payable"]
        await until(pilot, lambda: len(files(pilot)) == 1)
        await settle(pilot)
        assert "default:copy" in "\n".join(screen_lines(pilot))

        screen.query_one("#filter-mailbox", Select).value = ids["purchasing"]
        await until(pilot, lambda: len(files(pilot)) == 5)
        screen.query_one("#filter-rule", Select).value = ids["rule"]
        await until(pilot, lambda: len(files(pilot)) == 4)
        assert "coutbox/nomatch.txt" not in files(pilot)
        screen.query_one("#filter-rule", Select).value = NO_RULE  # what no rule took
        await until(pilot, lambda: files(pilot) == ["coutbox/nomatch.txt"])

        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(pilot.app.screen, ConversionsScreen)


async def test_view_shows_input_and_output_binary_as_hex_and_what_was_not_kept(
    data_dir: Path,
) -> None:
    async with _opened(data_dir) as service:
        await seed(service)
        keep = service.config.conversion.keep_bytes
    app = make_app(data_dir)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_log(pilot)

        async def view(file_name: str) -> tuple[str, str]:
            row = files(pilot).index(file_name)
            screen.query_one(DataTable).move_cursor(row=row)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(pilot.app.screen, ConversionPayloadModal))
            await settle(pilot)
            modal = pilot.app.screen
            texts = (
                modal.query_one("#payload-input", TextArea).text,
                modal.query_one("#payload-output", TextArea).text,
            )
            assert modal.query_one("#payload-input", TextArea).read_only
            await pilot.press("escape")
            await until(pilot, lambda: pilot.app.screen is screen)
            return texts

        data_in, data_out = await view("coutbox/orders.csv")
        assert data_in == ORDERS_CSV.decode()
        # Indented, one element a line: a map's output is often one long line.
        assert data_out.splitlines() == [
            "<envelopes>",
            '  <envelope templateUuid="t">Order PO-1</envelope>',
            "</envelopes>",
        ]

        data_in, data_out = await view("coutbox/orders.xlsx")
        assert data_in.startswith(f"Binary data, {len(XLSX_HEAD):,} bytes")
        assert "00000000  50 4b 03 04" in data_in
        size = keep + len(b"<envelopes></envelopes>")
        assert data_out == (f"Not kept ({size:,} bytes, above conversion.keep_bytes = {keep:,}).")

        data_in, _ = await view("coutbox/huge.csv")
        assert data_in.startswith(f"Not kept ({keep + 1:,} bytes")


async def test_reprocess_asks_then_says_what_was_queued_and_what_was_skipped(
    data_dir: Path,
) -> None:
    async with _opened(data_dir) as service:
        await seed(service)
    app = make_app(data_dir)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_log(pilot)
        table = screen.query_one(DataTable)
        table.move_cursor(row=files(pilot).index("coutbox/huge.csv"))
        await pilot.press("space")  # marks it and moves down
        assert table.cursor_row == 1
        table.move_cursor(row=files(pilot).index("coutbox/broken.csv"))
        await pilot.press("space")
        assert len(screen.marked) == 2
        await settle(pilot)
        assert "2 marked" in "\n".join(screen_lines(pilot))

        await pilot.press("r")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal))
        await pilot.press("y")
        await until(pilot, lambda: "Reprocess: 1 queued, 1 skipped" in screen.last_reprocess)
        assert screen.marked == set()
        toasts = [n.message for n in pilot.app._notifications]
        assert any("its input was not kept" in message for message in toasts)


def write_many(conn: sqlite3.Connection, mailbox: str, count: int, keep: int) -> None:
    for n in range(count):
        entry = NewConversion(
            mailbox,
            Direction.OUT,
            None,
            "",
            ConversionStatus.FAILED,
            file_name=f"coutbox/file-{n:03}.txt",
            error="No conversion rule matches this file.",
        )
        conversions.record(conn, entry, keep)


async def test_a_long_log_shows_a_page_and_more_on_request(data_dir: Path) -> None:
    async with _opened(data_dir) as service:
        mailbox = (await service.list_mailboxes())[0].uuid
        await service.db.write(write_many, mailbox, PAGE_SIZE + 5, 1024)
    app = make_app(data_dir)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_log(pilot)
        assert len(screen.records) == PAGE_SIZE
        assert files(pilot)[0] == f"coutbox/file-{PAGE_SIZE + 4:03}.txt"  # newest first
        text = "\n".join(screen_lines(pilot))
        assert f"{PAGE_SIZE} of {PAGE_SIZE + 5} records (m: more)" in text
        await pilot.press("m")
        await until(pilot, lambda: len(screen.records) == PAGE_SIZE + 5)
        assert files(pilot)[-1] == "coutbox/file-000.txt"
        assert screen.query_one(DataTable).row_count == PAGE_SIZE + 5


async def test_f4_and_f6_switch_between_the_log_and_activity(data_dir: Path) -> None:
    app = make_app(data_dir)
    async with app.run_test(size=SMALL) as pilot:
        await open_log(pilot)
        assert "No conversion yet" in "\n".join(screen_lines(pilot))
        await pilot.press("f6")
        await until(pilot, lambda: isinstance(pilot.app.screen, ActivityScreen))
        await settle(pilot)
        assert len(pilot.app.screen_stack) == 3  # default screen, page, activity: no pile-up
        await pilot.press("c")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConversionsScreen))
        await settle(pilot)
        assert len(pilot.app.screen_stack) == 3
        assert log_screen(pilot).filters == Filters()  # every mailbox, as Activity shows


async def test_a_failed_file_reprocessed_after_fixing_the_rule_comes_back_reprocessed(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    rule = await service.create_rule(mailbox, out_rule("Orders CSV", BROKEN_AT_LINE_4))
    await asyncio.to_thread(drop, root, "coutbox", "orders.csv", ORDERS_CSV)
    await asyncio.to_thread(drop, root, "coutbox", "stray.txt", b"no rule for me\n")
    engine.wake()

    async def both_failed() -> bool:
        query = ConversionFilter(mailbox_uuid=mailbox, status=ConversionStatus.FAILED)
        return await service.conversions.count(query) == 2

    await eventually(both_failed)
    await service.update_rule(rule.uuid, replace(rule.form, conversion_map=CSV_TO_ORDERS_1_0))
    # stray.txt, and the demo's incoming envelopes the default rule delivered.
    no_rule = await service.conversions.no_rule_count(mailbox)
    assert no_rule >= 1

    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        page = await wait_for_page(pilot)
        table = page.query_one(RuleTable)
        # The page's counters come from the log: OK 0, Failed 1, and what no rule took.
        assert [cell.plain for cell in table.get_row_at(0)][-2:] == ["0", "1"]
        counts = page.query_one("#rules-counts", Static)
        await until(pilot, lambda: f"No rule: {no_rule} " in str(counts.content))

        table.focus()  # from the rules table F4 opens the selected rule's log
        screen = await open_log(pilot)
        assert screen.filters.rule_uuid == rule.uuid
        assert files(pilot) == ["coutbox/orders.csv"]
        await pilot.press("r")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal))
        await pilot.press("y")
        await until(pilot, lambda: "1 queued, 0 skipped" in screen.last_reprocess)
        engine.wake()
        # The list reads itself again: the reprocessed attempt appears on top.
        await until(
            pilot,
            lambda: (
                [r.status for r in screen.records]
                == [ConversionStatus.REPROCESSED, ConversionStatus.FAILED]
            ),
            within_s=20,
        )
        await pilot.press("escape")
        await until(pilot, lambda: pilot.app.screen is page)
        await until(pilot, lambda: [c.plain for c in table.get_row_at(0)][-2:] == ["1", "1"])


# -- snapshots ---------------------------------------------------------------------------------

LARGE = (120, 40)
FIXED_NOW = "2025-01-15T09:30:00.000Z"
RULE_UUID = "5a1e0c3d-2b4f-4e6a-8c7d-9f0e1a2b3c4d"


@pytest.fixture
def seeded_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo account with the six records of ``seed``, at a pinned time and rule uuid."""
    monkeypatch.setenv("DOCBRIDGE_FIXED_NOW", FIXED_NOW)
    directory = tmp_path / "home"
    asyncio.run(init_data_dir(directory, with_demo=True, actor="snapshot"))

    async def setup() -> None:
        async with _opened(directory) as service:
            await seed(service)

    with monkeypatch.context() as patch:
        patch.setattr("core.service.uuid_module.uuid4", lambda: uuid.UUID(RULE_UUID))
        asyncio.run(setup())
    return directory


def snapshot_app(home: Path) -> DocbridgeApp:
    app = make_app(home)
    app.animation_level = "none"
    return app


def log_after(*keys: str) -> Any:
    async def run(pilot: Pilot[None]) -> None:
        screen = await open_log(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        await until(pilot, lambda: pilot.app.screen is screen or not keys)
        await settle(pilot)

    return run


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_snapshot_log(snap_compare: Any, seeded_home: Path, size: tuple[int, int]) -> None:
    """F4 from the page: its mailbox's records newest first, the second one marked (space),
    the cursor on the third (a file no rule took) with its details; at 120 the envelope and
    error columns too."""
    assert snap_compare(
        snapshot_app(seeded_home), terminal_size=size, run_before=log_after("down", "space")
    )


def test_snapshot_view_binary_input(snap_compare: Any, seeded_home: Path) -> None:
    """The XLSX record's input as a hex head, its output named as not kept (above
    conversion.keep_bytes), at 80x24."""

    async def run(pilot: Pilot[None]) -> None:
        screen = await open_log(pilot)
        screen.query_one(DataTable).move_cursor(row=files(pilot).index("coutbox/orders.xlsx"))
        await pilot.press("v")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConversionPayloadModal))
        await settle(pilot)

    assert snap_compare(snapshot_app(seeded_home), terminal_size=SMALL, run_before=run)


async def test_the_tuis_own_engine_converts_and_the_log_shows_it(
    data_dir: Path, service: Service
) -> None:
    """The engine run inside the app spawns its transform pool under Textual's stderr capture
    (every OUT file once failed there with 'bad value(s) in fds_to_keep')."""
    (data_dir / "docbridge.toml").write_text(
        "[sftp]\nport = 0\n[as2]\nport = 0\n", encoding="utf-8"
    )
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    await service.create_rule(mailbox, out_rule("Orders CSV", CSV_TO_ORDERS_1_0))
    await asyncio.to_thread(drop, root, "coutbox", "orders.csv", ORDERS_CSV)
    app = DocbridgeApp(
        data_dir, actor="test@tui", cursor_blink=False, poll_engine=False, run_engine=True
    )
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_log(pilot)
        await until(pilot, lambda: app.engine is not None)
        app.engine.wake()  # type: ignore[union-attr]
        await until(pilot, lambda: "coutbox/orders.csv" in files(pilot), within_s=30)
        [record] = [r for r in screen.records if r.file_name == "coutbox/orders.csv"]
        assert record.status is ConversionStatus.PROCESSED, record.error
