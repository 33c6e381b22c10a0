"""Every combination pyas2lib offers, both ways, over real HTTP with a running engine: signed
(SHA-1/256/384/512) or not × encrypted (3DES, AES-128/192/256-CBC) or not × compressed or not ×
sync/async MDN. Payload and MIC must be identical on both sides.

One engine and one partner serve a whole direction's matrix (each combination is one message),
so the full product stays a few seconds rather than an engine start per case.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from core.engine.engine import Engine
from core.models import As2Status, MdnMode
from core.service import Service
from tests.as2.conftest import connect_logistics, self_url
from tests.as2.partner import PyAs2Partner
from tests.as2.test_exchange import addressed_to, messages
from tests.engine.test_customer_files import outgoing_xml
from tests.engine.test_default_rules import eventually

DIGESTS = ("sha1", "sha256", "sha384", "sha512")
CIPHERS = ("tripledes_192_cbc", "aes_128_cbc", "aes_192_cbc", "aes_256_cbc")


@dataclass(frozen=True)
class Combination:
    digest: str | None  # None: not signed
    cipher: str | None  # None: not encrypted
    compress: bool
    mdn: str  # "sync" or "async"

    def __str__(self) -> str:
        return f"{self.digest or 'unsigned'}/{self.cipher or 'clear'}/" + (
            f"{'compressed' if self.compress else 'plain'}/{self.mdn}"
        )


COMBINATIONS = [
    Combination(digest, cipher, compress, mdn)
    for digest, cipher, compress, mdn in itertools.product(
        (None, *DIGESTS), (None, *CIPHERS), (False, True), ("sync", "async")
    )
]


def uuid_for(number: int) -> str:
    return f"7c0f4c1e-7d2a-4e8b-9c3d-{number:012d}"


async def test_pyas2lib_to_docbridge_every_combination(
    service: Service, as2_engine: Engine, partner: PyAs2Partner
) -> None:
    mailbox = await connect_logistics(service, partner)
    sent: dict[str, tuple[Combination, bytes]] = {}
    for number, combination in enumerate(COMBINATIONS):
        payload = outgoing_xml(mailbox, uuid_for(number))
        message = await asyncio.to_thread(
            partner.build,
            payload,
            sign=combination.digest is not None,
            digest_alg=combination.digest or "sha256",
            encrypt=combination.cipher is not None,
            enc_alg=combination.cipher or "aes_256_cbc",
            compress=combination.compress,
            mdn_mode=combination.mdn.upper(),
            mdn_digest_alg=combination.digest,  # a signed receipt for a signed message
        )
        outcome = await partner.send(self_url(as2_engine, mailbox), message)
        assert outcome.http_status == 200, combination
        if combination.mdn == "sync":
            # pyas2lib checked our MDN: signature (when asked for) and its own MIC.
            assert (outcome.mdn_status, outcome.mdn_detail) == ("processed", None), combination
        sent[message.message_id] = (combination, payload)

    async def all_taken_in() -> bool:
        envelopes = {e.uuid for e in await service.list_envelopes(mailbox, limit=1000)}
        return all(uuid_for(n) in envelopes for n in range(len(COMBINATIONS)))

    await eventually(all_taken_in, within_s=60)
    received = {m.message_id: m for m in await messages(service, mailbox, "in")}
    assert set(received) == set(sent)
    assert all(m.status is As2Status.RECEIVED for m in received.values())

    # The asynchronous MDNs reached the partner's MDN URL, each for its message, verified.
    async def async_mdns_arrived() -> bool:
        return len(partner.async_mdns) == sum(1 for c in COMBINATIONS if c.mdn == "async")

    await eventually(async_mdns_arrived, within_s=60)
    originals = {m.message_id: m for m in partner.sent_messages}
    for headers, body in partner.async_mdns:
        status, detail, original = await asyncio.to_thread(partner.check_mdn, headers, body)
        assert (status, detail) == ("processed", None), sent[original.message_id][0]
        assert original.message_id in originals


async def test_docbridge_to_pyas2lib_every_combination(
    service: Service, as2_engine: Engine, partner: PyAs2Partner
) -> None:
    mailbox = await connect_logistics(service, partner)
    for number, combination in enumerate(COMBINATIONS):
        await connect_logistics(
            service,
            partner,
            signing=combination.digest or "none",
            encryption=combination.cipher or "none",
            compression=combination.compress,
            mdn_mode=MdnMode(combination.mdn),
            mdn_signed=combination.digest is not None,
        )
        data = await asyncio.to_thread(addressed_to, mailbox, f"{number:08x}")
        await service.receive_envelope(mailbox, data)
        as2_engine.wake()

        async def delivered(expected: bytes = data) -> bool:
            return any(r.payload == expected for r in partner.received) and all(
                m.status is As2Status.DELIVERED for m in await messages(service, mailbox, "out")
            )

        await eventually(delivered, within_s=20)
        [got] = [r for r in partner.received if r.payload == data]
        assert got.status == "processed", combination
        assert got.message.signed == (combination.digest is not None), combination
        assert got.message.encrypted == (combination.cipher is not None), combination
        assert got.message.compressed == combination.compress, combination
        [ours] = [
            m
            for m in await messages(service, mailbox, "out")
            if m.message_id == got.message.message_id
        ]
        # The MIC pyas2lib computed is the one we expected back (checked on our side): equal.
        assert ours.mic_check == ("ok" if combination.digest else ""), combination
