"""AS2 messages in the TUI: the Activity screen's section (5) and the page's AS2 block list what
the engine exchanged with a real partner (pyas2lib over HTTP), with the MDN of each; the page
says whether the engine serves the Self URL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from core.engine.engine import Engine
from core.models import As2Status
from core.service import Service
from tests.as2.conftest import connect_logistics, partner, self_url
from tests.as2.partner import PARTNER_ID, PyAs2Partner
from tests.as2.test_exchange import addressed_to
from tests.engine.conftest import as2_engine, as2_form, smtp_server
from tests.engine.test_customer_files import outgoing_xml
from tests.engine.test_default_rules import eventually
from tests.tui.conftest import make_app, screen_lines, settle, until, wait_for_page
from tests.tui.test_activity import cells, open_activity
from tui.screens.activity import ActivityScreen
from tui.screens.integrations import IntegrationsScreen

__all__ = ["as2_engine", "partner", "smtp_server"]

LARGE = (120, 40)
SMALL = (80, 24)
NONE_YET = "none yet — messages sent to the Self URL and envelopes under default rule 1 appear here"


async def exchange(service: Service, engine: Engine, partner: PyAs2Partner) -> str:
    """The partner sends one message to Logistics's Self URL (sync signed MDN); an envelope for
    Logistics goes to the partner under default rule 1 (with the demo's waiting ones)."""
    mailbox = await connect_logistics(service, partner)
    message = await asyncio.to_thread(partner.build_signed, outgoing_xml(mailbox))
    outcome = await partner.send(self_url(engine, mailbox), message)
    assert (outcome.mdn_status, outcome.mdn_detail) == ("processed", None)
    await service.receive_envelope(mailbox, await asyncio.to_thread(addressed_to, mailbox))
    engine.wake()

    async def delivered() -> bool:
        envelopes = await service.list_envelopes(mailbox)
        sent = [m for m in await service.as2.messages(mailbox) if m.direction == "out"]
        return (
            all(e.status.value != "WAITING" for e in envelopes)
            and len(sent) == len(partner.received) > 0
            and all(m.status is As2Status.DELIVERED for m in sent)
        )

    await eventually(delivered)
    return mailbox


async def show_mailbox(pilot: Pilot[None], mailbox: str) -> IntegrationsScreen:
    screen = await wait_for_page(pilot)
    screen.request_mailbox(mailbox)
    await until(pilot, lambda: screen.state.mailbox.uuid == mailbox)
    await settle(pilot)
    return screen


def recent_area(screen: IntegrationsScreen) -> str:
    return str(screen.query_one("#as2-recent", Static).render())


def detail(pilot: Pilot[None]) -> str:
    """The detail pane as the user reads it (wrapped lines joined)."""
    lines = screen_lines(pilot)
    start = next(i for i, line in enumerate(lines) if "Details" in line)
    return " ".join(" ".join(line.split()) for line in lines[start + 1 :])


async def test_activity_and_the_page_list_both_messages_with_their_mdns(
    data_dir: Path, service: Service, as2_engine: Engine, partner: PyAs2Partner
) -> None:
    mailbox = await exchange(service, as2_engine, partner)
    stored = await service.as2.messages(mailbox)
    [received] = [m for m in stored if m.direction == "in"]
    sent = [m for m in stored if m.direction == "out"]
    assert received.status is As2Status.RECEIVED and sent
    async with make_app(data_dir).run_test(size=LARGE) as pilot:
        # The page's AS2 block: the hint under the Self URL and the last messages, newest first.
        page = await show_mailbox(pilot, mailbox)
        listener = (await service.engine_status()).listeners["as2"]
        hint = str(page.query_one("#as2-serve-hint", Static).render())
        assert hint == f"The engine serves it (listening on {listener})."
        lines = recent_area(page).splitlines()
        assert len(lines) == min(5, len(stored))
        newest = stored[: len(lines)]
        for line, message in zip(lines, newest, strict=True):
            words = line.split()
            assert words[0] == message.direction
            assert words[3] == message.status.value
            assert f"MDN {message.mdn_disposition}" in line and "processed" in line
        assert any(line.split()[0] == "out" and "MIC ok" in line for line in lines)
        page.query_one("#as2-recent").scroll_visible(animate=False)
        await settle(pilot)
        shown = "\n".join(screen_lines(pilot))
        assert "Recent messages" in shown and "delivered" in shown

        # Activity, section 5: every message in and out, its MDN and MIC check.
        activity = await open_activity(pilot)
        await pilot.press("5")
        await settle(pilot)
        assert activity.section == "as2"
        table = activity.query_one("#as2", DataTable)
        labels = [str(column.label) for column in table.columns.values()]
        assert labels == [
            "Time",
            "Mailbox",
            "Dir",
            "Partner",
            "Status",
            "MDN",
            "MIC",
            "Size",
            "Message-ID",
        ]
        rows = cells(table)
        assert len(rows) == len(stored)
        by_direction: dict[str, list[list[str]]] = {"in": [], "out": []}
        for row in rows:
            by_direction[row[2]].append(row)
        [inbound] = by_direction["in"]
        assert inbound[1] == "Logistics" and inbound[3] == PARTNER_ID
        assert inbound[4:7] == ["received", "processed", "—"]  # we return the MIC; we check none
        assert len(by_direction["out"]) == len(sent)
        assert all(row[4:7] == ["delivered", "processed", "ok"] for row in by_direction["out"])
        assert f"AS2 messages ({len(stored)})" in "\n".join(screen_lines(pilot))

        # The highlighted message in full: its whole Message-ID, file name, size and MDN.
        await move_to(pilot, table, rows.index(inbound))
        shown = detail(pilot)
        assert received.message_id in shown
        assert f"in: received from {PARTNER_ID}" in shown
        assert f"File {received.filename}" in shown
        assert f"Size {received.size:,} bytes" in shown
        assert "MDN processed · sync mode" in shown
        envelope = sent[0]  # the newest: the envelope received above
        await move_to(pilot, table, [m.id for m in stored].index(envelope.id))
        shown = detail(pilot)
        assert envelope.message_id in shown and f"out: sent to {PARTNER_ID}" in shown
        assert "MIC check ok" in shown and "Error —" in shown

        # At 80x24 the tabs and columns still fit: Message-ID and mailbox go to the details.
        await pilot.resize_terminal(*SMALL)
        await settle(pilot)
        labels = [str(column.label) for column in table.columns.values()]
        assert labels == ["Time", "Dir", "Partner", "Status", "MDN", "MIC", "Size"]
        lines = screen_lines(pilot)
        assert all(len(line) <= 80 for line in lines)
        assert f"5 AS2 ({len(stored)})" in "\n".join(lines)
        assert envelope.message_id in detail(pilot) and "Logistics" in detail(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(pilot.app.screen, ActivityScreen)


async def move_to(pilot: Pilot[None], table: DataTable[Any], row: int) -> None:
    table.move_cursor(row=row)
    await settle(pilot)


async def test_with_the_engine_stopped_the_page_says_partners_cannot_reach_the_self_url(
    data_dir: Path, service: Service
) -> None:
    logistics = (await service.resolve_mailbox("Logistics")).uuid
    await service.save_integration(logistics, await as2_form(service))
    async with make_app(data_dir).run_test(size=LARGE) as pilot:
        page = await show_mailbox(pilot, logistics)
        hint = str(page.query_one("#as2-serve-hint", Static).render())
        assert hint == (
            "The engine is stopped: partners cannot reach it until docbridge serve or this "
            "TUI's engine runs."
        )
        assert recent_area(page) == NONE_YET
        activity = await open_activity(pilot)
        await pilot.press("5")
        await settle(pilot)
        assert activity.query_one("#as2", DataTable).row_count == 0
        assert "Nothing here." in detail(pilot)
