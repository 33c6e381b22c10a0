"""Every read of a customer file is bounded (issue 8, defect 7): a file above the limit goes to
error/ with a note saying the limit, and the engine never reads it; the engine reads regular
files only, never through a link."""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from core.config import SmtpConfig, load_config
from core.engine.engine import Engine
from core.models import IntegrationForm
from core.service import Service
from core.sftp.folders import ensure_mailbox_root
from tests.engine.conftest import FAST, SmtpServer, enable
from tests.engine.test_customer_files import outgoing, outgoing_xml
from tests.engine.test_default_rules import eventually
from tests.engine.test_file_identity import taken

MB = 1024 * 1024
CAP = 8 * MB


@pytest.fixture
async def capped_engine(data_dir: Path, smtp_server: SmtpServer) -> AsyncIterator[Engine]:
    """An engine whose upload limit (sftp.max_file_size) is 8 MB."""
    config = await asyncio.to_thread(load_config, data_dir)
    config = replace(
        config,
        smtp=SmtpConfig(host="127.0.0.1", port=smtp_server.port),
        sftp=replace(config.sftp, max_file_size=CAP),
    )
    engine = Engine(config, FAST)
    await engine.start()
    yield engine
    await engine.stop()


def place_sparse(root: Path, folder: str, name: str, size: int) -> None:
    """A file of ``size`` bytes that takes no disk (a hole), put in place as uploads are."""
    temp = root / ".staging" / f".upload-test-{name}"
    with temp.open("wb") as handle:
        handle.truncate(size)
    os.rename(temp, root / folder / name)


async def note_of(root: Path, name: str) -> str:
    note = root / "error" / f"{name}.error.txt"

    async def written() -> bool:
        return await asyncio.to_thread(note.exists)

    await eventually(written)
    return await asyncio.to_thread(note.read_text)


async def test_files_above_the_upload_limit_go_to_error_unread(
    service: Service, capped_engine: Engine, data_dir: Path
) -> None:
    """Before: each file was read whole before any check (258-273 MB peak after 200 MB
    uploads). Now the size is checked on the open file and a file above the limit is never
    read: the engine's peak allocation stays far below the files' size."""
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        await asyncio.to_thread(place_sparse, root, "outbox", "huge.xml", 64 * MB)
        await asyncio.to_thread(place_sparse, root, "coutbox", "huge.csv", 64 * MB)
        capped_engine.wake("file")
        notes = [await note_of(root, "huge.xml"), await note_of(root, "huge.csv")]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * MB, f"peak {peak / MB:.0f} MB while refusing two 64 MB files"
    for note in notes:
        assert "64 MB" in note and "8 MB" in note and "upload limit" in note
    for name in ("huge.xml", "huge.csv"):  # handed back as they were
        assert (await asyncio.to_thread(os.stat, root / "error" / name)).st_size == 64 * MB
    assert await outgoing(service, mailbox) == []
    assert not taken(root)


async def test_an_envelope_file_above_the_envelope_limit_is_refused_unread(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    """Envelope XML is parsed up to 20 MB: a larger file in outbox/ (under the 100 MB upload
    limit) is refused by its size, not read first."""
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        await asyncio.to_thread(place_sparse, root, "outbox", "big.xml", 30 * MB)
        engine.wake("file")
        note = await note_of(root, "big.xml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * MB, f"peak {peak / MB:.0f} MB while refusing a 30 MB file"
    assert "30 MB" in note and "20 MB" in note and "envelope XML" in note


async def test_a_link_left_in_the_engines_area_is_not_followed(
    service: Service, engine: Engine, data_dir: Path, tmp_path: Path
) -> None:
    """Only regular files are read, through O_NOFOLLOW: a symbolic link planted where the
    engine keeps the files it took (say by a local user) is refused, and what it points to is
    neither read nor linked into error/."""
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    secret = tmp_path / "secret.xml"
    await asyncio.to_thread(secret.write_text, "<secret/>")
    # Planted whole (made apart, then renamed in): the running engine sweeps an empty claim.
    planted = tmp_path / "planted"
    await asyncio.to_thread(planted.mkdir)
    await asyncio.to_thread((planted / "order.xml").symlink_to, secret)
    await asyncio.to_thread((root / ".taking").mkdir, exist_ok=True)
    await asyncio.to_thread(planted.rename, root / ".taking" / "outbox-5ec7e75ec7e75eca")
    engine.wake("file")
    note = await note_of(root, "order.xml")
    assert "not a regular file" in note and "secret" not in note
    moved = root / "error" / "order.xml"
    assert await asyncio.to_thread(moved.is_symlink)  # the link itself, for what it is worth
    assert (await asyncio.to_thread(os.stat, secret)).st_nlink == 1  # never hard-linked
    assert await outgoing(service, mailbox) == []


async def test_a_hard_link_planted_in_outbox_is_not_read_nor_sent(
    service: Service, engine: Engine, data_dir: Path, tmp_path: Path
) -> None:
    """A file with a second name on disk may be anyone's file (SFTP cannot make links): the
    engine does not read it, sends nothing, and says why in error/."""
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    outside = tmp_path / "someone-elses.xml"
    await asyncio.to_thread(outside.write_bytes, outgoing_xml(mailbox))
    await asyncio.to_thread(os.link, outside, root / "outbox" / "order.xml")
    engine.wake("file")
    note = await note_of(root, "order.xml")
    assert "hard link" in note
    assert await outgoing(service, mailbox) == []
