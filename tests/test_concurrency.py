"""A TUI and a `docbridge serve` share one database: concurrent writers must neither fail
with 'database is locked' nor lose a write."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from core.service import Service
from core.storage import logs

WRITER = r"""
import asyncio, sys
from pathlib import Path

from core.service import Service
from core.storage import logs
from core.models import Direction, RuleForm
from core.service import Service

async def main(data_dir, tag, count):
    service = await Service.open(Path(data_dir), actor=f"writer-{tag}")
    mailbox = (await service.list_mailboxes())[0]
    template = (await service.list_templates(mailbox.account_uuid))[0]
    for i in range(count):
        form = RuleForm(name=f"{tag}-{i}", direction=Direction.IN,
                        template_uuid=template.uuid, naming_pattern="{envelopeUuid}.xml",
                        conversion_map='<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"/>')
        await service.create_rule(mailbox.uuid, form)
        await service.set_enabled(mailbox.uuid, i % 2 == 0)
    await service.close()
    print("done")

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_two_processes_writing_at_once_lose_nothing(data_dir: Path) -> None:
    count = 200
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            str(data_dir),
            tag,
            str(count),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for tag in ("a", "b")
    ]
    outputs = [await asyncio.wait_for(p.communicate(), timeout=240) for p in processes]
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()
        assert stdout.decode().strip() == "done"
        assert b"locked" not in stderr

    service = await Service.open(data_dir, actor="test@check")
    try:
        mailbox = (await service.list_mailboxes())[0].uuid
        stored = await service.list_rules(mailbox)
        audit = await service.db.read(logs.list_audit, None, 5 * count)
    finally:
        await service.close()
    names = {rule.name for rule in stored}
    positions = sorted(rule.position for rule in stored)
    created_count = sum(1 for entry in audit if entry.action == "rule.created")
    assert names == {f"{tag}-{i}" for tag in ("a", "b") for i in range(count)}
    assert positions == list(range(2 * count))  # ordered list stayed dense and unique
    assert created_count == 2 * count
