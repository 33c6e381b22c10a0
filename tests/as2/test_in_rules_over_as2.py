"""IN rules of an AS2 integration: each converted file is sent to the partner (not left in
cinbox/ for a customer who never connects), acknowledged by its MDN, then removed here."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.engine.engine import Engine
from core.models import As2Status
from core.service import Service
from tests.as2.conftest import connect_logistics
from tests.as2.partner import PyAs2Partner
from tests.as2.test_exchange import messages
from tests.engine.test_default_rules import eventually, statuses
from tests.rules.samples import in_rule


async def test_converted_files_go_to_the_partner_and_leave_cinbox(
    service: Service, as2_engine: Engine, partner: PyAs2Partner, data_dir: Path
) -> None:
    mailbox = (await service.resolve_mailbox("Purchasing")).uuid
    await service.create_rule(mailbox, in_rule("Orders as CSV"))
    await connect_logistics(service, partner, name="Purchasing")
    as2_engine.wake()
    orders = await service.list_envelopes(mailbox)

    async def all_sent() -> bool:
        sent = await messages(service, mailbox, "out")
        done = len(sent) == len(orders) and all(m.status is As2Status.DELIVERED for m in sent)
        return done and await statuses(service, mailbox) == {"COMPLETED"}

    await eventually(all_sent)
    received = {r.message.payload.get_filename(): r.payload for r in partner.received}
    assert sorted(received) == sorted(f"{e.uuid}.csv" for e in orders)
    for text in received.values():
        number, currency, total = text.decode().strip().split(";")  # the map's CSV line
        assert number and currency and float(total) > 0
    cinbox = data_dir / "mailboxes" / mailbox / "cinbox"

    def left_in_cinbox() -> list[str]:
        return sorted(p.name for p in cinbox.iterdir()) if cinbox.is_dir() else []

    assert await asyncio.to_thread(left_in_cinbox) == []
    activity = {(a.rule, a.status) for a in await service.activity_log(mailbox)}
    assert ("rule:Orders as CSV", "queued") in activity and ("as2:send", "sent") in activity
