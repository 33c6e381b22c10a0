"""kill -9 of a process receiving envelopes with group commit: an answered receipt is never
lost, and an unanswered one, sent again, is received once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
from pathlib import Path

from core.models import JobKind, JobState
from core.service import Service
from tests.engine.test_crash import with_new_uuid
from tests.test_group_commit import demo_template

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 3000
KILLS = 6


async def run_until_killed(
    data_dir: Path, mailbox: str, folder: Path, answered_file: Path, kill_after_s: float | None
) -> tuple[dict[str, str], bool]:
    """One producer process: its answers (uuid -> ok/dup) and whether it finished by itself."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.engine.intake_child",
        str(data_dir),
        mailbox,
        str(folder),
        str(answered_file),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    answers: dict[str, str] = {}
    finished = False

    async def read() -> None:
        nonlocal finished
        assert child.stdout is not None
        async for raw in child.stdout:
            word, _, uuid = raw.decode().strip().partition(" ")
            if word in ("ok", "dup"):
                answers[uuid] = word
            elif word == "ready" and kill_after_s is not None:
                asyncio.get_running_loop().call_later(kill_after_s, _kill, child.pid)
            elif word == "done":
                finished = True

    await asyncio.wait_for(read(), timeout=120)
    await child.wait()
    return answers, finished


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it finished first
        os.kill(pid, signal.SIGKILL)


async def test_kill_9_while_receiving_loses_no_answered_envelope_and_receives_each_once(
    service: Service, data_dir: Path, tmp_path: Path
) -> None:
    template, mailbox = await demo_template(service, "Purchasing")
    folder = tmp_path / "to-send"
    folder.mkdir()
    for _ in range(TOTAL):
        uuid, data = with_new_uuid(template)
        (folder / f"{uuid}.xml").write_bytes(data)
    before = {e.uuid for e in await service.list_envelopes(limit=10_000)}
    answered_file = tmp_path / "answered"
    answers: dict[str, str] = {}
    rng = random.Random(1130)
    kills = 0
    while True:
        kill_after = rng.uniform(0.02, 0.3) if kills < KILLS else None
        got, finished = await run_until_killed(data_dir, mailbox, folder, answered_file, kill_after)
        for uuid, word in got.items():
            assert uuid not in answers, f"{uuid} answered twice"
            answers[uuid] = word
        answered_file.write_text("\n".join(answers))
        if finished:
            break
        assert kill_after is not None, "the last producer was not killed and did not finish"
        kills += 1

    sent = {p.stem for p in folder.glob("*.xml")}
    assert set(answers) == sent  # every envelope was answered in the end
    assert kills >= 3, f"only {kills} kills landed before the producer was done"
    resent = sum(1 for word in answers.values() if word == "dup")
    print(f"{kills} kills; {resent} receipts stored but unanswered, answered on the retry")
    stored = await service.list_envelopes(limit=10_000)
    new = [e for e in stored if e.uuid not in before]
    assert sorted(e.uuid for e in new) == sorted(sent)  # each exactly once, none lost
    assert {e.mailbox_uuid for e in new} == {mailbox}
    waiting = await service.list_jobs((JobState.READY,), limit=10_000)
    envelope_jobs = [j.ref for j in waiting if j.kind is JobKind.ENVELOPE and j.ref in sent]
    assert sorted(envelope_jobs) == sorted(sent)  # one job each: nothing is handled twice
