"""Files are taken by identity, never by name (issue 8, defect 3): two uploads of one name,
closely spaced, each stay the customer's until taken in, and a claim left by a crash is found
again and taken in exactly once."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import asyncssh
import pytest

from core.engine.engine import Engine, EngineLoop
from core.files import rename_no_replace
from core.models import IntegrationForm, JobKind
from core.service import Service
from core.sftp.folders import ensure_mailbox_root
from tests.engine.conftest import enable, enable_sftp
from tests.engine.test_customer_files import NEW_UUID, outgoing, outgoing_xml
from tests.engine.test_default_rules import eventually
from tests.engine.test_sftp_end_to_end import connect

TRIALS = 150


def stage(root: Path, data: bytes) -> Path:
    temp = root / ".staging" / f".upload-test-{os.urandom(6).hex()}"
    temp.write_bytes(data)
    return temp


def place(root: Path, name: str, data: bytes) -> None:
    """A clean close of an upload whose name is free: staged, then renamed without replacing."""
    rename_no_replace(str(stage(root, data)), str(root / "outbox" / name))


async def publish(engine: Engine, root: Path, name: str, data: bytes) -> None:
    """What the SFTP session does on a clean close: the complete file from staging renamed into
    outbox/ without replacing a waiting file of that name; while the name is taken, the engine
    is woken to take the waiting one in (core/sftp/session.py _publish_without_replacing)."""
    temp = await asyncio.to_thread(stage, root, data)
    target = str(root / "outbox" / name)
    while True:
        try:
            await asyncio.to_thread(rename_no_replace, str(temp), target)
        except FileExistsError:
            engine.wake(JobKind.FILE)  # its next scan claims the waiting file, freeing the name
            await engine.wait_for_cycles(EngineLoop.SCAN, 1)
        else:
            engine.wake("file")  # as the session's file_arrived does
            return


def taken(root: Path) -> list[Path]:
    """Files the engine has claimed and not yet finished with (its private area)."""
    # The engine removes claim folders while this looks: a folder gone meanwhile holds nothing.
    found: list[Path] = []
    try:
        holders = list(os.scandir(root / ".taking"))
    except FileNotFoundError:
        return found
    for holder in holders:
        try:
            found += [Path(entry.path) for entry in os.scandir(holder.path)]
        except (FileNotFoundError, NotADirectoryError):
            continue
    return found


async def test_a_newer_upload_of_a_name_is_never_deleted_by_the_engine(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    """Each trial: upload A, then 0-40 ms later upload B of the same name (as an SFTP client
    that sends a file twice). B is acknowledged last, so it must always become an envelope.
    Before the fix the engine removed the taken file by name and deleted B in some trials."""
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    rng = random.Random(8_3)
    later: dict[str, str] = {}  # B's uuid -> name
    earlier: set[str] = set()
    for trial in range(TRIALS):
        name = f"order-{trial}.xml"
        first, second = (f"{trial:08d}-aaaa-4aaa-8aaa-{n:012d}" for n in (1, 2))
        await publish(engine, root, name, outgoing_xml(mailbox, first))
        await asyncio.sleep(rng.uniform(0, 0.04))  # the spacing of the two uploads
        await publish(engine, root, name, outgoing_xml(mailbox, second))
        earlier.add(first)
        later[second] = name

    async def settled() -> bool:
        pending = await service.list_jobs(("ready", "running"), limit=5000)
        waiting = await asyncio.to_thread(lambda: [*(root / "outbox").iterdir(), *taken(root)])
        return not waiting and not [j for j in pending if j.kind == "file"]

    await eventually(settled, within_s=60)
    sent = set(await outgoing(service, mailbox))
    errors = sorted(p.name for p in (root / "error").iterdir())
    lost = sorted(name for uuid, name in later.items() if uuid not in sent)
    assert not lost, f"{len(lost)} of {TRIALS} later uploads deleted unseen: {lost[:5]}"
    assert errors == []
    # The session never renames over a waiting file, so the earlier upload is never lost either.
    replaced = sorted(earlier - sent)
    assert not replaced, f"{len(replaced)} of {TRIALS} earlier uploads lost: {replaced[:5]}"


async def test_an_acknowledged_upload_is_never_replaced_by_a_second_one_of_its_name(
    service: Service, sftp_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a real SFTP client: two uploads of one name while the engine has not yet taken
    the first in. Each must become an envelope, or the second must be refused (the client
    sees an error, so it knows to send again); never may the first vanish."""
    mailbox, password = await enable_sftp(service, "Purchasing")
    wake = sftp_engine.wake
    monkeypatch.setattr(sftp_engine, "wake", lambda kind=None: None)  # hold the engine's scan
    first, second = "11111111-aaaa-4aaa-8aaa-000000000001", "11111111-aaaa-4aaa-8aaa-000000000002"
    async with connect(sftp_engine, mailbox, password) as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("outbox/order.xml", "wb") as handle:
            await handle.write(outgoing_xml(mailbox, first))
        acknowledged = {first}
        try:
            async with sftp.open("outbox/order.xml", "wb") as handle:
                await handle.write(outgoing_xml(mailbox, second))
        except asyncssh.SFTPError:
            pass  # refused, visibly: the customer sends it again
        else:
            acknowledged.add(second)
    wake()

    async def taken_in() -> bool:
        return acknowledged <= set(await outgoing(service, mailbox))

    await eventually(taken_in, within_s=5)


async def test_a_claim_a_crash_left_without_a_job_is_taken_in_once(
    service: Service, data_dir: Path, engine: Engine
) -> None:
    """The engine died between claiming a file (the rename into .taking/) and queuing it."""
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    holder = root / ".taking" / "outbox-00c0ffee00c0ffee"
    holder.mkdir(parents=True)
    (holder / "order.xml").write_bytes(outgoing_xml(mailbox))
    engine.wake("file")

    async def taken_in() -> bool:
        return await outgoing(service, mailbox) == [NEW_UUID] and not taken(root)

    await eventually(taken_in)
    assert list((root / "error").iterdir()) == []


async def test_a_claim_whose_envelope_was_recorded_is_removed_not_taken_again(
    service: Service, data_dir: Path, engine: Engine
) -> None:
    """The engine died after recording the envelope and before removing the claimed file: the
    next scan sees the job is done and removes the file (a second take-in would make a second
    envelope, or put the file in error/ as a duplicate)."""
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    data = outgoing_xml(mailbox, None)  # no uuid: the envelope's uuid comes from the claim
    await publish(engine, root, "order.xml", data)

    async def sent_once() -> bool:
        return len(await outgoing(service, mailbox)) == 1 and not taken(root)

    await eventually(sent_once)
    (done,) = [j for j in await service.list_jobs(("done",)) if j.kind == "file"]
    token = done.ref.rsplit("@", 1)[1]
    holder = root / ".taking" / f"outbox-{token}"
    holder.mkdir()
    (holder / "order.xml").write_bytes(data)  # as the crash left it
    engine.wake("file")

    async def removed() -> bool:
        return not holder.exists()

    await eventually(removed)
    assert len(await outgoing(service, mailbox)) == 1
    assert list((root / "error").iterdir()) == []
