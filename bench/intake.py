"""Intake end to end: envelopes received by 8 concurrent producers until every one is delivered
to inbox/ by the engine (default rule 1), against raw sqlite3 doing one commit per envelope.

Each round measures both side by side: raw sqlite3 (bench/raw_sqlite.py: same durability, a
row per envelope, one commit each) and docbridge (a fresh demo data directory, the engine
running in this process as in the TUI, the producers calling ``Service.receive_envelope``; the
clock stops when the last file is in inbox/). The last line is one JSON object; its key
``ratio`` is docbridge's envelopes/s over raw sqlite3's (issue 11: at least 4).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bench.raw_sqlite import commits_per_second
from core.bootstrap import init_data_dir
from core.config import load_config
from core.demo import demo_envelope_files
from core.engine.engine import Engine, EngineSettings
from core.models import IntegrationForm
from core.service import Service

PRODUCERS = 8
COUNT = 2_000  # envelopes per docbridge round
RAW_COUNT = 500  # commits per raw round (its rate is flat; fewer keep the run short)
AIM = 4.0


def documents(count: int) -> list[bytes]:
    """Distinct copies of a demo envelope for Purchasing (a new uuid each)."""
    template = demo_envelope_files()[0].read_text(encoding="utf-8")
    start = template.index(' uuid="') + len(' uuid="')
    return [
        (template[:start] + str(uuid.uuid4()) + template[start + 36 :]).encode()
        for _ in range(count)
    ]


async def prepared(home: Path) -> str:
    """A demo data directory whose Purchasing integration (SFTP, default rule 1) is on."""
    await init_data_dir(home, with_demo=True, actor="bench")
    service = await Service.open(home, actor="bench")
    mailbox = (await service.resolve_mailbox("Purchasing")).uuid
    await service.save_integration(mailbox, IntegrationForm())
    await service.set_enabled(mailbox, True)
    await service.close()
    return mailbox


async def filled(home: Path, count: int) -> Path:
    """A demo data directory with ``count`` envelopes waiting for Purchasing (received 8 at a
    time while its integration is off), the integration then switched on; its inbox/."""
    mailbox = await waiting(home, count, switch_on=True)
    return home / "mailboxes" / mailbox / "inbox"


async def waiting(home: Path, count: int, *, switch_on: bool = False) -> str:
    """A demo data directory with ``count`` envelopes for Purchasing (received 8 at a time)
    and its integration saved, switched on only with ``switch_on`` (else nothing moves until
    a measurement switches it on); the mailbox's uuid."""
    await init_data_dir(home, with_demo=True, actor="bench")
    service = await Service.open(home, actor="bench")
    try:
        mailbox = (await service.resolve_mailbox("Purchasing")).uuid
        batch = documents(count)

        async def produce(share: list[bytes]) -> None:
            for document in share:
                await service.receive_envelope(mailbox, document)

        await asyncio.gather(*(produce(batch[n::PRODUCERS]) for n in range(PRODUCERS)))
        await service.save_integration(mailbox, IntegrationForm())
        if switch_on:
            await service.set_enabled(mailbox, True)
    finally:
        await service.close()
    return mailbox


async def drain_seconds(home: Path, inbox: Path, count: int) -> float:
    """Seconds from the engine's start (in this process, no listeners) until ``count`` files
    are in ``inbox``."""
    engine = Engine(
        load_config(home), EngineSettings(run_sftp=False, run_as2=False, idle_poll_s=0.01)
    )
    began = time.perf_counter()
    await engine.start()
    # Polls the folder (the engine reports no completion event), not too often.
    while await asyncio.to_thread(_count, inbox) < count:  # noqa: ASYNC110
        await asyncio.sleep(0.025)
    elapsed = time.perf_counter() - began
    await engine.stop()
    return elapsed


async def docbridge_round(home: Path, batch: list[bytes]) -> float:
    """Envelopes/s from the first receipt until the last one is in inbox/."""
    mailbox = await prepared(home)
    inbox = home / "mailboxes" / mailbox / "inbox"
    service = await Service.open(home, actor="bench")
    engine = Engine(load_config(home), EngineSettings(run_sftp=False, run_as2=False))
    await engine.start()
    shares = [batch[number::PRODUCERS] for number in range(PRODUCERS)]

    async def produce(share: list[bytes]) -> None:
        for document in share:
            await service.receive_envelope(mailbox, document)

    began = time.perf_counter()
    await asyncio.gather(*(produce(share) for share in shares))
    # Polls the folder as a customer would (the engine reports no completion event); not too
    # often, or the bench's own listing takes CPU from the work it measures.
    while await asyncio.to_thread(_count, inbox) < len(batch):  # noqa: ASYNC110
        await asyncio.sleep(0.025)
    elapsed = time.perf_counter() - began
    await engine.stop()
    await service.close()
    return len(batch) / elapsed


def _count(folder: Path) -> int:
    """Envelope files delivered to ``folder`` (made with the first delivery)."""
    try:
        return sum(1 for name in os.listdir(folder) if name.endswith(".xml"))
    except FileNotFoundError:
        return 0


def spread(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 2),
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


def main() -> None:
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    raw: list[float] = []
    ours: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(rounds):  # interleaved: each round measures both
            raw.append(commits_per_second(Path(tmp) / f"raw-{number}.db", documents(RAW_COUNT)))
            batch = documents(COUNT)
            ours.append(asyncio.run(docbridge_round(Path(tmp) / f"home-{number}", batch)))
    ratios = [o / r for o, r in zip(ours, raw, strict=True)]
    for label, values in (("raw sqlite3, one commit each", raw), ("docbridge end to end", ours)):
        shown = spread(values)
        print(
            f"  {label:<30} envelopes/s: min {shown['min']}  median {shown['median']}  "
            f"max {shown['max']}"
        )
    shown = spread(ratios)
    print(
        f"  docbridge / raw: min {shown['min']}  median {shown['median']}  max {shown['max']}"
        f"  (aim >= {AIM}, and >= 2,000/s on the issue's machine)"
    )
    result = {
        "bench": "intake",
        "rounds": rounds,
        "producers": PRODUCERS,
        "envelopes_per_round": COUNT,
        "raw_per_s": spread(raw),
        "docbridge_per_s": spread(ours),
        "ratio": shown["median"],
        "ratio_range": shown,
        "aim_held": shown["median"] >= AIM,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
