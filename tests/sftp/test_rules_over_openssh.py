"""Conversion rules as a customer meets them, over OpenSSH's own sftp client: a CSV put in
coutbox/ becomes envelopes through an OUT rule (XSLT 2.0), and the mailbox's incoming
envelopes wait in cinbox/ under the IN rule's naming pattern."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from core.config import load_config
from core.engine.engine import Engine
from core.envelope_xml import parse_envelope_xml
from core.models import EnvelopeDirection
from core.service import Service
from tests.engine.conftest import FAST, enable_sftp
from tests.engine.test_default_rules import eventually
from tests.rules.samples import CSV_TO_ORDERS_2_0, ORDERS_CSV, in_rule, out_rule
from tests.sftp.conftest import OPENSSH_OPTIONS, needs_openssh

pytestmark = needs_openssh
PURCHASING = "26c79f73-753d-4148-b26a-5d3e9abbc6fb"


@pytest.fixture
async def engine(data_dir: Path) -> AsyncIterator[Engine]:
    config = await asyncio.to_thread(load_config, data_dir)
    running = Engine(
        replace(config, sftp=replace(config.sftp, port=0)), replace(FAST, run_sftp=True)
    )
    await running.start()
    yield running
    await running.stop()


DEMO = Path(__file__).resolve().parents[2] / "data" / "demo" / "envelopes"


def order_file_names(mailbox: str) -> set[str]:
    """The names the pattern gives the demo orders waiting for ``mailbox``."""
    names = set()
    for path in DEMO.glob("*.xml"):
        parsed = parse_envelope_xml(path.read_bytes())
        order = parsed.document("order")
        if parsed.role_mailbox("recipient") == mailbox and order is not None:
            names.add(f"{order.field_value('orderNumber')}.csv")
    return names


async def openssh_sftp(engine: Engine, login: str, password: str, commands: str, cwd: Path) -> str:
    host, port = engine.listeners["sftp"].rsplit(":", 1)
    batch = cwd / "batch"
    await asyncio.to_thread(batch.write_text, commands, encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        "sshpass", "-e", "sftp", "-o", "BatchMode=no", *OPENSSH_OPTIONS,
        "-b", str(batch), "-P", port, f"{login}@{host}",
        env={**os.environ, "SSHPASS": password},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_a_csv_put_over_openssh_becomes_envelopes_and_envelopes_wait_in_cinbox(
    service: Service, engine: Engine, data_dir: Path, tmp_path: Path
) -> None:
    await service.create_rule(PURCHASING, out_rule("Orders CSV", CSV_TO_ORDERS_2_0))
    pattern = '{"order":"orderNumber"}.csv'
    await service.create_rule(PURCHASING, in_rule("Orders out", naming_pattern=pattern))
    mailbox, password = await enable_sftp(service, "Purchasing")
    await asyncio.to_thread((tmp_path / "orders.csv").write_bytes, ORDERS_CSV)
    await openssh_sftp(engine, mailbox, password, "put orders.csv coutbox/orders.csv\n", tmp_path)
    engine.wake()

    async def sent() -> bool:
        envelopes = await service.list_envelopes(mailbox)
        return len([e for e in envelopes if e.direction is EnvelopeDirection.OUTGOING]) == 2

    await eventually(sent)
    expected = await asyncio.to_thread(order_file_names, PURCHASING)
    assert len(expected) == 4  # the demo orders waiting for Purchasing

    async def listed() -> bool:
        out = await openssh_sftp(engine, mailbox, password, "ls -1 cinbox\n", tmp_path)
        return {line.strip().removeprefix("cinbox/") for line in out.splitlines()[1:]} == expected

    await eventually(listed)
    name = sorted(expected)[0]
    await openssh_sftp(engine, mailbox, password, f"get cinbox/{name} got.csv\n", tmp_path)
    text = await asyncio.to_thread((tmp_path / "got.csv").read_text, encoding="utf-8")
    assert text.startswith(name.removesuffix(".csv") + ";")
