"""Store throughput through the service API: envelopes received per second (durable commits)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from core.bootstrap import init_data_dir
from core.demo import demo_envelope_files
from core.service import Service

COUNT = 500


async def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        await init_data_dir(home, with_demo=True, actor="bench")
        service = await Service.open(home, actor="bench")
        template = demo_envelope_files()[0].read_text(encoding="utf-8")
        mailbox = (await service.list_mailboxes())[0].uuid
        start = time.perf_counter()
        for i in range(COUNT):
            data = template.replace('uuid="0238cdda', f'uuid="{i:08x}', 1)
            await service.receive_envelope(mailbox, data.encode())
        elapsed = time.perf_counter() - start
        await service.close()
    print(f"receive_envelope: {COUNT} in {elapsed:.2f} s = {COUNT / elapsed:.0f} envelopes/s")


def main() -> None:
    asyncio.run(run())
