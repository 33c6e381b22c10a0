"""Files a customer drops: outbox/ envelope XML becomes an outgoing envelope; what cannot be
taken in goes to error/ with a note; moving it back retries it."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from core.engine.engine import Engine
from core.models import EnvelopeDirection, IntegrationForm
from core.service import Service
from core.sftp.folders import ensure_mailbox_root
from tests.engine.conftest import enable
from tests.engine.test_default_rules import eventually

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo" / "envelopes"
NEW_UUID = "5b0f4c1e-7d2a-4e8b-9c3d-1a2b3c4d5e6f"


ACME = "0dbfa4db-e126-445e-a164-dac5593117c1"  # the demo order's sender
PURCHASING = "26c79f73-753d-4148-b26a-5d3e9abbc6fb"  # and its recipient


def outgoing_xml(
    mailbox_uuid: str, envelope_uuid: str | None = NEW_UUID, sender: str | None = None
) -> bytes:
    """A demo envelope turned around: sent by our mailbox (or by ``sender``) to Acme, with a
    fresh uuid (or none)."""
    text = (DEMO / "01-purchase-order-acme.xml").read_text(encoding="utf-8")
    start = text.index(' uuid="') + len(' uuid="')
    old_uuid = text[start : start + 36]
    if envelope_uuid is None:
        text = text.replace(f' uuid="{old_uuid}"', "")
    else:
        text = text.replace(old_uuid, envelope_uuid)
    roles = (
        f'<role id="sender" mailboxUuid="{ACME}"/>',
        f'<role id="recipient" mailboxUuid="{PURCHASING}"/>',
    )
    assert all(role in text for role in roles)
    text = text.replace(roles[0], f'<role id="sender" mailboxUuid="{sender or mailbox_uuid}"/>')
    text = text.replace(roles[1], f'<role id="recipient" mailboxUuid="{ACME}"/>')
    return text.encode()


def drop(root: Path, folder: str, name: str, data: bytes) -> Path:
    """Like the SFTP server: complete file first, then a rename into the folder."""
    temp = root / ".staging" / f"{name}.part"
    temp.write_bytes(data)
    target = root / folder / name
    os.replace(temp, target)
    return target


async def outgoing(service: Service, mailbox: str) -> list[str]:
    return [
        e.uuid
        for e in await service.list_envelopes(mailbox)
        if e.direction is EnvelopeDirection.OUTGOING
    ]


async def test_outbox_xml_becomes_one_outgoing_envelope_and_leaves_outbox(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    placed = drop(root, "outbox", "order.xml", outgoing_xml(mailbox))
    engine.wake("file")

    async def taken_in() -> bool:
        return await outgoing(service, mailbox) == [NEW_UUID] and not placed.exists()

    await eventually(taken_in)
    envelope = next(e for e in await service.list_envelopes(mailbox) if e.uuid == NEW_UUID)
    assert (envelope.status.value, envelope.sender_mailbox) == ("SENT", mailbox)
    assert list((root / "error").iterdir()) == []


async def test_invalid_file_goes_to_error_with_reason_and_retry_from_error_works(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    # Another mailbox as the sender: not something this mailbox may send.
    broken = outgoing_xml(mailbox, sender="11111111-1111-4111-8111-111111111111")
    drop(root, "outbox", "order.xml", broken)
    drop(root, "outbox", "garbage.xml", b"<envelope>")
    engine.wake("file")
    error = root / "error"

    async def both_in_error() -> bool:
        return {p.name for p in error.iterdir()} == {
            "order.xml",
            "order.xml.error.txt",
            "garbage.xml",
            "garbage.xml.error.txt",
        }

    await eventually(both_in_error)
    assert "not well-formed" in (error / "garbage.xml.error.txt").read_text()
    assert f"not sent by mailbox {mailbox}" in (error / "order.xml.error.txt").read_text()
    assert await outgoing(service, mailbox) == []
    assert list((root / "outbox").iterdir()) == []

    # The customer fixes the file in error/ and moves it back: it is retried.
    (error / "order.xml").write_bytes(outgoing_xml(mailbox))
    os.replace(error / "order.xml", root / "outbox" / "order.xml")
    engine.wake("file")

    async def retried() -> bool:
        return await outgoing(service, mailbox) == [NEW_UUID]

    await eventually(retried)
    assert not (error / "order.xml.error.txt").exists()  # the stale note went with it


async def test_coutbox_files_wait_for_conversion_rules_in_error(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    drop(root, "coutbox", "orders.csv", b"po;qty\n1;2\n")
    engine.wake("file")

    async def moved() -> bool:
        return (root / "error" / "orders.csv.error.txt").exists()

    await eventually(moved)
    assert "No conversion rule matches" in (root / "error" / "orders.csv.error.txt").read_text()
    assert (root / "error" / "orders.csv").read_bytes() == b"po;qty\n1;2\n"


async def test_files_of_a_disabled_integration_wait(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    await service.set_enabled(mailbox, False)
    mailboxes = data_dir / "mailboxes"
    root = await asyncio.to_thread(ensure_mailbox_root, mailboxes, mailbox)
    placed = await asyncio.to_thread(drop, root, "outbox", "order.xml", outgoing_xml(mailbox))
    # A witness: a mailbox that is on, with a file dropped after ours. Once the engine has
    # taken it in, it has scanned since our file arrived (no pause a dead engine also passes).
    witness = await enable(service, "Logistics", IntegrationForm())
    witness_root = await asyncio.to_thread(ensure_mailbox_root, mailboxes, witness)
    await asyncio.to_thread(drop, witness_root, "outbox", "a.xml", outgoing_xml(witness, None))
    engine.wake("file")

    async def witness_taken_in() -> bool:
        return len(await outgoing(service, witness)) == 1

    await eventually(witness_taken_in)
    assert await asyncio.to_thread(placed.exists) and await outgoing(service, mailbox) == []
    await service.set_enabled(mailbox, True)
    engine.wake("file")

    async def taken_in() -> bool:
        return await outgoing(service, mailbox) == [NEW_UUID] and not placed.exists()

    await eventually(taken_in)


async def test_an_upload_naming_another_mailbox_as_sender_is_refused(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    """A mailbox only ever speaks as itself (issue 8, defect 6): Purchasing uploads an envelope
    whose sender role is Acme and whose recipient role is Purchasing. Before: accepted, and
    recorded as SENT by Purchasing. Now: error/ with a note naming the sender role."""
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    spoofed = outgoing_xml(mailbox, sender=ACME).replace(
        f'<role id="recipient" mailboxUuid="{ACME}"/>'.encode(),
        f'<role id="recipient" mailboxUuid="{mailbox}"/>'.encode(),
    )
    no_sender = outgoing_xml(mailbox, "6b0f4c1e-7d2a-4e8b-9c3d-1a2b3c4d5e6f").replace(
        b'role id="sender"', b'role id="author"'
    )
    await asyncio.to_thread(drop, root, "outbox", "spoofed.xml", spoofed)
    await asyncio.to_thread(drop, root, "outbox", "no-sender.xml", no_sender)
    engine.wake("file")
    notes = {
        name: root / "error" / f"{name}.error.txt" for name in ("spoofed.xml", "no-sender.xml")
    }

    async def refused() -> bool:
        return await asyncio.to_thread(lambda: all(note.exists() for note in notes.values()))

    await eventually(refused)
    assert await outgoing(service, mailbox) == []
    for note in notes.values():
        text = await asyncio.to_thread(note.read_text)
        assert f"not sent by mailbox {mailbox}" in text
        assert f'<role id="sender" mailboxUuid="{mailbox}"/>' in text
    assert f"sender={ACME}" in await asyncio.to_thread(notes["spoofed.xml"].read_text)
    assert "author=" in await asyncio.to_thread(notes["no-sender.xml"].read_text)


async def test_a_later_success_of_the_same_name_leaves_the_old_failure_explained(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    """Issue 9: a file that failed stays in error/ with its note until the customer deals with
    it (deletes it, or moves it back to retry); a later upload of the same name that
    succeeds is another file and explains nothing about it. Before: the success deleted the
    note and left error/order.xml unexplained."""
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    error = root / "error"
    await asyncio.to_thread(drop, root, "outbox", "order.xml", b"<envelope>")
    engine.wake("file")

    async def failed() -> bool:
        return await asyncio.to_thread((error / "order.xml.error.txt").exists)

    await eventually(failed)
    note = await asyncio.to_thread((error / "order.xml.error.txt").read_text)
    await asyncio.to_thread(drop, root, "outbox", "order.xml", outgoing_xml(mailbox))
    engine.wake("file")

    async def sent() -> bool:
        return await outgoing(service, mailbox) == [NEW_UUID] and not await asyncio.to_thread(
            (root / "outbox" / "order.xml").exists
        )

    await eventually(sent)
    assert await asyncio.to_thread((error / "order.xml").read_bytes) == b"<envelope>"
    assert await asyncio.to_thread((error / "order.xml.error.txt").read_text) == note


async def test_a_binary_file_in_outbox_is_refused_as_binary_and_logged(
    service: Service, engine: Engine, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The note once read "Document is empty", and nothing reached the log."""
    caplog.set_level(logging.INFO, logger="docbridge")
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    await asyncio.to_thread(drop, root, "outbox", "dump.bin", b"\x00\x01binary\x02")
    engine.wake("file")

    async def moved() -> bool:
        return (root / "error" / "dump.bin.error.txt").exists()

    await eventually(moved)
    note = (root / "error" / "dump.bin.error.txt").read_text()
    assert note.startswith("This is not envelope XML: it holds binary data.")
    assert f"refused outbox/dump.bin of mailbox {mailbox} (to error/): This is not" in caplog.text
