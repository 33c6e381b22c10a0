"""Two engines (nodes) on one store and one mailbox tree: node A is killed with kill -9 at random
moments while 1,000 envelopes arrive, node B keeps running and takes over A's claims. Every
envelope ends COMPLETED with one inbox file, or one mail, each: 0 lost, 0 doubled.

Each node has its own data directory (config, intake socket), so this runs on PostgreSQL, the
store several nodes share."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.models import DefaultRule
from core.service import Service
from tests.conftest import DOCBRIDGE
from tests.engine.conftest import MailSink, SmtpServer, free_port
from tests.engine.test_crash import three_mailboxes_on, with_new_uuid
from tests.engine.test_default_rules import eventually

TOTAL = 1000
KILLS = 8


def node_home(data_dir: Path, name: str, smtp_port: int, mailbox_root: Path) -> Path:
    """A node's own data directory (config, logs, its intake socket) on the shared store and
    mailbox tree."""
    home = data_dir if name == "a" else data_dir.parent / f"node-{name}"
    home.mkdir(mode=0o700, exist_ok=True)
    (home / "docbridge.toml").write_text(
        f'[sftp]\nport = {free_port()}\nmailbox_root = "{mailbox_root}"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\ntls_mode = "none"\n',
        encoding="utf-8",
    )
    return home


def start_node(home: Path, name: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [str(DOCBRIDGE), "--data-dir", str(home), "serve", "--no-sftp", "--no-as2"]
            + ["--node-name", name],
            stdout=sink,
            stderr=sink,
            stdin=subprocess.DEVNULL,
        )


class SlowSink(MailSink):
    """A mail server that takes 50 ms per message: nodes hold mail claims long enough for a
    kill to catch some in flight."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.05)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.sink = SlowSink()
    server.start()
    yield server
    server.stop()


@pytest.mark.postgres_only("two nodes, each with its own data directory, share one store")
@pytest.mark.timeout(300)
async def test_node_a_killed_again_and_again_node_b_finishes_its_work_once(
    service: Service, data_dir: Path, slow_smtp_server: SmtpServer, tmp_path: Path
) -> None:
    smtp_server = slow_smtp_server
    rng = random.Random(12_2)
    mailbox_root = data_dir / "mailboxes"
    homes = {n: node_home(data_dir, n, smtp_server.port, mailbox_root) for n in ("a", "b")}
    targets, templates = await three_mailboxes_on(service)
    already = len(await service.list_envelopes(limit=5000))

    async def inject() -> None:
        mailboxes = list(targets)
        for i in range(TOTAL - already):
            mailbox_uuid = mailboxes[i % len(mailboxes)]
            await service.receive_envelope(mailbox_uuid, with_new_uuid(templates[mailbox_uuid])[1])
            if i % 25 == 0:
                await asyncio.sleep(0.05)

    logs = {name: tmp_path / f"serve-{name}.log" for name in homes}

    async def running(process: subprocess.Popen[bytes]) -> None:
        """Until this process holds its node's lease (then it claims work)."""

        async def holds() -> bool:
            nodes = (await service.engine_status()).nodes
            return any(n["pid"] == process.pid and n["running"] for n in nodes)

        await eventually(holds, within_s=30)

    async def some_running() -> bool:  # or no work left to catch in flight
        if await service.list_jobs(("running",)):
            return True
        return injector.done() and not await service.list_jobs(("ready",))

    node_b = start_node(homes["b"], "b", logs["b"])
    node_a = start_node(homes["a"], "a", logs["a"])
    injector = asyncio.create_task(inject())
    try:
        for kill in range(KILLS):
            await running(node_a)
            await asyncio.sleep(rng.uniform(0.3, 1.2))
            await eventually(some_running)  # kill with work in flight
            os.kill(node_a.pid, signal.SIGKILL)
            await asyncio.to_thread(node_a.wait)
            said_b = await asyncio.to_thread(logs["b"].read_text)
            if kill >= KILLS // 2 and "recovered" not in said_b:
                # A stays dead past its node lease: B hands A's claims back and takes them.
                await until_taken_over(service, logs["b"])
            elif rng.random() < 0.5:
                await asyncio.sleep(rng.uniform(0.5, 2.0))
            node_a = start_node(homes["a"], "a", logs["a"])
        await injector

        async def settled() -> bool:
            return not await service.list_jobs(("ready", "running", "parked"), limit=5000)

        await eventually(settled, within_s=120)
    finally:
        for node in (node_a, node_b):
            node.send_signal(signal.SIGTERM)
        for node in (node_a, node_b):
            await asyncio.to_thread(node.wait, 20)

    envelopes = await service.list_envelopes(limit=5000)
    assert len(envelopes) == TOTAL  # nothing lost
    assert {e.status.value for e in envelopes} == {"COMPLETED"}
    for mailbox_uuid, rule in targets.items():
        mine = {e.uuid for e in envelopes if e.mailbox_uuid == mailbox_uuid}
        inbox = mailbox_root / mailbox_uuid / "inbox"
        files = sorted(p.name for p in inbox.iterdir()) if inbox.exists() else []
        if rule is DefaultRule.COPY:
            assert files == sorted(f"{u}.xml" for u in mine)  # one file each: nothing doubled
        else:
            ids = smtp_server.sink.message_ids()
            assert sorted(set(ids)) == sorted(f"<{u}.notification@localhost>" for u in mine)
            # A kill between the SMTP server's 250 and the commit resends that mail, with the
            # same Message-ID: at most one per kill.
            assert len(ids) - len(set(ids)) <= KILLS
    both = {name: log.read_text() for name, log in logs.items()}
    assert "Traceback" not in both["a"] + both["b"], both
    recovered = re.findall(r"recovered (\d+) claims", both["a"] + both["b"])
    assert recovered, both  # claims of a killed A were handed back (to A's next run or to B)
    taken_over = re.findall(r"recovered (\d+) claims", both["b"])
    assert taken_over, both["b"]  # B took a dead A's claims over, after A's lease ran out
    print(
        f"{KILLS} kills of node a; claims handed back: {', '.join(recovered)}; "
        f"of them taken over by node b: {', '.join(taken_over)}"
    )


async def until_taken_over(service: Service, log_b: Path) -> None:
    """A was just killed: while jobs it claimed are still running, wait for B to hand them
    back (after A's node lease, 5 s); with none left running there is nothing to take over."""

    async def settled() -> bool:
        if "recovered" in await asyncio.to_thread(log_b.read_text):
            return True
        return not await service.list_jobs(("running",))

    await eventually(settled, within_s=30)
