"""kill -9 of `docbridge serve` at random moments while 1,000 envelopes arrive: every envelope
ends in exactly one terminal state, one inbox file each, one mail each; while customer files
arrive: each becomes exactly one envelope."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from core.models import DefaultRule, EnvelopeDirection, IntegrationForm
from core.service import Service
from core.sftp.folders import ensure_mailbox_root
from tests.conftest import DOCBRIDGE
from tests.engine.conftest import SmtpServer, free_port
from tests.engine.test_customer_files import outgoing_xml
from tests.engine.test_default_rules import eventually
from tests.engine.test_file_identity import place, taken
from tests.rules.samples import CSV_TO_ORDERS_1_0, ORDERS_CSV, in_rule, out_rule

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo" / "envelopes"
TOTAL = 1000
KILLS = 12
FILES = 300
FILE_KILLS = 8


def configure(data_dir: Path, smtp_port: int) -> None:
    (data_dir / "docbridge.toml").write_text(
        f"[sftp]\nport = {free_port()}\n[as2]\nport = {free_port()}\n"
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\ntls_mode = "none"\n',
        encoding="utf-8",
    )


def with_new_uuid(template: str) -> tuple[str, bytes]:
    start = template.index(' uuid="') + len(' uuid="')
    fresh = str(uuid.uuid4())
    return fresh, (template[:start] + fresh + template[start + 36 :]).encode()


def start_engine(data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [str(DOCBRIDGE), "--data-dir", str(data_dir), "serve", "--no-sftp"],
            stdout=sink,
            stderr=sink,
            stdin=subprocess.DEVNULL,
        )


async def three_mailboxes_on(service: Service) -> tuple[dict[str, DefaultRule], dict[str, str]]:
    """Purchasing and Logistics copy, Accounts Payable notifies, all switched on: each
    mailbox's default rule, and a demo envelope addressed to it (to copy with new uuids)."""
    targets = {}
    for name, rule in (
        ("Purchasing", DefaultRule.COPY),
        ("Accounts Payable", DefaultRule.NOTIFY),
        ("Logistics", DefaultRule.COPY),
    ):
        mailbox = await service.resolve_mailbox(name)
        form = IntegrationForm(default_rule=rule, notify_email="ops@example.com")
        await service.save_integration(mailbox.uuid, form)
        await service.set_enabled(mailbox.uuid, True)
        targets[mailbox.uuid] = rule
    templates: dict[str, str] = {}
    for path in sorted(DEMO.glob("*.xml")):
        text = path.read_text(encoding="utf-8")
        for mailbox_uuid in targets:
            if mailbox_uuid in text:
                templates.setdefault(mailbox_uuid, text)
    return targets, templates


async def kill_repeatedly(
    data_dir: Path, log: Path, kills: int, pause: Callable[[], float]
) -> subprocess.Popen[bytes]:
    """Start serve, then ``kills`` times: wait ``pause()`` seconds (the random moment under
    test), kill -9 it and start it again; returns the last one, still running."""
    process = start_engine(data_dir, log)
    for _ in range(kills):
        await asyncio.sleep(pause())
        os.kill(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.wait)
        process = start_engine(data_dir, log)
    return process


async def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    service: Service, data_dir: Path, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    configure(data_dir, smtp_server.port)
    rng = random.Random(4130)
    targets, templates = await three_mailboxes_on(service)
    demo_uuids = {e.uuid for e in await service.list_envelopes()}

    injected: dict[str, str] = {}

    async def inject() -> None:
        mailboxes = list(targets)
        for i in range(TOTAL - len(demo_uuids)):
            mailbox_uuid = mailboxes[i % len(mailboxes)]
            envelope_uuid, data = with_new_uuid(templates[mailbox_uuid])
            await service.receive_envelope(mailbox_uuid, data)
            injected[envelope_uuid] = mailbox_uuid
            if i % 25 == 0:
                await asyncio.sleep(0.05)

    log = tmp_path / "serve.log"
    injector = asyncio.create_task(inject())
    kills = 0
    process = start_engine(data_dir, log)
    while kills < KILLS:
        await asyncio.sleep(rng.uniform(0.2, 1.2))
        os.kill(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.wait)
        kills += 1
        process = start_engine(data_dir, log)
    await injector

    async def settled() -> bool:
        pending = await service.list_jobs(("ready", "running", "parked"), limit=5000)
        return not pending

    try:
        for _ in range(600):
            if await settled():
                break
            await asyncio.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 20)
    assert await settled(), log.read_text()[-3000:]

    envelopes = await service.list_envelopes(limit=5000)
    assert len(envelopes) == TOTAL
    assert {e.status.value for e in envelopes} == {"COMPLETED"}

    for mailbox_uuid, rule in targets.items():
        mine = {e.uuid for e in envelopes if e.mailbox_uuid == mailbox_uuid}
        inbox = data_dir / "mailboxes" / mailbox_uuid / "inbox"
        files = sorted(p.name for p in inbox.iterdir()) if inbox.exists() else []
        if rule is DefaultRule.COPY:
            assert files == sorted(f"{u}.xml" for u in mine)
        else:
            assert files == []
            ids = smtp_server.sink.message_ids()
            expected = sorted(f"<{u}.notification@localhost>" for u in mine)
            # One mail per envelope. SMTP has no way to ask whether a message arrived, so a
            # kill between the server's 250 and our commit resends it, with the same
            # Message-ID: at most one such resend per kill (mails go out one at a time).
            assert sorted(set(ids)) == expected
            print(f"mails: {len(ids)} received, {len(ids) - len(set(ids))} resent after kills")
            assert len(ids) - len(set(ids)) <= kills
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]


async def test_kill_9_while_files_are_taken_in_takes_each_exactly_once(
    service: Service, data_dir: Path, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """Files claimed into .taking/ when the engine dies are found again by the next engine:
    each upload becomes exactly one envelope (a second take-in of a file would land in
    error/ as a duplicate uuid), and nothing is left behind."""
    configure(data_dir, smtp_server.port)
    rng = random.Random(8_3_3)
    mailbox = (await service.resolve_mailbox("Purchasing")).uuid
    await service.save_integration(mailbox, IntegrationForm())
    await service.set_enabled(mailbox, True)
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    uploaded: set[str] = set()

    async def upload() -> None:
        for i in range(FILES):
            envelope_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            data = outgoing_xml(mailbox, envelope_uuid)
            await asyncio.to_thread(place, root, f"order-{i}.xml", data)
            uploaded.add(envelope_uuid)
            if i % 10 == 0:
                await asyncio.sleep(0.05)

    log = tmp_path / "serve.log"
    uploader = asyncio.create_task(upload())
    process = await kill_repeatedly(data_dir, log, FILE_KILLS, lambda: rng.uniform(0.2, 1.0))
    await uploader

    async def settled() -> bool:
        pending = await service.list_jobs(("ready", "running", "parked"), limit=5000)
        left = await asyncio.to_thread(lambda: [*(root / "outbox").iterdir(), *taken(root)])
        return not left and not [j for j in pending if j.kind == "file"]

    try:
        await eventually(settled, within_s=60)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 20)
    sent = {
        e.uuid
        for e in await service.list_envelopes(mailbox, limit=5000)
        if e.direction is EnvelopeDirection.OUTGOING
    }
    assert sent == uploaded
    assert list((root / "error").iterdir()) == []
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]


CONVERSIONS = 240
CONVERSION_KILLS = 8


async def test_kill_9_during_in_and_out_conversions_makes_each_file_and_envelope_once(
    service: Service, data_dir: Path, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """IN: envelopes through a rule whose pattern gives them all the same name, so every file
    after the first needs the clash suffix: a retry that chose a new name would leave a second
    file. OUT: CSV files of two rows each through a rule whose map gives no uuids: a retry
    that did not reuse the derived uuids would record a second envelope."""
    configure(data_dir, smtp_server.port)
    rng = random.Random(9_4_1)
    mailbox = (await service.resolve_mailbox("Purchasing")).uuid
    await service.create_rule(mailbox, in_rule("Orders", naming_pattern="order.csv"))
    await service.create_rule(mailbox, out_rule("CSV orders", CSV_TO_ORDERS_1_0))
    await service.save_integration(mailbox, IntegrationForm())
    await service.set_enabled(mailbox, True)
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    template = (DEMO / "01-purchase-order-acme.xml").read_text(encoding="utf-8")
    header = ORDERS_CSV.splitlines(keepends=True)[0]
    expected_subjects: set[str] = set()

    async def arrive() -> None:
        for i in range(CONVERSIONS):
            await service.receive_envelope(mailbox, with_new_uuid(template)[1])
            rows = b"".join(
                f"PO-{i}-{n};2026-11-0{n};EUR;A-{n};{n};1.00\n".encode() for n in (1, 2)
            )
            await asyncio.to_thread(place_in_coutbox, root, f"orders-{i}.csv", header + rows)
            expected_subjects.update({f"Order PO-{i}-1", f"Order PO-{i}-2"})
            if i % 10 == 0:
                await asyncio.sleep(0.05)

    log = tmp_path / "serve.log"
    arrivals = asyncio.create_task(arrive())
    # Each restart spawns the conversion workers anew before its first batch converts; an
    # engine killed sooner every time would park its in-flight items as poison (attempts used
    # up by kills), which is that policy working, not what this test is after.
    process = await kill_repeatedly(data_dir, log, CONVERSION_KILLS, lambda: rng.uniform(0.5, 2.5))
    await arrivals

    async def settled() -> bool:
        pending = await service.list_jobs(("ready", "running", "parked"), limit=5000)
        left = await asyncio.to_thread(lambda: [*(root / "coutbox").iterdir(), *taken(root)])
        return not [j for j in pending if j.mailbox_uuid == mailbox] and not left

    try:
        await eventually(settled, within_s=90)
    except AssertionError:
        pending = await service.list_jobs(("ready", "running", "parked"), limit=5000)
        pending = [j for j in pending if j.mailbox_uuid == mailbox]
        left = await asyncio.to_thread(lambda: [*(root / "coutbox").iterdir(), *taken(root)])
        raise AssertionError(f"not settled: {pending[:5]} {left[:5]}") from None
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 20)
    envelopes = await service.list_envelopes(mailbox, limit=5000)
    incoming = [e for e in envelopes if e.direction is EnvelopeDirection.INCOMING]
    assert {e.status.value for e in incoming} == {"COMPLETED"}
    cinbox = await asyncio.to_thread(lambda: sorted(p.name for p in (root / "cinbox").iterdir()))
    assert len(cinbox) == len(incoming)  # one file per envelope: none lost, none twice
    assert await asyncio.to_thread(lambda: list((root / "inbox").iterdir())) == []
    notes = await asyncio.to_thread(
        lambda: {p.name: p.read_text(errors="replace") for p in (root / "error").iterdir()}
    )
    assert notes == {}  # nothing failed (a note says why if something did)
    subjects = [e.subject for e in envelopes if e.direction is EnvelopeDirection.OUTGOING]
    assert sorted(subjects) == sorted(expected_subjects)
    text = without_orphaned_spawns(log.read_text())
    assert "Traceback" not in text, text[-3000:]


# A conversion worker still starting when its engine is killed finds its parent gone: Python's
# own spawn bootstrap prints this, before any docbridge code runs, and the worker exits.
_ORPHANED_SPAWN = re.compile(
    r"Traceback \(most recent call last\):\n(?:  .*\n)*?.*spawn\.py.*\n(?:  .*\n)*"
    r"EOFError: Ran out of input\n"
)


def without_orphaned_spawns(text: str) -> str:
    return _ORPHANED_SPAWN.sub("", text)


def place_in_coutbox(root: Path, name: str, data: bytes) -> None:
    temp = root / ".staging" / f"{name}.part"
    temp.write_bytes(data)
    os.replace(temp, root / "coutbox" / name)
