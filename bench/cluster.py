"""Several nodes on one store: envelopes/s drained by 1, 2 and 4 engine processes sharing one
PostgreSQL database, and by one engine process on SQLite, side by side in interleaved rounds.

Each configuration starts from the same backlog: COUNT envelopes (plus the demo's few) waiting
for Purchasing under default rule 1 (envelope XML into inbox/), received while its integration
was off. PostgreSQL is filled once (through the service) and cloned per measurement with
``CREATE DATABASE ... TEMPLATE``; SQLite is filled once and its data directory copied per
measurement; the mailbox folders are copied likewise, so every measurement starts with an empty
inbox/. Every node is a real ``docbridge serve --no-sftp --no-as2`` process with its own data
directory (config and intake socket), all sharing the first one's mailbox folders through
``[sftp] mailbox_root``. The nodes are started first and the clock starts only once each has
printed its "running" line (Python start-up is not timed): then the integration is switched on
and the clock runs until COUNT files are in inbox/ (polled seldom while much is left, every
10 ms near the end: listing the folder costs CPU the nodes compete for). The nodes hear the
switch through PostgreSQL's NOTIFY (SQLite's engine at its next idle poll, 0.25 s at most).

Every configuration runs twice a round: with the copies of the mailbox folders in memory
(/dev/shm) and on this machine's disk. ``scaling`` is measured in memory, because on one host
the nodes share what a cluster's nodes do not: each engine makes its files durable with a
syncfs (core.files), which flushes every node's writes on that file system, so N co-located
nodes wait on each other's flushes on one disk journal; nodes on separate hosts flush only
their own client's writes. The disk figures (``scaling_disk``) show that cost here.

The PostgreSQL server (tests/pg_server.py) runs on this same machine (2 cores here) and competes
with the nodes for the CPUs; its files are in /dev/shm, a disk of their own as on a real cluster
(on the nodes' disk each engine's syncfs would also flush the database's writes). It runs with
fsync=off, synchronous_commit=off and full_page_writes=off (a test server), while the SQLite
engine commits with synchronous=FULL and fsyncs its files: the two stores' figures are not a
like-for-like durability comparison, the point is how PostgreSQL throughput grows with the
number of nodes. The rounds rotate the order of the four configurations. The last line is one
JSON object; its key ``scaling`` is the median envelopes/s of 2 processes over that of 1 process
on PostgreSQL with the mailbox folders in memory (aim: at least 1.5); each place's
``scaling_per_round`` is the same ratio within each round.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.backlog import spread
from bench.intake import _count, waiting
from core.data_dir import STORE_URL_ENV
from core.service import Service
from tests.pg_server import PostgresServer, start_server

# The database's files on a disk of their own, as on a real cluster (the database runs on its
# own host): on the nodes' disk, each engine's syncfs (core.files) would also flush the
# database's writes, a cost no deployment has. /dev/shm is that other disk here.
DATABASE_DISK = "/dev/shm" if os.path.isdir("/dev/shm") else None
COUNT = 12_000  # rounds of seconds even for the fastest: start-up noise stays small
AIM = 1.5  # 2 processes over 1 on PostgreSQL
CONFIGURATIONS = ("pg_1", "pg_2", "pg_4", "sqlite_1")
# Where the measured copies of the mailbox folders go (None: the system's temporary folder, on
# this machine's disk). See the module's docstring for why ``scaling`` is measured in memory.
PLACES: dict[str, str | None] = {
    "memory": "/dev/shm" if os.path.isdir("/dev/shm") else None,
    "disk": None,
}
DOCBRIDGE = Path(sys.executable).parent / "docbridge"
TEMPLATE = "filled"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Backlog:
    """A filled data directory (PostgreSQL: its config and mailbox folders only) and the uuid
    of the mailbox whose envelopes wait."""

    home: Path
    mailbox: str

    def inbox(self, home: Path) -> Path:
        return home / "mailboxes" / self.mailbox / "inbox"


@contextlib.contextmanager
def store_url(url: str) -> Iterator[None]:
    """DOCBRIDGE_STORE_URL set to ``url`` ("" : unset, SQLite) while the block runs."""
    before = os.environ.pop(STORE_URL_ENV, None)
    if url:
        os.environ[STORE_URL_ENV] = url
    try:
        yield
    finally:
        os.environ.pop(STORE_URL_ENV, None)
        if before is not None:
            os.environ[STORE_URL_ENV] = before


def fill(home: Path, url: str) -> Backlog:
    """The backlog in the store ``url`` names ("" : SQLite in ``home``)."""
    with store_url(url):
        return Backlog(home, asyncio.run(waiting(home, COUNT)))


def node_homes(first: Path, nodes: int) -> list[Path]:
    """``first`` (a copy of the filled data directory) and ``nodes - 1`` more data directories
    holding only a config that points at the first one's mailbox folders."""
    homes = [first]
    for number in range(2, nodes + 1):
        home = first.parent / f"node-{number}"
        home.mkdir()
        (home / "docbridge.toml").write_text(
            f'[sftp]\nmailbox_root = "{first / "mailboxes"}"\n', encoding="utf-8"
        )
        homes.append(home)
    return homes


def node_environment(url: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k != STORE_URL_ENV}
    if url:
        environment[STORE_URL_ENV] = url
    return environment


def node_log(home: Path) -> Path:
    """Where a node's logging (its stderr) goes: beside its data directory."""
    return home.parent / f"{home.name}.log"


async def start_node(home: Path, name: str, url: str) -> asyncio.subprocess.Process:
    log = await asyncio.to_thread(node_log(home).open, "wb")
    with log:  # the child keeps its own descriptor
        return await asyncio.create_subprocess_exec(
            str(DOCBRIDGE),
            "--data-dir",
            str(home),
            "serve",
            "--no-sftp",
            "--no-as2",
            "--node-name",
            name,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=node_environment(url),
        )


async def running(node: asyncio.subprocess.Process, home: Path) -> None:
    """Until the node says it runs (its engine started, its claims loops going)."""
    assert node.stdout is not None
    line = await asyncio.wait_for(node.stdout.readline(), START_TIMEOUT_S)
    if b"docbridge engine running as node" not in line:
        log = node_log(home).read_text(encoding="utf-8", errors="replace")
        raise RuntimeError(f"node in {home} did not start: {line!r}\n{log[-2000:]}")


async def stop_nodes(nodes: list[asyncio.subprocess.Process]) -> None:
    """SIGTERM each (a clean stop hands its claims back), killing any that do not end."""
    for node in nodes:
        if node.returncode is None:
            node.send_signal(signal.SIGTERM)
    for node in nodes:
        try:
            await asyncio.wait_for(node.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            node.kill()
            await node.wait()


async def drain_seconds(homes: list[Path], backlog: Backlog, url: str) -> float:
    """Seconds from switching the integration on, with every node running, until COUNT files
    are in inbox/."""
    inbox = backlog.inbox(homes[0])
    assert _count(inbox) == 0, f"{inbox} is not empty before the measurement"
    with store_url(url):
        service = await Service.open(homes[0], actor="bench")
    nodes: list[asyncio.subprocess.Process] = []
    try:
        for number, home in enumerate(homes, start=1):
            nodes.append(await start_node(home, f"bench-{number}", url))
        await asyncio.gather(
            *(running(node, home) for node, home in zip(nodes, homes, strict=True))
        )
        began = time.perf_counter()
        await service.set_enabled(backlog.mailbox, True)
        await until_delivered(inbox, began)
        return time.perf_counter() - began
    finally:
        await stop_nodes(nodes)
        await service.close()


async def until_delivered(inbox: Path, began: float) -> None:
    """Polls the folder (the engine reports no completion event), seldom while much is left:
    listing 12,000 names costs milliseconds of the CPU the nodes compete for, so the polls
    come closer as the end nears (half the time the rest should take, 10 ms at least)."""
    while (done := await asyncio.to_thread(_count, inbox)) < COUNT:
        elapsed = time.perf_counter() - began
        rest = (COUNT - done) * elapsed / done if done else 0.1
        await asyncio.sleep(min(max(rest / 2, 0.01), 0.5))


def measured(
    configuration: str, backlogs: dict[str, Backlog], server: PostgresServer, place: str | None
) -> float:
    """Envelopes/s of one configuration, e.g. "pg_2", on fresh copies of its backlog."""
    store, nodes = configuration.split("_")
    backlog = backlogs[store]
    with tempfile.TemporaryDirectory(prefix=f"cluster-{configuration}-", dir=place) as tmp:
        first = Path(tmp) / "node-1"
        shutil.copytree(backlog.home, first)
        url = ""
        database = f"round_{os.getpid()}_{time.monotonic_ns()}"
        if store == "pg":
            url = server.url(database)
            server.new_database(template=TEMPLATE, name=database)
        # The copies' dirty pages on disk first, not on the account of the nodes' inbox writes.
        os.sync()
        try:
            homes = node_homes(first, int(nodes))
            return COUNT / asyncio.run(drain_seconds(homes, backlog, url))
        finally:
            if url:
                server.drop_database(database)


def rotated(number: int) -> tuple[str, ...]:
    """Round ``number``'s order: each configuration takes each place in turn."""
    shift = number % len(CONFIGURATIONS)
    return CONFIGURATIONS[shift:] + CONFIGURATIONS[:shift]


def report(rates: dict[str, list[float]]) -> dict[str, object]:
    """Print one place's figures; its part of the JSON line."""
    shown = {configuration: spread(values) for configuration, values in rates.items()}
    for configuration, figures in shown.items():
        store, nodes = configuration.split("_")
        label = f"{'PostgreSQL' if store == 'pg' else 'SQLite'}, {nodes} process(es)"
        print(
            f"    {label:<26} {COUNT:,} envelopes, envelopes/s: min {figures['min']:.0f}  "
            f"median {figures['median']:.0f}  max {figures['max']:.0f}"
        )
    pg_1, pg_2, pg_4 = (shown[c]["median"] for c in ("pg_1", "pg_2", "pg_4"))
    scaling, scaling_4 = round(pg_2 / pg_1, 2), round(pg_4 / pg_1, 2)
    # The same ratio within each round (its two runs side by side): how much the noise moves it.
    paired = spread([two / one for one, two in zip(rates["pg_1"], rates["pg_2"], strict=True)])
    print(
        f"    PostgreSQL 2 / 1 processes: {scaling}  4 / 1: {scaling_4}   "
        f"1 process PostgreSQL / SQLite: {round(pg_1 / shown['sqlite_1']['median'], 2)}"
    )
    print(
        f"    2 / 1 within each round: min {paired['min']:.2f}  median {paired['median']:.2f}  "
        f"max {paired['max']:.2f}"
    )
    return {
        **{f"{configuration}_per_s": figures for configuration, figures in shown.items()},
        "scaling": scaling,
        "scaling_per_round": paired,
        "scaling_4": scaling_4,
    }


def main() -> None:
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    rates: dict[str, dict[str, list[float]]] = {
        place: {c: [] for c in CONFIGURATIONS} for place in PLACES
    }
    server = start_server(DATABASE_DISK)
    try:
        with tempfile.TemporaryDirectory(prefix="cluster-") as tmp:
            server.new_database(name=TEMPLATE)
            backlogs = {
                "pg": fill(Path(tmp) / "pg-home", server.url(TEMPLATE)),
                "sqlite": fill(Path(tmp) / "sqlite-home", ""),
            }
            for number in range(rounds):
                for place in PLACES if number % 2 == 0 else reversed(PLACES):
                    for configuration in rotated(number):
                        rate = measured(configuration, backlogs, server, PLACES[place])
                        rates[place][configuration].append(rate)
    finally:
        server.stop()
    figures: dict[str, dict[str, object]] = {}
    for place, label in (("memory", "in memory (/dev/shm)"), ("disk", "on this machine's disk")):
        print(f"  mailbox folders {label}:")
        figures[place] = report(rates[place])
    scaling = figures["memory"]["scaling"]
    assert isinstance(scaling, float)
    print(f"  scaling (2 / 1 processes, mailbox folders in memory): {scaling}  (aim >= {AIM})")
    result = {
        "bench": "cluster",
        "rounds": rounds,
        "envelopes": COUNT,
        "mailboxes_in_memory": figures["memory"],
        "mailboxes_on_disk": figures["disk"],
        "scaling": scaling,
        "scaling_disk": figures["disk"]["scaling"],
        "aim_scaling": AIM,
        "aim_held": scaling >= AIM,
    }
    print(json.dumps(result))
