"""F6 Activity at 80x24: states a person reads, the selected row in full, every section reachable
from the keyboard, and a failing refresh that never ends the app. Against a real store and, where
it matters, a real engine."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

import tui.screens.activity as activity_module
from core.clock import unix_now, utc_now
from core.config import load_config
from core.engine.engine import Engine
from core.errors import DocbridgeError
from core.models import Ban, Job, JobKind
from core.service import Service
from core.storage import bans, jobs, logs
from core.storage.connection import Tx
from tests.engine.conftest import FAST, enable_undeliverable
from tests.engine.test_default_rules import eventually
from tests.tui.conftest import make_app, screen_lines, settle, until, wait_for_page
from tui.app import LOG_FILE
from tui.modals.error import ErrorModal
from tui.screens.activity import ActivityScreen

SMALL = (80, 24)
PARKED_ENVELOPE = "5f0c2a8e-3b7d-4e61-9a42-d1c08e7b6f13"
RETRYING_ENVELOPE = "a93e4d17-0c25-4f8b-b6e2-7d51c9f0a284"
PARKED_ERROR = (
    "Delivery over AS2 is not available yet in this version. The partner "
    "https://as2.partner.example.com:8444/as2/HttpReceiver was not contacted; switch the "
    "integration to SFTP or reprocess after upgrading."
)
RETRY_ERROR = "Cannot write to inbox/: [Errno 28] No space left on device"
BANNED = "192.0.2.7"


def write_troubles(tx: Tx, mailbox: str) -> None:
    """What the engine leaves behind, written directly (no timing): one envelope parked after
    8 tries with a long error, one failed once and due again in 40 s, an address banned for 10
    more minutes. Times follow core.clock, which snapshots pin."""
    policy = jobs.RetryPolicy()
    now = unix_now()
    for ref in (PARKED_ENVELOPE, RETRYING_ENVELOPE):
        jobs.enqueue(tx, JobKind.ENVELOPE, ref, mailbox)
    found = jobs.find_jobs(
        tx, {(JobKind.ENVELOPE, PARKED_ENVELOPE), (JobKind.ENVELOPE, RETRYING_ENVELOPE)}
    )
    parked = found[(JobKind.ENVELOPE, PARKED_ENVELOPE)]
    for attempt in range(1, policy.max_attempts + 1):
        job = dataclasses.replace(parked, attempts=attempt)
        _claimed(tx, job)
        state = jobs.fail(tx, job, PARKED_ERROR, policy)
        logs.append_activity(
            tx, mailbox, "default:copy", state, envelope_uuid=parked.ref, error=PARKED_ERROR
        )
    retrying = found[(JobKind.ENVELOPE, RETRYING_ENVELOPE)]
    job = dataclasses.replace(retrying, attempts=1)
    _claimed(tx, job)
    state = jobs.fail(tx, job, RETRY_ERROR, policy)
    logs.append_activity(
        tx, mailbox, "default:copy", state, envelope_uuid=retrying.ref, error=RETRY_ERROR
    )
    # The due time follows the clock (snapshots pin it).
    tx.execute("UPDATE jobs SET next_attempt_at = ? WHERE id = ?", (now + 40, retrying.id))
    bans.upsert_ban(tx, Ban(BANNED, 5, utc_now(), now + 600))


def _claimed(tx: Tx, job: Job) -> None:
    """As the engine's claim leaves it: running, at this attempt (its end is fenced by it)."""
    tx.execute(
        "UPDATE jobs SET state = 'running', attempts = ? WHERE id = ?", (job.attempts, job.id)
    )


async def troubles(service: Service) -> str:
    mailbox = (await service.list_mailboxes())[0].uuid
    await service.db.write(write_troubles, mailbox)
    return mailbox


async def park_logistics(service: Service, data_dir: Path) -> str:
    """Logistics's inbox/ cannot be written: its envelopes end parked."""
    logistics = await enable_undeliverable(service, data_dir, "Logistics")
    engine = Engine(await asyncio.to_thread(load_config, data_dir), FAST)
    await engine.start()
    try:

        async def parked() -> bool:
            return len(await service.list_jobs(("parked",))) == 3

        await eventually(parked)
    finally:
        await engine.stop()
    return logistics


async def open_activity(pilot: Pilot[None]) -> ActivityScreen:
    await wait_for_page(pilot)
    await pilot.press("f6")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ActivityScreen)
    return screen


def cells(table: DataTable[Any]) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def summary(screen: ActivityScreen) -> str:
    return str(screen.query_one("#activity-summary", Static).render())


# -- states and the detail pane ----------------------------------------------------------------


async def test_activity_lists_parked_items_and_reprocesses_the_selected_one(
    data_dir: Path, service: Service
) -> None:
    logistics = await park_logistics(service, data_dir)
    first = (await service.list_jobs(("parked",)))[0]
    async with make_app(data_dir).run_test(size=SMALL) as pilot:
        screen = await open_activity(pilot)
        items = screen.query_one("#items", DataTable)
        assert items.row_count == 3
        row = cells(items)[0]
        assert row[0] == str(first.id)
        assert row[1] == "parked after 3/3"  # FAST parks after three tries
        assert row[2] == "Logistics"
        assert row[4].startswith("Cannot write to inbox")  # cut to the column's width
        detail = "\n".join(screen_lines(pilot))
        assert first.ref in detail and logistics in detail
        await pilot.press("2")
        await settle(pilot)
        outcomes = [row[2] for row in cells(screen.query_one("#attempts", DataTable))]
        assert len(outcomes) >= 9
        assert "ready" not in outcomes
        assert {"parked after 3/3", "failed 1/3, retried", "failed 2/3, retried"} <= set(outcomes)
        await pilot.press("1", "r")
        await settle(pilot)
        assert first.id not in {j.id for j in await service.list_jobs(("parked",))}
        assert items.row_count == 3  # back in the queue, not yet retried: "queued"
        assert cells(items)[0][1] == "queued"
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(pilot.app.screen, ActivityScreen)


async def test_at_80x24_the_detail_pane_shows_a_parked_items_full_error_and_ids(
    data_dir: Path, service: Service
) -> None:
    mailbox = await troubles(service)
    parked = (await service.list_jobs(("parked",)))[0]
    async with make_app(data_dir).run_test(size=SMALL) as pilot:
        screen = await open_activity(pilot)
        table = screen.query_one("#items", DataTable)
        assert table.cursor_row == 0 and cells(table)[0][1] == "parked after 8/8"
        lines = screen_lines(pilot)
        assert all(len(line) <= 80 for line in lines)
        start = next(i for i, line in enumerate(lines) if "Details" in line)
        detail = " ".join(" ".join(line.split()) for line in lines[start + 1 :])
        assert PARKED_ENVELOPE in detail
        assert f"Purchasing ({mailbox})" in detail
        assert f"job {parked.id} (envelope)" in detail
        assert " ".join(PARKED_ERROR.split()) in detail  # the whole error, wrapped, on screen


async def test_a_failed_attempt_reads_retrying_never_ready(
    data_dir: Path, service: Service
) -> None:
    """The engine fails an envelope once (8 tries allowed) and stops before the retry."""
    await enable_undeliverable(service, data_dir, "Logistics")
    patient = jobs.RetryPolicy(max_attempts=8, max_delay_s=300)
    engine = Engine(
        await asyncio.to_thread(load_config, data_dir),
        dataclasses.replace(FAST, envelope_retry=patient),
    )
    await engine.start()
    try:

        async def failed_once() -> bool:
            return any(r.status == "ready" for r in await service.activity_log())

        await eventually(failed_once)
    finally:
        await engine.stop()
    async with make_app(data_dir).run_test(size=SMALL) as pilot:
        screen = await open_activity(pilot)
        await pilot.press("2")
        await settle(pilot)
        rows = cells(screen.query_one("#attempts", DataTable))
        assert rows and all(row[2] != "ready" for row in rows)
        assert rows[0][2].startswith("retrying 1/8 ")  # "in 1 s" or "now"
        items = cells(screen.query_one("#items", DataTable))
        assert items[0][1].startswith("retrying 1/8 ")


# -- every section from the keyboard ------------------------------------------------------------


async def test_tab_moves_through_the_sections(data_dir: Path, service: Service) -> None:
    await troubles(service)
    async with make_app(data_dir).run_test(size=SMALL) as pilot:
        screen = await open_activity(pilot)
        seen = []
        for _ in range(5):
            seen.append(pilot.app.focused.id if pilot.app.focused else None)
            await pilot.press("tab")
            await settle(pilot)
        assert seen == ["items", "attempts", "sessions", "bans", "as2"]
        assert screen.section == "items"
        await pilot.press("shift+tab")
        await settle(pilot)
        assert screen.section == "as2" and pilot.app.focused is screen.query_one("#as2")


async def test_bans_are_reachable_and_lifted_at_80x24_while_items_are_parked(
    data_dir: Path, service: Service
) -> None:
    await troubles(service)
    async with make_app(data_dir).run_test(size=SMALL) as pilot:
        screen = await open_activity(pilot)
        await pilot.press("4")
        await settle(pilot)
        assert screen.section == "bans"
        assert any(BANNED in line for line in screen_lines(pilot))  # on screen, not scrolled off
        left = cells(screen.query_one("#bans", DataTable))[0][3]
        assert left == "10 min" or re.fullmatch(r"9 min \d+ s", left)
        await pilot.press("u")
        await settle(pilot)
        await pilot.press("n")  # no: nothing changes
        await settle(pilot)
        assert [b.address for b in await service.list_bans()] == [BANNED]
        await pilot.press("u")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert await service.list_bans() == []
        assert screen.query_one("#bans", DataTable).row_count == 0
        assert len(await service.list_jobs(("parked",))) == 1  # unban touched nothing else
    assert any(e.action == "sftp.unban" for e in await service.audit_log())


async def test_section_hints_follow_the_keymap(data_dir: Path, service: Service) -> None:
    (data_dir / "keymap.toml").write_text(
        '"activity.next_section" = "ctrl+t"\n"activity.bans" = "b"\n', encoding="utf-8"
    )
    await troubles(service)
    async with make_app(data_dir).run_test(size=SMALL) as pilot:
        screen = await open_activity(pilot)
        shown = "\n".join(screen_lines(pilot))
        assert "ctrl+t: next section" in shown and "tab: next section" not in shown
        assert "b Bans (1)" in shown and "4 Bans" not in shown
        await pilot.press("b")
        await settle(pilot)
        assert screen.section == "bans"
        await pilot.press("ctrl+t")
        await settle(pilot)
        assert screen.section == "as2"


# -- a failing refresh never ends the app -------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        DocbridgeError("The store is busy.", "Another process holds a write lock; try again."),
        RuntimeError("unexpected"),
    ],
    ids=["domain-error", "defect"],
)
async def test_a_failing_refresh_is_reported_once_and_refreshing_resumes(
    data_dir: Path, service: Service, monkeypatch: pytest.MonkeyPatch, fault: Exception
) -> None:
    monkeypatch.setattr(activity_module, "REFRESH_SECONDS", 0.05)
    await troubles(service)
    app = make_app(data_dir)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_activity(pilot)
        assert app.service is not None
        working = app.service.activity_view
        calls = 0

        async def broken(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            raise fault

        pushed: list[Any] = []
        push_screen = app.push_screen

        def counting_push(screen: Any, *args: Any, **kwargs: Any) -> Any:
            pushed.append(screen)
            return push_screen(screen, *args, **kwargs)

        monkeypatch.setattr(app, "push_screen", counting_push)
        monkeypatch.setattr(app.service, "activity_view", broken)
        await until(pilot, lambda: isinstance(app.screen, ErrorModal))
        assert app.is_running
        title = app.screen.error_title  # type: ignore[attr-defined]
        assert ("The store is busy." if isinstance(fault, DocbridgeError) else "RuntimeError") in (
            title
        )
        await pilot.press("escape")  # close it: the fault persists, refreshing goes on
        await until(pilot, lambda: app.screen is screen)
        seen = calls
        await until(pilot, lambda: calls >= seen + 5)
        assert app.is_running
        assert [s for s in pushed if isinstance(s, ErrorModal)] == [pushed[0]]  # reported once
        assert "Refresh failed" in summary(screen)

        monkeypatch.setattr(app.service, "activity_view", working)  # the fault clears
        await until(pilot, lambda: "Refresh failed" not in summary(screen))
        assert "engine: stopped" in summary(screen)
        assert screen.query_one("#items", DataTable).row_count == 2
        assert app.is_running
    # Logged to the data directory's file by its writer thread, complete once the app exited.
    logged = await asyncio.to_thread((data_dir / LOG_FILE).read_text, encoding="utf-8")
    if isinstance(fault, DocbridgeError):
        assert "error shown to the user: The store is busy." in logged
    else:
        assert "Traceback" in logged and "RuntimeError: unexpected" in logged


async def test_a_failing_action_shows_an_error_and_the_app_keeps_running(
    data_dir: Path, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    await troubles(service)
    app = make_app(data_dir)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_activity(pilot)
        assert app.service is not None

        async def busy(*args: Any, **kwargs: Any) -> int:
            raise DocbridgeError("The store is busy.", "Try again in a moment.")

        monkeypatch.setattr(app.service, "reprocess", busy)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ErrorModal))
        assert app.is_running
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
        assert len(await service.list_jobs(("parked",))) == 1


# -- the engine in the TUI's process ------------------------------------------------------------


def use_free_ports(data_dir: Path) -> None:
    (data_dir / "docbridge.toml").write_text(
        "[sftp]\nport = 0\n[as2]\nport = 0\n", encoding="utf-8"
    )


async def test_the_tui_runs_the_engine_in_process_and_shows_it(
    data_dir: Path, service: Service
) -> None:
    from tui.app import DocbridgeApp

    use_free_ports(data_dir)
    app = DocbridgeApp(data_dir, actor="test@tui", cursor_blink=False, run_engine=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        status = await service.engine_status()
        assert status.running and status.owner == app.engine.owner  # type: ignore[union-attr]
        await app.refresh_engine_status()
        await settle(pilot)
        shown = "\n".join(screen_lines(pilot))  # the page header, whatever widget draws it
        assert f"engine: running (pid {status.pid})" in shown
        assert screen.state is not None
        assert screen.state.sftp.host_key_fingerprint == status.listeners["sftp_host_key"]
        activity = await open_activity(pilot)
        assert f"engine: running (pid {status.pid} on {status.host})" in summary(activity)
    assert not (await service.engine_status()).running  # quitting stops it


async def test_a_second_tui_works_as_a_client_of_the_running_engine(
    data_dir: Path, service: Service
) -> None:
    from tui.app import DocbridgeApp

    use_free_ports(data_dir)
    engine = Engine(await asyncio.to_thread(load_config, data_dir), FAST)
    await engine.start()
    try:
        app = DocbridgeApp(data_dir, actor="test@tui", cursor_blink=False, run_engine=True)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for_page(pilot)
            assert app.engine is None
            assert (await service.engine_status()).owner == engine.owner
            activity = await open_activity(pilot)
            assert f"engine: running (pid {engine_pid(engine)}" in summary(activity)
    finally:
        await engine.stop()


def engine_pid(engine: Engine) -> int:
    return int(engine.owner.split(":")[1])
