"""Group commit: envelopes received together share one durable commit; each receipt is answered
after that commit, and a refused one fails alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from core.errors import InvalidInput, StoreFull
from core.models import Envelope
from core.service import Service
from tests.engine.test_crash import DEMO, with_new_uuid
from tests.engine.test_default_rules import eventually


async def demo_template(service: Service, mailbox_name: str) -> tuple[str, str]:
    """A demo envelope addressed to ``mailbox_name``, and that mailbox's uuid."""
    mailbox = (await service.resolve_mailbox(mailbox_name)).uuid
    for path in sorted(DEMO.glob("*.xml")):
        text = path.read_text(encoding="utf-8")
        if f'id="recipient" mailboxUuid="{mailbox}"' in text:
            return text, mailbox
    raise AssertionError(f"no demo envelope for {mailbox_name}")


async def hold_the_database(
    service: Service, commits: list[str]
) -> tuple[threading.Event, asyncio.Task[None]]:
    """Keep the database thread busy until the returned event is set, counting COMMITs from
    then on: receipts made meanwhile queue up for the next shared commit."""
    gate = threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
        gate.wait(20)

    return gate, asyncio.create_task(service.db.call(hold))


async def received_together(service: Service, mailbox: str, documents: list[bytes]) -> list[object]:
    """Receive ``documents`` at once, all in one group; each outcome (envelope or error)."""
    commits: list[str] = []
    gate, held = await hold_the_database(service, commits)
    receipts = [asyncio.create_task(service.receive_envelope(mailbox, d)) for d in documents]

    async def all_queued() -> bool:
        return service.db.waiting_writes == len(documents)

    await eventually(all_queued)
    gate.set()
    await held
    outcomes = await asyncio.gather(*receipts, return_exceptions=True)
    await service.db.call(lambda conn: conn.set_trace_callback(None))
    assert commits == ["COMMIT"]  # one durable commit for the whole group
    return list(outcomes)


async def test_receipts_arriving_together_share_one_commit_and_a_refused_one_fails_alone(
    service: Service,
) -> None:
    template, mailbox = await demo_template(service, "Purchasing")
    other_template, _ = await demo_template(service, "Logistics")
    good = [with_new_uuid(template) for _ in range(10)]
    misaddressed = with_new_uuid(other_template)
    resent = good[3]  # the same envelope twice in one group: received once
    documents = [d for _, d in good] + [misaddressed[1], resent[1]]

    outcomes = await received_together(service, mailbox, documents)

    stored = {e.uuid for e in await service.list_envelopes(mailbox, limit=5000)}
    assert {u for u, _ in good} <= stored
    assert misaddressed[0] not in stored
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(refused) == 2, outcomes
    texts = sorted(str(o) for o in refused)
    assert any("already received" in t for t in texts), texts
    assert any("not" in t and "Purchasing" in t for t in texts), texts
    assert all(isinstance(o, InvalidInput) for o in refused)
    received = [o for o in outcomes if isinstance(o, Envelope)]
    assert sorted(e.uuid for e in received) == sorted(u for u, _ in good)


async def test_a_full_disk_fails_the_receipts_it_could_not_store_and_keeps_the_others_whole(
    service: Service, data_dir: Path
) -> None:
    template, mailbox = await demo_template(service, "Purchasing")
    batch = [with_new_uuid(template) for _ in range(6)]
    commits: list[str] = []
    gate, held = await hold_the_database(service, commits)
    await service.db.call(
        lambda conn: conn.execute(
            f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0] + 1}"
        )
    )
    receipts = [asyncio.create_task(service.receive_envelope(mailbox, d)) for _, d in batch]

    async def all_queued() -> bool:
        return service.db.waiting_writes == len(batch)

    await eventually(all_queued)
    gate.set()
    await held
    outcomes = await asyncio.gather(*receipts, return_exceptions=True)
    await service.db.call(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823"))
    await service.db.call(lambda conn: conn.set_trace_callback(None))

    stored = {e.uuid for e in await service.list_envelopes(mailbox, limit=5000)}
    failed = [u for (u, _), o in zip(batch, outcomes, strict=True) if isinstance(o, StoreFull)]
    answered = [u for (u, _), o in zip(batch, outcomes, strict=True) if isinstance(o, Envelope)]
    assert failed, outcomes  # the page limit bit
    assert len(failed) + len(answered) == len(batch), outcomes  # nothing else went wrong
    assert set(answered) <= stored  # an answered receipt is kept
    assert not set(failed) & stored  # a failed one left nothing behind
    for uuid, data in batch:  # and the sender's retry is received once
        if uuid in failed:
            await service.receive_envelope(mailbox, data)
    stored = {e.uuid for e in await service.list_envelopes(mailbox, limit=5000)}
    assert {u for u, _ in batch} <= stored
