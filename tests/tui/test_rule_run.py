"""The rule form's Run (ctrl+r), its Result, and Save gated by a successful run (issue 9)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Checkbox, Input, Select, TextArea

from core.bootstrap import init_data_dir
from core.models import ConversionStatus, Direction
from core.service import Service
from core.storage import conversions
from core.storage.conversions import NewConversion
from tests.rules.samples import (
    BROKEN_AT_LINE_4,
    CSV_TO_ORDERS_2_0,
    IDENTITY_MAP,
    ORDER_TO_CSV_1_0,
    ORDERS_CSV,
    PURCHASE_ORDER,
    in_rule,
    out_rule,
)
from tests.tui.conftest import make_app, settle, until, wait_for_page
from tui.app import DocbridgeApp
from tui.modals.confirm import ConfirmModal
from tui.screens.integrations import IntegrationsScreen
from tui.screens.rule_form import RuleFormScreen
from tui.widgets.example_source import ExampleSource
from tui.widgets.rule_result import RuleResult


async def new_form(pilot) -> RuleFormScreen:  # type: ignore[no-untyped-def]
    await wait_for_page(pilot)
    await pilot.press("ctrl+n")
    await settle(pilot)
    form = pilot.app.screen
    assert isinstance(form, RuleFormScreen)
    return form


def save_enabled(form: RuleFormScreen) -> bool:
    return not form.query_one("#rule-save", Button).disabled


def hint(form: RuleFormScreen) -> str:
    return str(form.query_one("#rule-save-hint").render())


async def run(pilot, form: RuleFormScreen) -> RuleResult:  # type: ignore[no-untyped-def]
    await pilot.press("ctrl+r")
    panel = form.query_one(RuleResult)
    await until(pilot, lambda: panel.result is not None and not form.running, within_s=60)
    await settle(pilot)
    return panel


async def test_out_rule_runs_on_a_csv_loaded_by_path_then_saves(
    data_dir: Path, service: Service, tmp_path: Path
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    source = tmp_path / "orders_2026.csv"
    source.write_bytes(ORDERS_CSV)
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await new_form(pilot)
        form.query_one("#rule-name", Input).value = "Orders from ERP"
        form.query_one("#rule-direction", Select).value = Direction.OUT.value
        await settle(pilot)
        form.query_one("#rule-template", Select).value = PURCHASE_ORDER
        form.query_one("#rule-match_pattern", Input).value = r"\.csv$"
        form.query_one("#rule-multiple", Checkbox).value = True
        form.query_one("#rule-conversion_map", TextArea).text = CSV_TO_ORDERS_2_0
        await settle(pilot)
        assert not save_enabled(form)
        assert "Run the rule (ctrl+r) to enable Save" in hint(form)

        # A path that is not there: Run says why, under the field and in the Result.
        form.query_one("#rule-example_source", Input).value = str(tmp_path / "missing.csv")
        panel = await run(pilot, form)
        assert panel.status_text.startswith("✗ Run failed: Could not read the example source")
        assert "missing.csv" in str(form.query_one("#rule-example-error").render())
        assert form.query_one("#rule-example-error").display and not save_enabled(form)
        form.query_one("#rule-example_source", Input).value = ""

        # The path typed with completion: the folder's only file is suggested, → accepts it.
        form.query_one("#rule-example_source", Input).focus()
        await pilot.press(*f"{tmp_path}/ord")
        await settle(pilot)
        await pilot.press("right", "enter")
        view = form.query_one("#rule-source_view", TextArea)
        await until(pilot, lambda: "<xml>" in view.text)
        assert form.query_one("#rule-example_source", Input).value == str(source)
        assert "delimiter ';'" in str(form.query_one("#rule-source_details").render())

        await pilot.press("ctrl+s")  # not run yet: says so, stores nothing
        await settle(pilot)
        assert app.screen is form and await service.list_rules(mailbox.uuid) == []
        assert any("Run the rule" in n.message for n in app._notifications)

        panel = await run(pilot, form)
        assert "✓ 2 envelopes" in panel.status_text and "delimiter ';'" in panel.status_text
        assert panel.output_text.count("<envelope ") == 2 and "PO-2" in panel.output_text
        assert save_enabled(form) and hint(form) == ""

        area = form.query_one("#rule-conversion_map", TextArea)
        area.focus()
        area.move_cursor(area.document.end)
        await pilot.press("enter")  # any edit of the map needs a new run
        await settle(pilot)
        assert not save_enabled(form) and "to enable Save" in hint(form)
        assert "Run again" in panel.status_text
        await pilot.press("ctrl+z")  # back to the state that ran
        await settle(pilot)
        assert save_enabled(form) and "Run again" not in panel.status_text

        form.query_one("#rule-name", Input).value = "Orders from the ERP"  # renaming keeps it
        form.query_one("#rule-enabled", Checkbox).value = True  # so does switching it on
        await settle(pilot)
        assert save_enabled(form)
        form.query_one("#rule-match_pattern", Input).value = r"^orders_.*\.csv$"
        await settle(pilot)
        assert not save_enabled(form)
        await run(pilot, form)
        assert save_enabled(form)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, IntegrationsScreen)
    [rule] = await service.list_rules(mailbox.uuid)
    assert rule.name == "Orders from the ERP" and rule.enabled
    assert rule.form.conversion_map == CSV_TO_ORDERS_2_0
    assert rule.form.example_source == ORDERS_CSV
    assert rule.form.example_source_name == str(source)


async def test_in_rule_runs_on_the_generated_example_envelope(
    data_dir: Path, service: Service
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await new_form(pilot)
        assert not form.query_one("#rule-skeleton").display  # a skeleton is an OUT map
        form.query_one("#rule-name", Input).value = "Orders to CSV"
        form.query_one("#rule-template", Select).value = PURCHASE_ORDER
        form.query_one("#rule-naming_pattern", Input).value = "{envelopeUuid}.csv"
        form.query_one("#rule-conversion_map", TextArea).text = ORDER_TO_CSV_1_0
        example = form.query_one("#rule-example_envelope", TextArea)
        # Generated for the first template, then again for the one chosen (not edited yet).
        await until(pilot, lambda: f'templateUuid="{PURCHASE_ORDER}"' in example.text)
        envelope_uuid = re.search(r' uuid="([0-9a-f-]{36})"', example.text)
        assert envelope_uuid is not None

        panel = await run(pilot, form)
        assert f"File name: {envelope_uuid[1]}.csv" in panel.status_text
        assert panel.output_text == "orderNumber example;currency example;1\n"
        assert save_enabled(form)

        # The example is editable; an edit needs a new run.
        example.focus()
        example.move_cursor((0, 0))
        await pilot.press("end", "enter")
        await settle(pilot)
        assert not save_enabled(form)
        await run(pilot, form)
        assert save_enabled(form)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, IntegrationsScreen)
    [rule] = await service.list_rules(mailbox.uuid)
    assert rule.form.direction is Direction.IN
    assert rule.form.example_source.decode().startswith("<?xml")
    assert b"orderNumber example" in rule.form.example_source


async def test_a_broken_map_shows_its_line_and_keeps_save_disabled(
    data_dir: Path, service: Service
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await new_form(pilot)
        form.query_one("#rule-name", Input).value = "Broken"
        form.query_one("#rule-template", Select).value = PURCHASE_ORDER
        form.query_one("#rule-conversion_map", TextArea).text = BROKEN_AT_LINE_4
        example = form.query_one("#rule-example_envelope", TextArea)
        await until(pilot, lambda: bool(example.text))
        panel = await run(pilot, form)
        assert panel.status_text.startswith("✗") and "line 4" in panel.status_text
        assert panel.query_one("#rule-result-status").has_class("-error")
        assert not panel.query_one("#rule-result-text").display
        assert not save_enabled(form)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is form
        # Another map: the failure shown is of the state that ran, and says so.
        form.query_one("#rule-conversion_map", TextArea).text = IDENTITY_MAP
        await settle(pilot)
        assert "(the form changed since: Run again)" in panel.status_text
    assert await service.list_rules(mailbox.uuid) == []


async def test_an_opened_rule_saves_unchanged_and_its_clone_needs_a_run(
    data_dir: Path, service: Service
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    await service.create_rule(mailbox.uuid, in_rule("Stored", enabled=False))
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_page(pilot)
        await pilot.press("5", "enter")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, RuleFormScreen)
        example = form.query_one("#rule-example_envelope", TextArea)
        await until(pilot, lambda: bool(example.text))  # the stored rule had no example
        assert save_enabled(form) and not form.dirty  # nothing changed: nothing to prove
        form.query_one("#rule-naming_pattern", Input).value = "{envelopeUuid}.txt"
        await settle(pilot)
        assert not save_enabled(form)
        form.query_one("#rule-naming_pattern", Input).value = "{envelopeUuid}.csv"
        await settle(pilot)
        assert save_enabled(form)

        await pilot.press("f5")  # the clone is a new rule: Run first
        await settle(pilot)
        clone = app.screen
        assert isinstance(clone, RuleFormScreen) and clone is not form
        assert not save_enabled(clone)
        await run(pilot, clone)
        assert save_enabled(clone)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, IntegrationsScreen)
    names = [r.name for r in await service.list_rules(mailbox.uuid)]
    assert names == ["Stored", "Stored (copy)"]


# -- snapshots: the rule form with a Result and with an error -----------------------------------

SMALL = (80, 24)
LARGE = (120, 40)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo account with a fixed clock (as tests/tui/test_snapshots.py pins it)."""
    monkeypatch.setenv("DOCBRIDGE_FIXED_NOW", "2025-01-15T09:30:00.000Z")
    directory = tmp_path / "home"
    asyncio.run(init_data_dir(directory, with_demo=True, actor="snapshot"))
    return directory


def with_out_rule(home: Path, conversion_map: str) -> None:
    """An OUT rule whose example is kept with it (a name, not a path: the snapshot is stable)."""

    async def setup() -> None:
        service = await Service.open(home, actor="snapshot")
        try:
            mailbox = (await service.list_mailboxes())[0]
            form = out_rule(
                "Orders from ERP",
                conversion_map,
                example_source=ORDERS_CSV,
                example_source_name="orders_2026-11.csv",
            )
            await service.create_rule(mailbox.uuid, form)
        finally:
            await service.close()

    asyncio.run(setup())


async def open_and_run(pilot: Pilot[None]) -> None:
    await wait_for_page(pilot)
    await pilot.press("5", "enter")
    await settle(pilot)
    form = pilot.app.screen
    assert isinstance(form, RuleFormScreen)
    await run(pilot, form)


def snapshot_app(home: Path) -> DocbridgeApp:
    app = make_app(home)
    app.animation_level = "none"
    return app


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_rule_form_with_a_result(snap_compare: Any, home: Path, size: tuple[int, int]) -> None:
    """After ctrl+r: the envelopes the XSLT 2.0 map made from the CSV, Save enabled."""
    with_out_rule(home, CSV_TO_ORDERS_2_0)
    assert snap_compare(snapshot_app(home), terminal_size=size, run_before=open_and_run)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_rule_form_with_an_error(snap_compare: Any, home: Path, size: tuple[int, int]) -> None:
    """After ctrl+r on a broken map: the error with its line, Save stays disabled."""
    with_out_rule(home, BROKEN_AT_LINE_4)
    assert snap_compare(snapshot_app(home), terminal_size=size, run_before=open_and_run)


async def test_skeleton_and_an_example_picked_from_the_mailbox(
    data_dir: Path, service: Service
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    folder = service.config.mailboxes_dir / mailbox.uuid
    (folder / "coutbox").mkdir(parents=True, exist_ok=True)
    (folder / "error").mkdir(parents=True, exist_ok=True)
    (folder / "coutbox" / "orders_7.csv").write_bytes(ORDERS_CSV)
    (folder / "error" / "bad.csv").write_bytes(b"a;b\n")
    (folder / "error" / "bad.csv.error.txt").write_text("why it failed")
    recent = NewConversion(
        mailbox.uuid,
        Direction.OUT,
        None,
        "",
        ConversionStatus.FAILED,
        file_name="coutbox/recent_orders.csv",
        error="No conversion rule matches this file.",
        input_name="recent_orders.csv",
        input=ORDERS_CSV,
    )
    await service.db.write(conversions.record, recent, service.config.conversion.keep_bytes)
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await new_form(pilot)
        form.query_one("#rule-direction", Select).value = Direction.OUT.value
        await settle(pilot)
        form.query_one("#rule-template", Select).value = PURCHASE_ORDER
        await settle(pilot)

        area = form.query_one("#rule-conversion_map", TextArea)
        form.query_one("#rule-skeleton", Button).press()  # an empty map: written at once
        await until(pilot, lambda: 'version="2.0"' in area.text)
        assert 'name="orderNumber"' in area.text
        area.text = "<xsl:stylesheet/>"
        form.query_one("#rule-skeleton", Button).press()  # a written map: asks first
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")
        await settle(pilot)
        assert area.text == "<xsl:stylesheet/>"

        picker = form.query_one("#rule-example_pick", Select)
        await until(pilot, lambda: len(picker._options) > 1)
        labels = [str(label) for label, _ in picker._options]
        assert "coutbox/orders_7.csv" in labels and "error/bad.csv" in labels
        assert not any(label.endswith(".error.txt") for label in labels)
        picker.value = f"file:{folder / 'coutbox' / 'orders_7.csv'}"
        view = form.query_one("#rule-source_view", TextArea)
        await until(pilot, lambda: "orderNumber" in view.text)
        assert form.query_one("#rule-example_source", Input).value.endswith("orders_7.csv")

        [(label, value)] = [(lb, v) for lb, v in picker._options if "recent_orders" in str(lb)]
        assert str(label).startswith("recent: recent_orders.csv")
        view.load_text("")
        picker.value = value  # a recent conversion's kept input
        await until(pilot, lambda: "orderNumber" in view.text)
        assert form.query_one("#rule-example_source", Input).value == "recent_orders.csv"
        source = form.query_one(ExampleSource)
        assert source.example.data == ORDERS_CSV and not source.needs_loading


async def test_a_second_run_while_one_is_in_progress_is_ignored(
    data_dir: Path, service: Service
) -> None:
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await new_form(pilot)
        form.query_one("#rule-name", Input).value = "Twice"
        form.query_one("#rule-conversion_map", TextArea).text = IDENTITY_MAP
        example = form.query_one("#rule-example_envelope", TextArea)
        await until(pilot, lambda: bool(example.text))
        form.action_run()
        assert form.running and "Running" in form.query_one(RuleResult).status_text
        form.action_run()  # ignored, with a notice
        await until(pilot, lambda: any("in progress" in n.message for n in app._notifications))
        await until(pilot, lambda: not form.running, within_s=60)
        await settle(pilot)
        assert save_enabled(form)
