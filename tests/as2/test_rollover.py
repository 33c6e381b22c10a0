"""Certificate rollover, both sides: a partner's second certificate is accepted while both are
valid (and we encrypt to the newest); a renewed self certificate signs from then on while the
old key still decrypts what partners encrypted to the old certificate."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.engine.engine import Engine
from core.models import As2Status
from core.service import Service
from tests.as2.conftest import connect_logistics, self_url
from tests.as2.partner import PyAs2Partner
from tests.as2.test_exchange import addressed_to, messages, outgoing
from tests.engine.test_customer_files import outgoing_xml
from tests.engine.test_default_rules import eventually


async def test_a_partner_rolling_over_is_verified_with_either_certificate_and_gets_the_newest(
    service: Service, as2_engine: Engine, partner: PyAs2Partner, tmp_path: Path
) -> None:
    renewed = await asyncio.to_thread(PyAs2Partner, tmp_path / "renewed")  # same id, new key
    await renewed.start()
    try:
        both = partner.certificate_pem + renewed.certificate_pem
        mailbox = await connect_logistics(
            service, partner, partner_certificate=both, partner_url=renewed.url
        )
        renewed.our_certificate = partner.our_certificate
        for sender, uuid in ((partner, "a1"), (renewed, "b2")):
            built = await asyncio.to_thread(
                sender.build,
                outgoing_xml(mailbox, f"5b0f4c1e-7d2a-4e8b-9c3d-1a2b3c4d5e{uuid}"),
                sign=True,
                encrypt=True,
                mdn_mode="SYNC",
            )
            answer = await sender.send(self_url(as2_engine, mailbox), built)
            assert answer.mdn_status == "processed", answer.mdn_detail

        async def both_taken_in() -> bool:
            return len(await outgoing(service, mailbox)) == 2

        await eventually(both_taken_in)

        # Sending: encrypted to the newest certificate, which only the renewed key decrypts.
        await service.receive_envelope(mailbox, await asyncio.to_thread(addressed_to, mailbox))
        as2_engine.wake()

        async def delivered() -> bool:
            sent = await messages(service, mailbox, "out")
            return bool(sent) and all(m.status is As2Status.DELIVERED for m in sent)

        await eventually(delivered)
        assert renewed.received and all(r.status == "processed" for r in renewed.received)
        assert partner.received == []
    finally:
        await renewed.stop()


async def test_a_renewed_self_certificate_signs_and_the_old_key_still_decrypts(
    service: Service, as2_engine: Engine, partner: PyAs2Partner
) -> None:
    mailbox = await connect_logistics(service, partner)
    old_certificate = partner.our_certificate
    new = await service.as2.renew_identity(mailbox)
    assert new.certificate_pem.encode() != old_certificate
    # A partner that has not switched yet encrypts to the old certificate: still processed.
    built = await asyncio.to_thread(partner.build_signed, outgoing_xml(mailbox))
    answer = await partner.send(self_url(as2_engine, mailbox), built)
    assert answer.mdn_disposition == "processed"
    # The MDN is signed with the new key: the partner verifies it once it has the new one.
    assert answer.mdn_status != "processed"
    partner.our_certificate = new.certificate_pem.encode()
    again = await asyncio.to_thread(
        partner.build_signed, outgoing_xml(mailbox, "5b0f4c1e-7d2a-4e8b-9c3d-1a2b3c4d5eff")
    )
    verified = await partner.send(self_url(as2_engine, mailbox), again)
    assert verified.mdn_status == "processed", verified.mdn_detail

    async def both_taken_in() -> bool:
        return len(await outgoing(service, mailbox)) == 2

    await eventually(both_taken_in)
    state = await service.page_state(mailbox)
    assert state.as2_identity is not None
    assert state.as2_identity.fingerprint_sha256 == new.fingerprint_sha256
