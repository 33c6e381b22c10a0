"""Two `docbridge serve` nodes on one PostgreSQL store and one mailbox tree, as issue 12 asks:
an OpenSSH sftp login works on either node (with the same host key), a file one node delivered
is downloaded from the other, a password reset closes the sessions on both nodes, and an
address banned on node A is refused on node B."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from core.service import Service
from tests.conftest import DOCBRIDGE
from tests.engine.conftest import enable_sftp, free_port
from tests.engine.test_crash import DEMO, with_new_uuid
from tests.engine.test_default_rules import eventually
from tests.sftp.conftest import OPENSSH_OPTIONS


@dataclass
class Node:
    name: str
    home: Path
    port: int
    process: subprocess.Popen[bytes]
    log: Path


def _home(data_dir: Path, name: str, mailbox_root: Path) -> Path:
    home = data_dir if name == "a" else data_dir.parent / f"node-{name}"
    home.mkdir(mode=0o700, exist_ok=True)
    (home / "docbridge.toml").write_text(
        f'[sftp]\nmailbox_root = "{mailbox_root}"\n', encoding="utf-8"
    )
    return home


@pytest.fixture
async def nodes(data_dir: Path, tmp_path: Path, service: Service) -> AsyncIterator[list[Node]]:
    started: list[Node] = []
    for name in ("a", "b"):
        home = await asyncio.to_thread(_home, data_dir, name, data_dir / "mailboxes")
        port = free_port()
        log = tmp_path / f"serve-{name}.log"
        started.append(Node(name, home, port, _serve(home, name, port, log), log))

    async def both_listening() -> bool:
        status = await service.engine_status()
        return sum(1 for n in status.nodes if n["running"] and n["listeners"]) == 2

    try:
        await eventually(both_listening, within_s=30)
        yield started
    finally:
        for node in started:
            node.process.send_signal(signal.SIGTERM)
        for node in started:
            await asyncio.to_thread(node.process.wait, 20)


def _serve(home: Path, name: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [str(DOCBRIDGE), "--data-dir", str(home), "serve", "--no-as2"]
            + ["--node-name", name, "--sftp-port", str(port)],
            stdout=sink,
            stderr=sink,
            stdin=subprocess.DEVNULL,
        )


def _connect(node: Node, login: str, password: str) -> Any:
    return asyncssh.connect(
        "127.0.0.1",
        node.port,
        username=login,
        password=password,
        known_hosts=None,
        client_keys=None,
        preferred_auth="password",
    )


async def _openssh(node: Node, login: str, password: str, commands: str, tmp: Path) -> str:
    """OpenSSH's sftp in batch mode against a node; its output (it must succeed)."""
    batch = tmp / f"batch-{node.name}"
    await asyncio.to_thread(batch.write_text, commands, encoding="utf-8")
    argv = ["sshpass", "-e", "sftp", "-o", "BatchMode=no", *OPENSSH_OPTIONS]
    argv += ["-b", str(batch), "-P", str(node.port), f"{login}@127.0.0.1"]
    process = await asyncio.create_subprocess_exec(
        *argv,
        env={**os.environ, "SSHPASS": password},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.postgres_only("two nodes, each with its own data directory, share one store")
@pytest.mark.timeout(180)
async def test_two_nodes_share_logins_files_password_resets_and_bans(
    service: Service, nodes: list[Node], tmp_path: Path
) -> None:
    node_a, node_b = nodes
    mailbox, password = await enable_sftp(service, "Purchasing")
    status = await service.engine_status()
    host_keys = {str(n["listeners"]["sftp_host_key"]) for n in status.nodes}
    assert len(host_keys) == 1  # customers pin one fingerprint, whichever node they reach

    # An envelope the nodes deliver to inbox/ (whichever takes it) is downloaded from either.
    template = (DEMO / "01-purchase-order-acme.xml").read_text(encoding="utf-8")
    envelope_uuid, data = with_new_uuid(template)
    await service.receive_envelope(mailbox, data)
    inbox = (await asyncio.to_thread(Path, node_a.home / "mailboxes")) / mailbox / "inbox"

    async def delivered() -> bool:
        return await asyncio.to_thread((inbox / f"{envelope_uuid}.xml").exists)

    await eventually(delivered, within_s=20)
    for node in nodes:
        listing = await _openssh(
            node, mailbox, password, f"get inbox/{envelope_uuid}.xml\n", tmp_path
        )
        assert f"inbox/{envelope_uuid}.xml" in listing
        fetched = await asyncio.to_thread((tmp_path / f"{envelope_uuid}.xml").read_bytes)
        assert fetched == data
        await asyncio.to_thread((tmp_path / f"{envelope_uuid}.xml").unlink)

    # A password reset closes the sessions on both nodes.
    async with (
        _connect(node_a, mailbox, password) as on_a,
        _connect(node_b, mailbox, password) as on_b,
    ):
        new_password = await service.reset_password(mailbox)

        async def both_closed() -> bool:
            return all(c.is_closed() for c in (on_a, on_b))

        await eventually(both_closed, within_s=10)

    # Failed logins on A ban the address there; B refuses it too, even with the right password.
    for _ in range(5):
        with pytest.raises((asyncssh.PermissionDenied, asyncssh.DisconnectError)):
            async with _connect(node_a, mailbox, "wrong password"):
                pass

    async def refused_on_b() -> bool:
        try:
            async with _connect(node_b, mailbox, new_password):
                return False
        except (asyncssh.PermissionDenied, asyncssh.DisconnectError, OSError):
            return True

    await eventually(refused_on_b, within_s=5)
    assert [ban.address for ban in await service.list_bans()] == ["127.0.0.1"]
    logs = [await asyncio.to_thread(node.log.read_text) for node in nodes]
    assert "Traceback" not in "".join(logs), logs
