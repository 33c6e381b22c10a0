"""What the activity log says when a partner refuses a message: its words, not MIME."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.as2.client import Answer
from core.as2.messages import refusal_mdn
from core.engine.engine import Engine
from core.service import Service
from tests.as2.conftest import connect_logistics
from tests.as2.partner import PyAs2Partner
from tests.as2.test_exchange import addressed_to, messages
from tests.engine.test_default_rules import eventually


def test_an_error_mdn_answer_reads_as_the_partner_s_sentence() -> None:
    text = "The integration for this mailbox is off; nothing was stored. Send it again later."
    headers = [("AS2-From", "P"), ("AS2-To", "US"), ("Message-ID", "<m@x>")]
    mdn = refusal_mdn([*headers, ("Disposition-Notification-To", "a@b")], "x", text)
    assert mdn is not None
    described = Answer(503, mdn.headers, mdn.body).describe()
    assert described == f"HTTP 503: {text}"
    assert Answer(403, (), b"not now\n").describe() == "HTTP 403: not now"


async def test_https_to_a_plain_http_partner_says_to_use_http(
    service: Service, as2_engine: Engine, partner: PyAs2Partner, tmp_path: Path
) -> None:
    mailbox = await connect_logistics(
        service, partner, partner_url=partner.url.replace("http://", "https://")
    )
    await service.receive_envelope(mailbox, await asyncio.to_thread(addressed_to, mailbox))
    as2_engine.wake()

    async def told() -> bool:
        return any("plain HTTP" in m.error for m in await messages(service, mailbox, "out"))

    await eventually(told)
