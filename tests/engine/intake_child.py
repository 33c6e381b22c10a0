"""A producer process for the intake crash test: receives every envelope file of a folder that
is not yet answered, 8 at a time, and writes ``ok <uuid>`` (received) or ``dup <uuid>`` (it
was received before, by a run killed before it could answer) once each receipt is answered.

Run as ``python -m tests.engine.intake_child DATA_DIR MAILBOX FOLDER ANSWERED_FILE``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from core.errors import InvalidInput
from core.service import Service

PRODUCERS = 8


def say(line: str) -> None:
    os.write(1, f"{line}\n".encode())  # unbuffered: a line written is a receipt answered


async def produce(service: Service, mailbox: str, paths: list[Path]) -> None:
    for path in paths:
        try:
            data = await asyncio.to_thread(path.read_bytes)
            await service.receive_envelope(mailbox, data)
        except InvalidInput as exc:
            if "already received" not in str(exc):
                raise
            say(f"dup {path.stem}")
        else:
            say(f"ok {path.stem}")


def unanswered(folder: Path, answered_file: Path) -> list[Path]:
    answered = set(answered_file.read_text().split()) if answered_file.exists() else set()
    return sorted(p for p in folder.glob("*.xml") if p.stem not in answered)


async def main(data_dir: Path, mailbox: str, todo: list[Path]) -> None:
    service = await Service.open(data_dir, actor="intake-child")
    say("ready")
    try:
        shares = [todo[number::PRODUCERS] for number in range(PRODUCERS)]
        await asyncio.gather(*(produce(service, mailbox, share) for share in shares))
    finally:
        await service.close()
    say("done")


if __name__ == "__main__":
    todo = unanswered(Path(sys.argv[3]), Path(sys.argv[4]))
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], todo))
