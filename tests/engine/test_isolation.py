"""One bad item never takes others down (issue 8, defect 4): every envelope, mail and file
fails or succeeds on its own, with its own error and its own activity record; an item that
stops the engine every time is parked instead of stopping it forever."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core.config import SmtpConfig, load_config
from core.engine import envelope_handler
from core.engine.engine import Engine
from core.mail.notification import Notification
from core.models import DefaultRule, IntegrationForm, JobKind
from core.service import Service
from core.sftp.folders import ensure_mailbox_root
from core.storage import jobs
from core.storage.connection import Tx
from tests.engine.conftest import FAST, SmtpServer
from tests.engine.test_crash import with_new_uuid
from tests.engine.test_customer_files import outgoing, outgoing_xml
from tests.engine.test_default_rules import DEMO_ENVELOPE, eventually, statuses
from tests.engine.test_file_identity import taken


@pytest.fixture
async def idle_engine(data_dir: Path, smtp_server: SmtpServer) -> AsyncIterator[Engine]:
    """An engine not started yet: the test lays out the work first, so that it all lands in
    the engine's first batch."""
    config = await asyncio.to_thread(load_config, data_dir)
    config = replace(config, smtp=SmtpConfig(host="127.0.0.1", port=smtp_server.port))
    engine = Engine(config, FAST)
    yield engine
    await engine.stop()


async def switch_on(service: Service, name: str, form: IntegrationForm) -> str:
    mailbox = (await service.resolve_mailbox(name)).uuid
    await service.save_integration(mailbox, form)
    await service.set_enabled(mailbox, True)
    return mailbox


async def receive(service: Service, mailbox: str, count: int) -> list[str]:
    """``count`` more incoming envelopes for ``mailbox`` (the demo order, new uuids)."""
    template = DEMO_ENVELOPE.read_text(encoding="utf-8")
    template = template.replace("26c79f73-753d-4148-b26a-5d3e9abbc6fb", mailbox)
    received = []
    for _ in range(count):
        envelope_uuid, data = with_new_uuid(template)
        await service.receive_envelope(mailbox, data)
        received.append(envelope_uuid)
    return received


async def parked_errors(service: Service, mailbox: str, kind: str) -> dict[str, str]:
    return {
        j.ref: j.last_error or ""
        for j in await service.list_jobs(("parked",), limit=1000)
        if j.mailbox_uuid == mailbox and j.kind == kind
    }


async def errors_by_envelope(service: Service, mailbox: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for record in await service.activity_log(mailbox, limit=1000):
        if record.error and record.envelope_uuid:
            found.setdefault(record.envelope_uuid, []).append(record.error)
    return found


async def test_a_mailbox_whose_inbox_is_a_file_fails_alone(
    service: Service, idle_engine: Engine, data_dir: Path
) -> None:
    """Before: the broken mailbox failed the whole batch, and 20 of 20 healthy envelopes of
    another mailbox were parked with its error and no activity record."""
    broken = await switch_on(service, "Accounts Payable", IntegrationForm())
    healthy = await switch_on(service, "Purchasing", IntegrationForm())
    fresh = await receive(service, healthy, 20)
    mailboxes = data_dir / "mailboxes"
    broken_inbox = (await asyncio.to_thread(ensure_mailbox_root, mailboxes, broken)) / "inbox"
    await asyncio.to_thread(broken_inbox.rmdir)
    await asyncio.to_thread(broken_inbox.write_text, "not a folder")
    # And in the healthy mailbox one envelope's file name is taken by a folder.
    blocked = fresh[7]
    healthy_inbox = (await asyncio.to_thread(ensure_mailbox_root, mailboxes, healthy)) / "inbox"
    await asyncio.to_thread((healthy_inbox / f"{blocked}.xml").mkdir)
    await idle_engine.start()
    broken_uuids = {e.uuid for e in await service.list_envelopes(broken)}

    async def settled() -> bool:
        return set(await parked_errors(service, broken, "envelope")) == broken_uuids and set(
            await parked_errors(service, healthy, "envelope")
        ) == {blocked}

    await eventually(settled)
    for error in (await parked_errors(service, broken, "envelope")).values():
        assert "inbox" in error and broken in error
    (blocked_error,) = (await parked_errors(service, healthy, "envelope")).values()
    assert blocked in blocked_error
    healthy_states = {e.uuid: e.status.value for e in await service.list_envelopes(healthy)}
    assert {u for u, s in healthy_states.items() if s != "COMPLETED"} == {blocked}
    # Each failed attempt is on record, with the item's own error.
    assert set(await errors_by_envelope(service, broken)) == broken_uuids
    assert set(await errors_by_envelope(service, healthy)) == {blocked}
    assert all(len(errors) == 3 for errors in (await errors_by_envelope(service, broken)).values())


async def test_a_defect_in_one_envelope_fails_it_alone(
    service: Service, idle_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error while handling one envelope (here: building its notification)
    fails that envelope, with its own error and record; the rest of its batch is handled."""
    form = IntegrationForm(default_rule=DefaultRule.NOTIFY, notify_email="ops@example.com")
    mailbox = await switch_on(service, "Purchasing", form)
    fresh = await receive(service, mailbox, 10)
    bad = fresh[3]
    real = envelope_handler.build_notification

    def build(**kwargs: Any) -> Notification:
        if kwargs["envelope"]["uuid"] == bad:
            raise ValueError("injected defect")
        return real(**kwargs)

    monkeypatch.setattr(envelope_handler, "build_notification", build)
    await idle_engine.start()

    async def settled() -> bool:
        return set(await parked_errors(service, mailbox, "envelope")) == {bad}

    await eventually(settled)
    states = {e.uuid: e.status.value for e in await service.list_envelopes(mailbox)}
    assert {u for u, s in states.items() if s != "COMPLETED"} == {bad}
    assert "injected defect" in (await parked_errors(service, mailbox, "envelope"))[bad]
    assert set(await errors_by_envelope(service, mailbox)) == {bad}


async def test_a_mail_that_cannot_be_built_fails_alone_and_the_others_go_out(
    service: Service,
    idle_engine: Engine,
    smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before: the bad payload raised out of the mail loop, which restarted; the batch's
    claims only expired a minute later and no mail of the batch went out meanwhile."""
    form = IntegrationForm(default_rule=DefaultRule.NOTIFY, notify_email="ops@example.com")
    mailbox = await switch_on(service, "Accounts Payable", form)
    good = [f"<mail-{i}@test>" for i in range(6)]

    def queue(tx: Tx) -> None:
        for i, message_id in enumerate(good):
            mail = Notification(message_id, "gw@example.com", "ops@example.com", "s", "b")
            jobs.enqueue(tx, JobKind.MAIL, f"good-{i}", mailbox, mail.to_payload())
            if i == 2:
                jobs.enqueue(tx, JobKind.MAIL, "bad", mailbox, {"message_id": "<bad@test>"})

    await service.db.write(queue)
    caplog.set_level(logging.ERROR, logger="docbridge.engine")
    await idle_engine.start()

    async def sent() -> bool:
        return set(good) <= set(smtp_server.sink.message_ids())

    await eventually(sent, within_s=5)

    async def parked() -> bool:
        return "bad" in await parked_errors(service, mailbox, "mail")

    await eventually(parked)
    error = (await parked_errors(service, mailbox, "mail"))["bad"]
    assert "cannot be built" in error and "sender" in error
    records = [r for r in await service.activity_log(mailbox) if r.envelope_uuid == "bad"]
    assert [r.status for r in records] == ["mail parked"]
    assert "engine loop" not in caplog.text  # handled, not a restart of the loop


async def test_an_item_the_engine_stops_on_every_time_is_parked_after_max_attempts(
    service: Service, idle_engine: Engine, data_dir: Path
) -> None:
    """A customer file whose handling stops the engine (kill, crash, power) each time: its
    claim is released on every start. Before: released forever, never parked. Now: parked
    after the retry policy's attempts, and the file goes back to the customer in error/."""
    mailbox = await switch_on(service, "Purchasing", IntegrationForm())
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    token = "0badc0de0badc0de"
    holder = root / ".taking" / f"outbox-{token}"
    await asyncio.to_thread(holder.mkdir, parents=True)
    await asyncio.to_thread((holder / "order.xml").write_bytes, outgoing_xml(mailbox))
    payload = {"folder": "outbox", "name": "order.xml", "claim": token}
    ref = f"{mailbox}/outbox/order.xml@{token}"

    def engine_that_died(tx: Tx, stop: int) -> None:
        if stop:
            jobs.release_dead_claims(tx)  # the next engine starts: no node holds the claim
        assert len(jobs.claim(tx, JobKind.FILE, f"dead-{stop}", 60, 10)) == 1

    await service.db.write(jobs.enqueue, JobKind.FILE, ref, mailbox, payload)
    for stop in range(3):  # FAST allows 3 attempts per file
        await service.db.write(engine_that_died, stop)
    await idle_engine.start()
    note = root / "error" / "order.xml.error.txt"

    async def handed_back() -> bool:
        return await asyncio.to_thread(note.exists) and not taken(root)

    await eventually(handed_back)
    text = await asyncio.to_thread(note.read_text)
    assert "The engine stopped 3 times while handling this" in text
    assert await asyncio.to_thread((root / "error" / "order.xml").exists)
    assert await outgoing(service, mailbox) == []
    (job,) = [j for j in await service.list_jobs(("done",)) if j.ref == ref]
    assert job.attempts == 3
    records = [r for r in await service.activity_log(mailbox) if r.rule == "outbox"]
    assert [(r.status, "stopped 3 times" in (r.error or "")) for r in records] == [("error", True)]


async def test_a_clean_stop_gives_claims_back_without_using_an_attempt(
    service: Service, data_dir: Path
) -> None:
    """Stopping the engine (quitting the TUI) while it holds claims: they are ready again at
    once with the attempt given back, not left to expire nor counted towards parking."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # an SMTP server that never greets: the mail loop waits

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    form = IntegrationForm(default_rule=DefaultRule.NOTIFY, notify_email="ops@example.com")
    mailbox = await switch_on(service, "Purchasing", form)
    config = await asyncio.to_thread(load_config, data_dir)
    engine = Engine(replace(config, smtp=SmtpConfig(host="127.0.0.1", port=port)), FAST)
    await engine.start()
    try:

        async def mails_held() -> bool:
            mails = [j for j in await service.list_jobs(("running",)) if j.kind == "mail"]
            return bool(mails) and await statuses(service, mailbox) == {"COMPLETED"}

        await eventually(mails_held)
    finally:
        await engine.stop()
        server.close()
    mails = [j for j in await service.list_jobs(("ready", "running")) if j.kind == "mail"]
    assert mails and {(j.state, j.attempts) for j in mails} == {("ready", 0)}
