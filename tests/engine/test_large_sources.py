"""Large coutbox/ sources: a file no rule takes is judged on its name and head and never held
whole; a file a rule takes is read whole and converted; the log keeps real sizes."""

from __future__ import annotations

import asyncio
import resource
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from core.config import load_config
from core.engine import file_batch
from core.engine.engine import Engine
from core.engine.file_handler import claim_path
from core.models import ConversionFilter, ConversionStatus, IntegrationForm, Job, JobKind, JobState
from core.service import Service
from core.sftp.folders import ensure_mailbox_root
from tests.engine.conftest import FAST, enable
from tests.engine.test_customer_files import drop
from tests.engine.test_default_rules import eventually
from tests.rules.samples import CSV_TO_ORDERS_1_0, ORDERS_CSV, out_rule

GIB = 1024**3
# The first order of a file only: a long file, one envelope.
FIRST_ORDER = CSV_TO_ORDERS_1_0.replace("row[@index &gt; 0]", "row[@index = 1]")


@pytest.fixture
async def unlimited_engine(data_dir: Path) -> AsyncIterator[Engine]:
    """An engine without an upload size limit: only what it reads bounds its memory."""
    config = await asyncio.to_thread(load_config, data_dir)
    config = replace(config, sftp=replace(config.sftp, max_file_size=0))
    engine = Engine(config, FAST)
    await engine.start()
    yield engine
    await engine.stop()


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def sparse_file(path: Path, size: int, head: bytes) -> None:
    """``head`` then zeros up to ``size`` bytes, without using the disk for them."""
    with path.open("wb") as out:
        out.write(head)
        out.truncate(size)


async def error_note(root: Path, name: str) -> str:
    note = root / "error" / f"{name}.error.txt"

    async def there() -> bool:
        return note.exists()

    await eventually(there, within_s=30)
    return note.read_text()


async def test_a_gigabyte_source_no_rule_takes_goes_to_error_without_being_read_whole(
    service: Service, unlimited_engine: Engine, data_dir: Path
) -> None:
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    await service.create_rule(mailbox, out_rule("CSV orders", CSV_TO_ORDERS_1_0))  # *.csv
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    staged = root / ".staging" / "dump.bin"
    await asyncio.to_thread(sparse_file, staged, GIB, b"\x00binary dump\n")
    before = peak_rss_bytes()
    await asyncio.to_thread(staged.rename, root / "coutbox" / "dump.bin")
    unlimited_engine.wake("file")

    assert "No conversion rule matches" in await error_note(root, "dump.bin")
    assert peak_rss_bytes() - before < 256 * 1024 * 1024  # the head, never the gigabyte
    assert (root / "error" / "dump.bin").stat().st_size == GIB  # handed back whole
    [record] = await service.conversions.records(ConversionFilter(keyword="dump.bin"))
    assert record.status is ConversionStatus.FAILED
    payload = await service.conversions.payload(record.id)
    assert payload is not None
    assert (payload.input_size, payload.input) == (GIB, b"")  # its real size, content not kept


async def test_a_source_over_the_head_that_a_rule_takes_is_converted_whole(
    service: Service, unlimited_engine: Engine, data_dir: Path
) -> None:
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    await service.create_rule(mailbox, out_rule("First order", FIRST_ORDER))
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    header, row = ORDERS_CSV.splitlines(keepends=True)[:2]
    data = header + row * 70_000  # ~2.4 MB: over the head
    assert len(data) > 2 * 1024 * 1024
    await asyncio.to_thread(drop, root, "coutbox", "big-orders.csv", data)
    unlimited_engine.wake("file")

    async def converted() -> bool:
        return bool(await service.conversions.records(ConversionFilter(keyword="big-orders")))

    await eventually(converted, within_s=60)
    [record] = await service.conversions.records(ConversionFilter(keyword="big-orders"))
    assert record.status is ConversionStatus.PROCESSED, record.error
    assert record.subject == "Order PO-1"
    payload = await service.conversions.payload(record.id)
    assert payload is not None and payload.input_size == len(data)


def test_a_batch_of_large_files_is_read_in_parts_of_bounded_size(tmp_path: Path) -> None:
    """100 claimed 20 MB envelopes must not be held at once: parts of at most BATCH_BYTES, a
    larger file alone, the order kept."""
    config = load_config(tmp_path)
    sizes = [30, 30, 10, 70, 1, 1, 64] + [20] * 6  # MB
    claimed = []
    for number, size in enumerate(sizes):
        token, name = f"t{number}", f"f{number}.xml"
        path = claim_path(config.mailboxes_dir, "m", "outbox", token, name)
        path.parent.mkdir(parents=True)
        sparse_file(path, size * 1024 * 1024, b"<")
        payload = {"folder": "outbox", "name": name, "claim": token}
        claimed.append(
            Job(number, JobKind.FILE, f"ref{number}", "m", JobState.RUNNING, 1, payload=payload)
        )
    parts = file_batch.batch_parts(config, claimed)
    assert [[sizes[job.id] for job in part] for part in parts] == [
        [30, 30],
        [10],
        [70],
        [1, 1],
        [64],
        [20, 20, 20],
        [20, 20, 20],
    ]
