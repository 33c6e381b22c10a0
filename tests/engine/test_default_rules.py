"""Default rules end to end: a real engine, a real store, a real SMTP server on loopback."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from core.engine.engine import Engine, EngineBusy
from core.models import DefaultRule, EnvelopeStatus, IntegrationForm, Job, JobKind, JobState
from core.service import Service
from tests.engine.conftest import FAST, SmtpServer, enable, enable_undeliverable

DEMO_ENVELOPE = (
    Path(__file__).resolve().parents[2]
    / "data"
    / "demo"
    / "envelopes"
    / "01-purchase-order-acme.xml"
)


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 10) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def statuses(service: Service, mailbox: str) -> set[str]:
    return {e.status.value for e in await service.list_envelopes(mailbox)}


async def jobs_of(service: Service, mailbox: str, kind: JobKind, *states: JobState) -> list[Job]:
    return [
        j for j in await service.list_jobs(states) if j.mailbox_uuid == mailbox and j.kind == kind
    ]


async def wait_until_mails_are_done(service: Service, mailbox: str, count: int) -> None:
    """Every mail job of the mailbox is done: none is left to send (again), so the SMTP
    server's inbox is final; no fixed pause that a dead engine would also pass."""

    async def done() -> bool:
        return len(await jobs_of(service, mailbox, JobKind.MAIL, JobState.DONE)) == count

    await eventually(done)


async def test_rule_1_copies_each_envelope_once_into_inbox(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    engine.wake()

    async def done() -> bool:
        return await statuses(service, mailbox) == {"COMPLETED"}

    await eventually(done)
    envelopes = await service.list_envelopes(mailbox)
    inbox = data_dir / "mailboxes" / mailbox / "inbox"
    names = await asyncio.to_thread(lambda: sorted(p.name for p in inbox.iterdir()))
    assert names == sorted(f"{e.uuid}.xml" for e in envelopes)
    first = envelopes[0]
    assert b"<envelope" in await asyncio.to_thread((inbox / f"{first.uuid}.xml").read_bytes)
    activity = await service.activity_log(mailbox)
    assert {(a.rule, a.status) for a in activity} == {("default:copy", "delivered")}
    others = await service.list_envelopes((await service.resolve_mailbox("Logistics")).uuid)
    assert {e.status for e in others} == {EnvelopeStatus.WAITING}  # its integration is off


async def test_rule_2_mails_metadata_once_with_a_stable_message_id(
    service: Service, engine: Engine, smtp_server: SmtpServer
) -> None:
    form = IntegrationForm(default_rule=DefaultRule.NOTIFY, notify_email="ops@example.com")
    mailbox = await enable(service, "Accounts Payable", form)
    engine.wake()
    envelopes = await service.list_envelopes(mailbox)

    async def all_mailed() -> bool:
        return len(smtp_server.sink.message_ids()) >= len(envelopes)

    await eventually(all_mailed)
    await wait_until_mails_are_done(service, mailbox, len(envelopes))
    ids = smtp_server.sink.message_ids()
    assert sorted(ids) == sorted(f"<{e.uuid}.notification@localhost>" for e in envelopes)
    mail = smtp_server.sink.messages[0]
    envelope = next(e for e in envelopes if e.uuid in str(mail["Message-ID"]))
    body = mail.get_payload(decode=True).decode()
    assert mail["To"] == "ops@example.com"
    sent = email.utils.parsedate_to_datetime(mail["Date"])  # present and well-formed (RFC 5322)
    assert abs(sent.timestamp() - time.time()) < 300
    for text in (envelope.subject, envelope.uuid, envelope.received_at, "Invoice v", "Status:"):
        assert text in body
    assert "<field" not in body and "IBAN" not in body.upper()
    assert await statuses(service, mailbox) == {"COMPLETED"}


async def test_rule_3_rejects_with_the_reason_by_system(service: Service, engine: Engine) -> None:
    reason = "We only accept invoices through our portal."
    form = IntegrationForm(default_rule=DefaultRule.REJECT, reject_reason=reason)
    mailbox = await enable(service, "Logistics", form)
    engine.wake()

    async def rejected() -> bool:
        return await statuses(service, mailbox) == {"CANCELLED"}

    await eventually(rejected)
    for envelope in await service.list_envelopes(mailbox):
        assert (envelope.display_status, envelope.reject_reason, envelope.rejected_by) == (
            "Rejected",
            reason,
            "system",
        )


async def test_toggle_off_holds_envelopes_and_on_drains_them_in_arrival_order(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    mailbox = (await service.resolve_mailbox("Purchasing")).uuid
    await service.save_integration(mailbox, IntegrationForm())
    # A mailbox switched on after that save: the engine claims every due item of every enabled
    # integration at once, so the claim that serves this one would have taken Purchasing's too.
    witness = await enable(service, "Accounts Payable", IntegrationForm())
    engine.wake()

    async def witness_done() -> bool:
        return await statuses(service, witness) == {"COMPLETED"}

    await eventually(witness_done)
    assert await statuses(service, mailbox) == {"WAITING"}
    assert not await asyncio.to_thread((data_dir / "mailboxes" / mailbox / "inbox").exists)

    await service.set_enabled(mailbox, True)

    async def done() -> bool:
        return await statuses(service, mailbox) == {"COMPLETED"}

    await eventually(done)
    order = [a.envelope_uuid for a in reversed(await service.activity_log(mailbox))]
    assert order == [e.uuid for e in await service.list_envelopes(mailbox)]


async def test_smtp_outage_delays_mails_only(
    service: Service, engine: Engine, smtp_server: SmtpServer
) -> None:
    await asyncio.to_thread(smtp_server.stop)  # joins the server's thread
    form = IntegrationForm(default_rule=DefaultRule.NOTIFY, notify_email="ops@example.com")
    notify = await enable(service, "Accounts Payable", form)
    copy = await enable(service, "Purchasing", IntegrationForm())
    engine.wake()

    async def envelopes_done() -> bool:
        return await statuses(service, notify) == {"COMPLETED"} and await statuses(
            service, copy
        ) == {"COMPLETED"}

    await eventually(envelopes_done)  # envelopes flow while SMTP is down

    async def mails_tried() -> bool:
        mails = await jobs_of(service, notify, JobKind.MAIL, JobState.READY, JobState.RUNNING)
        return len(mails) == len(await service.list_envelopes(notify)) and all(
            j.last_error for j in mails
        )

    await eventually(mails_tried)  # each mail was tried, failed and waits for a retry
    assert smtp_server.sink.message_ids() == []
    waiting = await service.list_jobs(("ready", "running"))
    assert {job.kind for job in waiting if job.mailbox_uuid in (notify, copy)} == {"mail"}

    await asyncio.to_thread(smtp_server.start)
    expected = len(await service.list_envelopes(notify))

    async def mailed() -> bool:
        return len(smtp_server.sink.message_ids()) >= expected

    await eventually(mailed, within_s=15)
    await wait_until_mails_are_done(service, notify, expected)
    ids = smtp_server.sink.message_ids()
    assert len(ids) == len(set(ids)) == expected


async def test_a_second_engine_is_told_who_holds_the_lease(engine: Engine, data_dir: Path) -> None:
    from core.config import load_config

    second = Engine(await asyncio.to_thread(load_config, data_dir))
    try:
        await second.start()
    except EngineBusy as busy:
        assert busy.holder.owner == engine.owner
        assert f"pid {busy.holder.pid}" in str(busy)
    else:
        await second.stop()
        raise AssertionError("two engines ran on one data directory")


async def test_engine_status_shows_the_running_engine(service: Service, engine: Engine) -> None:
    status = await service.engine_status()
    assert status.running and status.owner == engine.owner


async def test_settings_saved_reach_the_running_engine_within_two_seconds(
    service: Service, engine: Engine
) -> None:
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    engine.wake()

    async def copied() -> bool:
        return await statuses(service, mailbox) == {"COMPLETED"}

    await eventually(copied)
    reason = "Closed for stocktaking until Monday."
    form = IntegrationForm(default_rule=DefaultRule.REJECT, reject_reason=reason)
    await service.save_integration(mailbox, form)
    data = (await asyncio.to_thread(DEMO_ENVELOPE.read_bytes)).replace(
        b'uuid="0238cdda', b'uuid="0238cddb', 1
    )
    envelope = await service.receive_envelope(mailbox, data)  # no wake(): the engine polls

    async def rejected() -> bool:
        current = {e.uuid: e for e in await service.list_envelopes(mailbox)}[envelope.uuid]
        return current.reject_reason == reason

    await eventually(rejected, within_s=2)


async def test_a_failing_item_parks_without_stalling_others_and_can_be_reprocessed(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    # Logistics's inbox/ cannot be written: its envelopes fail.
    logistics = await enable_undeliverable(service, data_dir, "Logistics")
    purchasing = await enable(service, "Purchasing", IntegrationForm())
    engine.wake()

    async def parked() -> bool:
        jobs = await service.list_jobs(("parked",))
        return len([j for j in jobs if j.mailbox_uuid == logistics]) == 3

    await eventually(parked)
    assert await statuses(service, purchasing) == {"COMPLETED"}  # never stalled
    jobs = [j for j in await service.list_jobs(("parked",)) if j.mailbox_uuid == logistics]
    assert all("Cannot write to inbox/" in (j.last_error or "") for j in jobs)
    tries = FAST.envelope_retry.max_attempts
    one_round = ["ready"] * (tries - 1) + ["parked"]  # retried, then parked
    assert await failures_by_envelope(service, logistics) == {j.ref: one_round for j in jobs}

    # Reprocess: each item is tried again with fresh attempts (still failing, so a second
    # round of failures, then parked again); not parked at once on the attempts of before.
    assert await service.reprocess([j.id for j in jobs]) == 3

    async def tried_again() -> bool:
        failures = await failures_by_envelope(service, logistics)
        return all(len(failures.get(j.ref, [])) >= 2 * tries for j in jobs)

    await eventually(tried_again)
    assert await failures_by_envelope(service, logistics) == {j.ref: one_round * 2 for j in jobs}
    again = [j for j in await service.list_jobs(("parked",)) if j.mailbox_uuid == logistics]
    assert sorted((j.id, j.attempts) for j in again) == sorted((j.id, tries) for j in jobs)
    assert await statuses(service, purchasing) == {"COMPLETED"}


async def failures_by_envelope(service: Service, mailbox: str) -> dict[str, list[str]]:
    """The failed attempts recorded in the activity log, per envelope, oldest first."""
    failures: dict[str, list[str]] = {}
    for record in reversed(await service.activity_log(mailbox)):
        if record.error and record.envelope_uuid is not None:
            failures.setdefault(record.envelope_uuid, []).append(record.status)
    return failures
