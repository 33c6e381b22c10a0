"""Engine throughput: envelopes/s through default rule 1 (envelope XML into inbox/), with
durable commits (WAL, synchronous=FULL) and fsync'd files, from a backlog."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from core.bootstrap import init_data_dir
from core.config import load_config
from core.demo import demo_envelope_files
from core.engine.engine import Engine, EngineSettings
from core.models import EnvelopeStatus, IntegrationForm
from core.service import Service

COUNT = 5000


async def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        await init_data_dir(home, with_demo=True, actor="bench")
        service = await Service.open(home, actor="bench")
        mailbox = (await service.resolve_mailbox("Purchasing")).uuid
        template = demo_envelope_files()[0].read_text(encoding="utf-8")
        start = template.index(' uuid="') + len(' uuid="')
        for _ in range(COUNT):
            data = template[:start] + str(uuid.uuid4()) + template[start + 36 :]
            await service.receive_envelope(mailbox, data.encode())
        await service.save_integration(mailbox, IntegrationForm())
        await service.set_enabled(mailbox, True)
        total = len(await service.list_envelopes(mailbox, limit=COUNT * 2))

        engine = Engine(load_config(home), EngineSettings(run_sftp=False, idle_poll_s=0.01))
        began = time.perf_counter()
        await engine.start()
        # Polls the store as an operator would: the engine reports no completion event.
        while await service.list_envelopes(mailbox, EnvelopeStatus.WAITING, limit=1):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - began
        await engine.stop()
        files = len(list((home / "mailboxes" / mailbox / "inbox").iterdir()))
        await service.close()
    print(
        f"default rule 1: {total} envelopes in {elapsed:.2f} s = {total / elapsed:.0f} envelopes/s "
        f"({files} inbox files; aim >= 2000/s, issue 11)"
    )


def main() -> None:
    asyncio.run(run())
