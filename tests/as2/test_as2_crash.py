"""Exactly once over AS2: kill -9 of ``docbridge serve`` while a pyas2lib partner sends 500
messages. Each payload is stored once, and the partner's retry of a message that got no answer
(connection cut, no MDN, HTTP 5xx) gets a correct MDN: the original one when the first copy was
recorded before the kill, a fresh one when it was not.

The partner re-sends the very same built message (same Message-ID, same bytes), as an AS2
gateway does, until it has an MDN; pyas2lib verifies each MDN (signature and MIC). Each engine
life is killed after a random amount of progress (new MDNs), with 8 messages in flight. At the
end, with the engine up again, some answered messages are sent once more (an answer lost on
the way back looks the same to the engine): each gets its original MDN, byte for byte.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from pyas2lib import as2

from core.models import As2Status, EnvelopeDirection, JobState
from core.service import Service
from tests.as2.conftest import connect_logistics
from tests.as2.partner import PyAs2Partner, SendOutcome
from tests.engine.conftest import SmtpServer, free_port
from tests.engine.test_crash import start_engine, without_orphaned_spawns
from tests.engine.test_customer_files import outgoing_xml
from tests.engine.test_default_rules import eventually
from tests.engine.test_file_identity import taken

TOTAL = 500
KILLS = 5
SENDERS = 8  # messages in flight at once: a kill cuts several mid-exchange
RESENDS = 25  # answered messages sent again at the end, as after a lost answer
UNFINISHED = (JobState.READY, JobState.RUNNING, JobState.PARKED)


def configure(data_dir: Path, smtp_port: int) -> int:
    """AS2 on a free loopback port (the Self URLs follow it); returns the port."""
    port = free_port()
    (data_dir / "docbridge.toml").write_text(
        f'[as2]\nport = {port}\npublic_url = "http://127.0.0.1:{port}/as2"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\ntls_mode = "none"\n',
        encoding="utf-8",
    )
    return port


@dataclass
class Tally:
    answers: dict[int, SendOutcome] = field(default_factory=dict)  # message number -> its MDN
    tries: dict[int, int] = field(default_factory=dict)
    unanswered: list[str] = field(default_factory=list)  # why tries got no MDN

    @property
    def retried(self) -> int:
        return sum(1 for n in self.tries.values() if n > 1)


def waiting_files(root: Path) -> list[Path]:
    """Payloads not yet taken in: in outbox/, or claimed in .taking/ (a claim a kill left half
    written, under a .new- name, is no claim: its message was never answered)."""
    claimed = [p for p in taken(root) if not p.parent.name.startswith(".")]
    return [*(root / "outbox").iterdir(), *claimed]


async def listening(port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def send_until_answered(
    partner: PyAs2Partner, url: str, port: int, number: int, message: as2.Message, tally: Tally
) -> None:
    """Send, and send the same message again until an MDN comes back (a sync MDN, HTTP < 500),
    as AS2 senders do."""
    deadline = time.monotonic() + 120
    while True:
        tally.tries[number] = tally.tries.get(number, 0) + 1
        try:
            outcome = await partner.send(url, message)
        except (TimeoutError, aiohttp.ClientError) as exc:
            tally.unanswered.append(type(exc).__name__)
        else:
            if outcome.http_status < 500 and outcome.mdn_status is not None:
                tally.answers[number] = outcome
                return
            tally.unanswered.append(f"HTTP {outcome.http_status}, MDN {outcome.mdn_status}")
        assert time.monotonic() < deadline, f"message {number} never answered"
        # The engine is down (or going down): retry once it listens again.
        await eventually(lambda: listening(port), within_s=60)


async def test_kill_9_while_a_partner_sends_stores_each_payload_once_and_answers_each_retry(
    service: Service, data_dir: Path, smtp_server: SmtpServer, partner: PyAs2Partner, tmp_path: Path
) -> None:
    port = await asyncio.to_thread(configure, data_dir, smtp_server.port)
    mailbox = await connect_logistics(service, partner)
    url = f"http://127.0.0.1:{port}/as2/{mailbox}"
    root = data_dir / "mailboxes" / mailbox
    rng = random.Random(4130_500)
    before = {
        e.uuid
        for e in await service.list_envelopes(mailbox)
        if e.direction is EnvelopeDirection.OUTGOING
    }
    expected = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(TOTAL)]

    def build_all() -> list[as2.Message]:
        return [
            partner.build(
                outgoing_xml(mailbox, envelope_uuid),
                filename=f"order-{number}.xml",
                sign=True,
                encrypt=True,
                digest_alg="sha256",
                enc_alg="aes_256_cbc",
                mdn_mode="SYNC",
                mdn_digest_alg="sha256",
            )
            for number, envelope_uuid in enumerate(expected)
        ]

    built = await asyncio.to_thread(build_all)
    assert len({m.message_id for m in built}) == TOTAL

    log = tmp_path / "serve.log"
    process = start_engine(data_dir, log)
    tally = Tally()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(TOTAL):
        queue.put_nowait(number)

    async def sender() -> None:
        while not queue.empty():
            number = queue.get_nowait()
            await send_until_answered(partner, url, port, number, built[number], tally)

    senders: list[asyncio.Task[None]] = []
    try:
        await eventually(lambda: listening(port), within_s=30)
        senders = [asyncio.create_task(sender()) for _ in range(SENDERS)]
        kills = 0
        while kills < KILLS:
            # Each life makes progress first: a random number of new MDNs, then the kill.
            target = len(tally.answers) + rng.randint(20, TOTAL // (KILLS + 1))

            async def progressed(target: int = target) -> bool:
                return len(tally.answers) >= min(target, TOTAL - SENDERS)

            await eventually(progressed, within_s=60)
            if len(tally.answers) >= TOTAL - SENDERS:
                break
            os.kill(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait)
            kills += 1
            process = start_engine(data_dir, log)
        await asyncio.gather(*senders)

        async def settled() -> bool:
            pending = await service.list_jobs(UNFINISHED, limit=5000)
            left = await asyncio.to_thread(waiting_files, root)
            return not [j for j in pending if j.kind == "file"] and not left

        try:
            await eventually(settled, within_s=60)
        except AssertionError:
            pending = await service.list_jobs(UNFINISHED, limit=5000)
            left = await asyncio.to_thread(waiting_files, root)
            detail = [(j.kind, j.state, j.ref, j.last_error) for j in pending][:5]
            raise AssertionError(f"not settled: {detail} {left[:5]}") from None
        # Answers lost on the way back look the same to the engine: the partner resends. The
        # records survived the kills, so each resend gets the original MDN, byte for byte.
        for number in rng.sample(range(TOTAL), RESENDS):
            again = await partner.send(url, built[number])
            assert (again.http_status, again.mdn_status) == (200, "processed"), number
            assert again.mdn_message_id == tally.answers[number].mdn_message_id
            assert again.body == tally.answers[number].body
    finally:
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 20)

    print(
        f"{kills} kills; {sum(tally.tries.values())} sends for {TOTAL} messages, "
        f"{tally.retried} retried; unanswered tries: {len(tally.unanswered)}"
    )
    assert kills == KILLS
    assert tally.retried > 0  # kills cut exchanges under way: those were sent again
    # Every message has an MDN that pyas2lib verified: signed by us, the MIC it computed.
    assert sorted(tally.answers) == list(range(TOTAL))
    for number, outcome in tally.answers.items():
        assert (outcome.http_status, outcome.mdn_status, outcome.mdn_detail) == (
            200,
            "processed",
            None,
        ), (number, outcome.mdn_detail, outcome.mdn_disposition, outcome.body[-600:])
        assert outcome.mdn_disposition == "processed"
    # Each payload became exactly one outgoing envelope: none missing, none twice.
    envelopes = await service.list_envelopes(mailbox, limit=5000)
    sent = [
        e.uuid
        for e in envelopes
        if e.direction is EnvelopeDirection.OUTGOING and e.uuid not in before
    ]
    assert sorted(sent) == sorted(expected)
    assert await asyncio.to_thread(lambda: sorted(p.name for p in (root / "error").iterdir())) == []
    # The message log: 500 received, one per Message-ID, none refused.
    received = [m for m in await service.as2.messages(mailbox, limit=5000) if m.direction == "in"]
    assert len(received) == TOTAL
    assert {m.status for m in received} == {As2Status.RECEIVED}
    assert {m.message_id for m in received} == {m.message_id for m in built}
    assert {m.mdn_disposition for m in received} == {"processed"}
    # The activity log: one "received" per message; retries of recorded ones are duplicates.
    activity = [r.status for r in await service.activity_log(mailbox, limit=5000)]
    assert activity.count("received") == TOTAL
    duplicates = activity.count("duplicate")
    assert duplicates >= RESENDS
    print(f"{duplicates} resends answered with the original MDN ({RESENDS} after the kills)")
    text = without_orphaned_spawns(log.read_text())
    assert "Traceback" not in text, text[-3000:]
