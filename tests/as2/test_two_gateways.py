"""Two docbridge data directories exchange messages both ways over AS2, through their engines.

Gateway 1's mailbox Logistics (A) and gateway 2's mailbox Purchasing (B) are each other's AS2
partner: each side's partner certificate is the other's own certificate, the AS2 ids match
and each partner URL is the other's Self URL. The envelope under test is sent by B and
addressed to A: on gateway 1 the platform hands it to A (its recipient), and default rule 1
sends it over AS2 to A's partner, gateway 2. There it arrives as a payload of B and follows the
OUT path: envelope XML whose sender is B is what B may send, so it becomes B's outgoing
envelope, same uuid, same content. The reverse direction is the mirror image (sent by A,
addressed to B). This is a relay between two platforms: what one side's mailbox receives, the
other side's mailbox sends on, byte for byte.

The demo data gives each mailbox envelopes waiting for delivery; once AS2 is on they go to the
other gateway too, where their sender (a demo customer, not the receiving mailbox) is refused:
they are handed back in ``error/`` with the reason, and the AS2 exchange itself still
succeeded (the payload was stored and acknowledged).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from core.bootstrap import init_data_dir
from core.config import load_config
from core.engine.engine import Engine
from core.models import (
    As2Message,
    As2Settings,
    As2Status,
    EnvelopeDirection,
    IntegrationForm,
    MdnMode,
    TransferProtocol,
)
from core.service import Service
from tests.engine.conftest import FAST, use_free_as2_port
from tests.engine.test_customer_files import ACME, outgoing_xml
from tests.engine.test_default_rules import eventually


@dataclass
class Gateway:
    directory: Path
    service: Service
    engine: Engine
    mailbox: str  # the mailbox that is partnered with the other gateway's
    as2_id: str = ""

    @property
    def self_url(self) -> str:
        return f"{self.engine.config.as2.public_url}/{self.mailbox}"

    @property
    def root(self) -> Path:
        return self.directory / "mailboxes" / self.mailbox


async def open_gateway(
    directory: Path, service: Service | None, mailbox_name: str, as2_id: str
) -> Gateway:
    if service is None:
        await init_data_dir(directory, with_demo=True, actor="test@setup")
        service = await Service.open(directory, actor="test@pytest")
    await asyncio.to_thread(use_free_as2_port, directory)
    config = await asyncio.to_thread(load_config, directory)
    engine = Engine(config, replace(FAST, run_as2=True))
    mailbox = (await service.resolve_mailbox(mailbox_name)).uuid
    return Gateway(directory, service, engine, mailbox, as2_id)


async def partner_up(one: Gateway, other: Gateway, mode: MdnMode) -> None:
    """Save one side's AS2 integration with the other as its partner, and switch it on."""
    other_certificate = (await other.service.ensure_as2_identity(other.mailbox)).certificate_pem
    own_certificate = (await one.service.ensure_as2_identity(one.mailbox)).certificate_pem
    settings = As2Settings(
        self_id=one.as2_id,
        partner_id=other.as2_id,
        partner_url=other.self_url,
        partner_certificate=other_certificate,
        mdn_mode=mode,
    )
    form = IntegrationForm(protocol=TransferProtocol.AS2, as2=settings)
    saved = await one.service.save_integration(one.mailbox, form)
    assert saved.as2_identity is not None
    assert saved.as2_identity.certificate_pem == own_certificate  # what the other side trusts
    await one.service.set_enabled(one.mailbox, True)


@pytest.fixture
async def gateways(
    request: pytest.FixtureRequest, data_dir: Path, service: Service, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, Gateway]]:
    mode = MdnMode(request.param)
    first = await open_gateway(data_dir, service, "Logistics", "GATEWAY1-LOGISTICS")
    second = await open_gateway(tmp_path / "home2", None, "Purchasing", "GATEWAY2-PURCHASING")
    try:
        await partner_up(first, second, mode)
        await partner_up(second, first, mode)
        await first.engine.start()
        await second.engine.start()
        yield first, second
    finally:
        await first.engine.stop()
        await second.engine.stop()
        await second.service.close()


def relayed(sender: str, recipient: str, envelope_uuid: str) -> bytes:
    """Envelope XML sent by ``sender``'s mailbox to ``recipient``'s."""
    data = outgoing_xml(sender, envelope_uuid)  # sender's, addressed to Acme
    data = data.replace(
        f'<role id="recipient" mailboxUuid="{ACME}"/>'.encode(),
        f'<role id="recipient" mailboxUuid="{recipient}"/>'.encode(),
    )
    assert f'mailboxUuid="{recipient}"'.encode() in data
    return data


async def as2_log(gateway: Gateway, direction: str) -> list[As2Message]:
    return [
        m
        for m in await gateway.service.as2.messages(gateway.mailbox, limit=1000)
        if m.direction == direction
    ]


async def outgoing(gateway: Gateway) -> set[str]:
    """The uuids of the mailbox's outgoing envelopes."""
    return {
        e.uuid
        for e in await gateway.service.list_envelopes(gateway.mailbox, limit=1000)
        if e.direction is EnvelopeDirection.OUTGOING
    }


async def exchange(source: Gateway, target: Gateway, mode: str) -> None:
    """An envelope for ``source``'s mailbox, sent by ``target``'s: it is delivered over AS2 to
    ``target``, acknowledged there, and becomes ``target``'s outgoing envelope."""
    envelope_uuid = str(uuid.uuid4())
    data = relayed(target.mailbox, source.mailbox, envelope_uuid)
    envelope = await source.service.receive_envelope(source.mailbox, data)
    assert envelope.uuid == envelope_uuid
    source.engine.wake()
    # Default rule 1 sends each envelope the mailbox receives: ours and the demo's.
    incoming = [
        e
        for e in await source.service.list_envelopes(source.mailbox)
        if e.direction is EnvelopeDirection.INCOMING
    ]
    demo = [e for e in incoming if e.uuid != envelope_uuid]
    expected = len(incoming)

    async def acknowledged() -> bool:
        sent = await as2_log(source, "out")
        if len(sent) != expected or any(m.status is not As2Status.DELIVERED for m in sent):
            return False
        # With an asynchronous MDN the envelope completes just after (its job ends then).
        now = await source.service.list_envelopes(source.mailbox)
        return {e.status.value for e in now if e.direction is EnvelopeDirection.INCOMING} == {
            "COMPLETED"
        }

    async def arrived() -> bool:
        return envelope_uuid in await outgoing(target)

    await eventually(acknowledged, within_s=30)
    await eventually(arrived, within_s=30)

    # The sender's log: each message delivered, the partner's MDN processed and its MIC ours.
    sent = await as2_log(source, "out")
    assert {(m.partner_id, m.mdn_mode, m.mdn_disposition, m.mic_check) for m in sent} == {
        (target.as2_id, mode, "processed", "ok")
    }
    # The receiver's log: the same Message-IDs, received, answered "processed".
    received = await as2_log(target, "in")
    assert {m.message_id for m in received} == {m.message_id for m in sent}
    assert {(m.partner_id, m.status, m.mdn_mode, m.mdn_disposition) for m in received} == {
        (source.as2_id, As2Status.RECEIVED, mode, "processed")
    }
    # The envelope under test is now the target mailbox's outgoing envelope, as sent.
    [relayed_envelope] = [
        e for e in await target.service.list_envelopes(target.mailbox) if e.uuid == envelope_uuid
    ]
    assert relayed_envelope.direction is EnvelopeDirection.OUTGOING
    assert relayed_envelope.subject == envelope.subject

    # The demo envelopes were not sent by the target mailbox: handed back with the reason.
    async def handed_back() -> bool:
        names = await asyncio.to_thread(
            lambda: sorted(p.name for p in (target.root / "error").iterdir())
        )
        return len([n for n in names if n.endswith(".error.txt")]) == len(demo)

    await eventually(handed_back, within_s=30)
    notes = await asyncio.to_thread(
        lambda: [p.read_text() for p in (target.root / "error").glob("*.error.txt")]
    )
    assert all("sender" in note for note in notes), notes


@pytest.mark.sqlite_only("two separate installations, each with a store of its own")
@pytest.mark.parametrize("gateways", ["sync", "async"], indirect=True)
async def test_two_data_directories_exchange_envelopes_both_ways_over_as2(
    gateways: tuple[Gateway, Gateway], request: pytest.FixtureRequest
) -> None:
    first, second = gateways
    mode = request.node.callspec.params["gateways"]
    await exchange(first, second, mode)  # Logistics (gateway 1) -> Purchasing (gateway 2)
    await exchange(second, first, mode)  # and back
