"""AS2 both ways between a docbridge engine and pyas2lib, over real HTTP on loopback.

Receiving: pyas2lib sends to our Self URL; the payload follows the OUT path and pyas2lib checks
our MDN (signature, MIC). Sending: default rule 1 posts the envelope to pyas2lib, which answers
with its MDN, sync or async; docbridge checks it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.engine.engine import Engine, EngineLoop
from core.models import As2Message, As2Status, EnvelopeDirection, MdnMode
from core.service import Service
from tests.as2.conftest import connect_logistics, self_url
from tests.as2.partner import PARTNER_ID, PyAs2Partner
from tests.engine.test_customer_files import outgoing_xml
from tests.engine.test_default_rules import DEMO_ENVELOPE, eventually


async def outgoing(service: Service, mailbox: str) -> list[str]:
    return [
        e.uuid
        for e in await service.list_envelopes(mailbox)
        if e.direction is EnvelopeDirection.OUTGOING
    ]


PURCHASING = "26c79f73-753d-4148-b26a-5d3e9abbc6fb"  # the demo envelope's recipient


def addressed_to(mailbox: str, uuid_prefix: str = "1238cdda") -> bytes:
    """The demo envelope, addressed to ``mailbox`` (another uuid prefix: another envelope)."""
    data = DEMO_ENVELOPE.read_bytes().replace(PURCHASING.encode(), mailbox.encode())
    return data.replace(b'uuid="0238cdda', f'uuid="{uuid_prefix}'.encode(), 1)


async def messages(service: Service, mailbox: str, direction: str) -> list[As2Message]:
    return [m for m in await service.as2.messages(mailbox) if m.direction == direction]


# -- receiving ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sign", "encrypt", "compress", "digest", "enc_alg", "mdn_signed"),
    [
        (True, True, False, "sha256", "aes_256_cbc", True),
        (True, True, True, "sha1", "tripledes_192_cbc", True),
        (True, False, False, "sha384", "aes_128_cbc", False),
        (False, True, False, "sha512", "aes_192_cbc", True),
        (False, False, True, "sha256", "aes_256_cbc", False),
        (True, True, True, "sha512", "aes_128_cbc", True),
    ],
)
async def test_a_partners_envelope_becomes_an_outgoing_envelope_and_the_mdn_verifies(
    service: Service,
    as2_engine: Engine,
    partner: PyAs2Partner,
    sign: bool,
    encrypt: bool,
    compress: bool,
    digest: str,
    enc_alg: str,
    mdn_signed: bool,
) -> None:
    mailbox = await connect_logistics(service, partner)
    message = await asyncio.to_thread(
        partner.build,
        outgoing_xml(mailbox),
        sign=sign,
        encrypt=encrypt,
        compress=compress,
        digest_alg=digest,
        enc_alg=enc_alg,
        mdn_mode="SYNC",
        mdn_digest_alg=digest if mdn_signed else None,
    )
    outcome = await partner.send(self_url(as2_engine, mailbox), message)
    assert outcome.http_status == 200
    # pyas2lib checked our MDN: its signature (when asked for) and the MIC it computed.
    assert (outcome.mdn_status, outcome.mdn_detail) == ("processed", None)

    async def taken_in() -> bool:
        return len(await outgoing(service, mailbox)) == 1

    await eventually(taken_in)
    [received] = await messages(service, mailbox, "in")
    assert received.status is As2Status.RECEIVED
    assert received.message_id == message.message_id
    assert received.mdn_disposition == "processed"


async def test_a_retry_gets_the_original_mdn_and_delivers_nothing_twice(
    service: Service, as2_engine: Engine, partner: PyAs2Partner
) -> None:
    mailbox = await connect_logistics(service, partner)
    message = await asyncio.to_thread(partner.build_signed, outgoing_xml(mailbox))
    first = await partner.send(self_url(as2_engine, mailbox), message)
    again = await partner.send(self_url(as2_engine, mailbox), message)
    assert first.mdn_status == again.mdn_status == "processed"
    assert again.mdn_message_id == first.mdn_message_id  # the very same MDN
    assert again.body == first.body

    async def taken_in() -> bool:
        return len(await outgoing(service, mailbox)) == 1

    await eventually(taken_in)
    await as2_engine.wait_for_cycles(EngineLoop.FILE, 2)
    assert len(await outgoing(service, mailbox)) == 1
    assert len(await messages(service, mailbox, "in")) == 1
    statuses = [r.status for r in await service.activity_log(mailbox)]
    assert statuses.count("received") == 1 and statuses.count("duplicate") == 1


async def test_integration_off_refuses_and_stores_nothing_and_the_retry_is_processed(
    service: Service, as2_engine: Engine, partner: PyAs2Partner
) -> None:
    mailbox = await connect_logistics(service, partner, on=False)
    message = await asyncio.to_thread(
        partner.build, outgoing_xml(mailbox), sign=True, encrypt=True, mdn_mode="SYNC"
    )
    refused = await partner.send(self_url(as2_engine, mailbox), message)
    assert refused.http_status == 503
    assert refused.mdn_disposition == "processed/Error: unexpected-processing-error"
    assert b"integration for this mailbox is off" in refused.body
    assert await outgoing(service, mailbox) == []
    assert await messages(service, mailbox, "in") == []
    [logged] = await service.activity_log(mailbox)
    assert logged.status == "refused" and "off" in (logged.error or "")

    await service.set_enabled(mailbox, True)
    accepted = await partner.send(self_url(as2_engine, mailbox), message)
    assert (accepted.http_status, accepted.mdn_status) == (200, "processed")

    async def taken_in() -> bool:
        return len(await outgoing(service, mailbox)) == 1

    await eventually(taken_in)


async def test_an_unknown_partner_and_a_foreign_signature_are_told_and_nothing_is_stored(
    service: Service, as2_engine: Engine, partner: PyAs2Partner, tmp_path: Path
) -> None:
    mailbox = await connect_logistics(service, partner)
    stranger = await asyncio.to_thread(PyAs2Partner, tmp_path / "stranger")
    stranger.our_certificate = partner.our_certificate
    # Signed by a key that is not the configured partner's, under the partner's AS2 id.
    forged = await asyncio.to_thread(
        stranger.build, outgoing_xml(mailbox), sign=True, mdn_mode="SYNC"
    )
    answer = await partner.send(self_url(as2_engine, mailbox), forged)
    assert answer.http_status == 200
    assert answer.mdn_disposition == "processed/Error: authentication-failed"
    # Another AS2 id altogether: refused before the body is read.
    raw_headers = dict(forged.headers)
    raw_headers["AS2-From"] = "SOMEONE-ELSE"
    async with (
        aiohttp.ClientSession() as session,
        session.post(self_url(as2_engine, mailbox), data=forged.content, headers=raw_headers) as r,
    ):
        assert r.status == 403
        assert b"authentication-failed" in await r.read()
    await as2_engine.wait_for_cycles(EngineLoop.FILE, 2)
    assert await outgoing(service, mailbox) == []
    stored = await messages(service, mailbox, "in")
    assert [m.status for m in stored] == [As2Status.REFUSED]  # the forged signature, recorded
    # The genuine partner's message with that Message-ID is processed: refusals do not count.
    genuine = await asyncio.to_thread(
        partner.build,
        outgoing_xml(mailbox),
        sign=True,
        mdn_mode="SYNC",
        message_id=forged.message_id.partition("@")[0],
    )
    ok = await partner.send(self_url(as2_engine, mailbox), genuine)
    assert ok.mdn_status == "processed"


async def test_a_body_over_the_cap_is_refused_with_413_before_it_is_read(
    service: Service, as2_engine: Engine, partner: PyAs2Partner
) -> None:
    mailbox = await connect_logistics(service, partner)
    cap = as2_engine.config.as2.max_body_size
    headers = {"AS2-From": "PYAS2PARTNER", "AS2-To": "LOGISTICS", "Message-ID": "<big@x>"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            self_url(as2_engine, mailbox),
            data=b"x" * 1024,
            headers={**headers, "Content-Length": str(cap + 1)},
        ) as response,
    ):
        assert response.status == 413


# -- sending -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encryption", "signing", "compression", "mdn_mode", "mdn_signed"),
    [
        ("aes_256_cbc", "sha256", False, "sync", True),
        ("aes_128_cbc", "sha1", True, "sync", True),
        ("aes_192_cbc", "sha384", False, "async", True),
        ("tripledes_192_cbc", "sha512", True, "async", False),
        ("none", "sha256", False, "sync", False),
        ("aes_256_cbc", "none", False, "sync", False),
        ("aes_256_cbc", "none", False, "sync", True),  # unsigned, signed receipt: no MIC back
        ("none", "none", True, "none", False),
    ],
)
async def test_default_rule_one_sends_the_envelope_to_the_partner_and_checks_its_mdn(
    service: Service,
    as2_engine: Engine,
    partner: PyAs2Partner,
    encryption: str,
    signing: str,
    compression: bool,
    mdn_mode: str,
    mdn_signed: bool,
) -> None:
    mailbox = await connect_logistics(
        service,
        partner,
        encryption=encryption,
        signing=signing,
        compression=compression,
        mdn_mode=MdnMode(mdn_mode),
        mdn_signed=mdn_signed,
    )
    data = await asyncio.to_thread(addressed_to, mailbox)
    envelope = await service.receive_envelope(mailbox, data)
    as2_engine.wake()

    waiting = [e for e in await service.list_envelopes(mailbox) if e.status.value == "WAITING"]
    assert envelope.uuid in {e.uuid for e in waiting}  # with the demo's envelopes for Logistics

    async def delivered() -> bool:
        sent = await messages(service, mailbox, "out")
        return len(sent) == len(waiting) and all(m.status is As2Status.DELIVERED for m in sent)

    await eventually(delivered)
    assert [r.status for r in partner.received] == ["processed"] * len(waiting)
    assert data in [r.payload for r in partner.received]  # byte for byte
    sent = await messages(service, mailbox, "out")
    assert {m.message_id for m in sent} == {r.message.message_id for r in partner.received}
    # Only a signed message's MIC is checked (pyas2lib returns none for an unsigned one).
    for message in sent:
        assert message.mic_check == ("ok" if mdn_mode != "none" and signing != "none" else "")
        assert message.mdn_disposition == ("processed" if mdn_mode != "none" else "")

    async def completed() -> bool:  # async MDN: the waiting job ends it at its next turn
        current = {e.uuid: e for e in await service.list_envelopes(mailbox)}[envelope.uuid]
        return current.status.value == "COMPLETED"

    await eventually(completed)


async def test_server_errors_are_retried_with_the_same_message_id_and_refusals_park(
    service: Service, as2_engine: Engine, partner: PyAs2Partner
) -> None:
    mailbox = await connect_logistics(service, partner)
    partner.behaviour.statuses = [503, 500, 429]
    data = await asyncio.to_thread(addressed_to, mailbox)
    await service.receive_envelope(mailbox, data)
    as2_engine.wake()
    waiting = [e for e in await service.list_envelopes(mailbox) if e.status.value == "WAITING"]

    async def delivered() -> bool:
        sent = await messages(service, mailbox, "out")
        return len(sent) == len(waiting) and all(m.status is As2Status.DELIVERED for m in sent)

    await eventually(delivered, within_s=20)
    # Three answers to retry, each followed by a retry of the same message (same Message-ID).
    assert len(partner.message_ids) == len(waiting) + 3
    assert len(set(partner.message_ids)) == len(waiting)
    assert [r.status for r in partner.received] == ["processed"] * len(waiting)
    before = len(partner.message_ids)

    partner.behaviour.statuses = [403]
    other = await asyncio.to_thread(addressed_to, mailbox, "1238cddb")
    await service.receive_envelope(mailbox, other)
    as2_engine.wake()

    async def parked() -> bool:
        return any(j.mailbox_uuid == mailbox for j in await service.list_jobs(("parked",)))

    await eventually(parked)
    [job] = [j for j in await service.list_jobs(("parked",)) if j.mailbox_uuid == mailbox]
    assert "HTTP 403" in (job.last_error or "")
    assert len(partner.message_ids) == before + 1  # a refusal is not retried

    # Reprocessed once the partner is fixed: sent again, with the same Message-ID.
    assert await service.reprocess([job.id]) == 1
    as2_engine.wake()

    async def all_delivered() -> bool:
        sent = await messages(service, mailbox, "out")
        return all(m.status is As2Status.DELIVERED for m in sent)

    await eventually(all_delivered)
    assert partner.message_ids[-1] == partner.message_ids[-2]


async def test_a_wrong_mic_and_an_overdue_async_mdn_park_the_message_with_the_reason(
    service: Service, as2_engine: Engine, partner: PyAs2Partner
) -> None:
    mailbox = await connect_logistics(service, partner)
    partner.behaviour.wrong_mic = True
    data = await asyncio.to_thread(addressed_to, mailbox)
    await service.receive_envelope(mailbox, data)
    as2_engine.wake()
    waiting = [e for e in await service.list_envelopes(mailbox) if e.status.value == "WAITING"]

    async def failed() -> list[Any]:
        return [m for m in await messages(service, mailbox, "out") if m.status is As2Status.FAILED]

    async def all_failed() -> bool:
        return len(await failed()) == len(waiting)

    await eventually(all_failed)
    for wrong in await failed():
        assert wrong.mic_check == "mismatch" and "MIC" in wrong.error
    parked = [j for j in await service.list_jobs(("parked",)) if j.mailbox_uuid == mailbox]
    assert len(parked) == len(waiting) and all("MIC" in (j.last_error or "") for j in parked)

    partner.behaviour.wrong_mic = False
    partner.behaviour.hold_async_mdn = True
    await connect_logistics(service, partner, mdn_mode=MdnMode.ASYNC)
    other = await asyncio.to_thread(addressed_to, mailbox, "1238cddb")
    await service.receive_envelope(mailbox, other)
    as2_engine.wake()

    async def one_more_failed() -> bool:
        return len(await failed()) == len(waiting) + 1

    await eventually(one_more_failed, within_s=20)  # the test engine's MDN deadline is 5 s
    overdue = (await failed())[0]  # newest first
    assert "No MDN" in overdue.error
    assert overdue.mdn_mode == "async"


async def test_binary_payloads_arrive_byte_identical_both_ways(
    service: Service, as2_engine: Engine, partner: PyAs2Partner
) -> None:
    mailbox = await connect_logistics(service, partner)
    blob = os.urandom(100_000)
    message = await asyncio.to_thread(
        partner.build,
        blob,
        filename="scan.bin",
        sign=True,
        encrypt=True,
        compress=True,
        mdn_mode="SYNC",
        mdn_digest_alg="sha256",
    )
    outcome = await partner.send(self_url(as2_engine, mailbox), message)
    assert outcome.mdn_status == "processed"
    # No OUT rule takes it: it is handed back in error/, byte for byte.
    error_dir = as2_engine.config.mailboxes_dir / mailbox / "error"

    def handed_back() -> bytes | None:
        path = error_dir / "scan.bin"
        return path.read_bytes() if path.exists() else None

    async def in_error() -> bool:
        return await asyncio.to_thread(handed_back) is not None

    await eventually(in_error)
    assert await asyncio.to_thread(handed_back) == blob


async def test_a_message_resent_after_fixing_the_partner_id_lists_the_partner_it_went_to(
    service: Service, as2_engine: Engine, partner: PyAs2Partner
) -> None:
    mailbox = await connect_logistics(service, partner, partner_id="TYPO")
    await service.receive_envelope(mailbox, await asyncio.to_thread(addressed_to, mailbox))
    as2_engine.wake()

    async def parked() -> list[int]:
        return [j.id for j in await service.list_jobs(("parked",)) if j.mailbox_uuid == mailbox]

    async def all_parked() -> bool:
        sent = await messages(service, mailbox, "out")
        return bool(sent) and len(await parked()) == len(sent)

    await eventually(all_parked)
    assert {m.partner_id for m in await messages(service, mailbox, "out")} == {"TYPO"}
    await connect_logistics(service, partner)  # the right id now
    await service.reprocess(await parked())
    as2_engine.wake()

    async def delivered() -> bool:
        sent = await messages(service, mailbox, "out")
        return all(m.status is As2Status.DELIVERED for m in sent)

    await eventually(delivered)
    assert {m.partner_id for m in await messages(service, mailbox, "out")} == {PARTNER_ID}
