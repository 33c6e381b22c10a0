"""IN rules end to end: an incoming envelope goes to the first enabled IN rule for its template
(and pinned version), becomes a file in cinbox/ under its pattern name, exactly once; a map that
fails parks the envelope with the reason, and a reprocess after the fix delivers it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from core.engine.engine import Engine
from core.models import ConversionFilter, ConversionStatus, IntegrationForm, JobKind, JobState
from core.service import Service
from tests.engine.conftest import enable
from tests.engine.test_default_rules import eventually, jobs_of, statuses
from tests.rules.samples import BROKEN_AT_LINE_4, in_rule

PURCHASING = "26c79f73-753d-4148-b26a-5d3e9abbc6fb"


async def folder(data_dir: Path, mailbox: str, name: str) -> dict[str, str]:
    path = data_dir / "mailboxes" / mailbox / name

    def read() -> dict[str, str]:
        if not path.is_dir():
            return {}
        return {p.name: p.read_text(encoding="utf-8") for p in path.iterdir()}

    return await asyncio.to_thread(read)


async def test_envelopes_of_the_rule_s_template_become_files_in_cinbox(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    rule = await service.create_rule(PURCHASING, in_rule("Orders as CSV"))
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    engine.wake()

    async def done() -> bool:
        return await statuses(service, mailbox) == {"COMPLETED"}

    await eventually(done)
    orders = await service.list_envelopes(mailbox)
    files = await folder(data_dir, mailbox, "cinbox")
    assert sorted(files) == sorted(f"{e.uuid}.csv" for e in orders)
    first = next(iter(files.values()))
    number, currency, total = first.strip().split(";")
    assert number.startswith("PO-") and currency and float(total) > 0
    assert await folder(data_dir, mailbox, "inbox") == {}  # none went to the default rule
    assert (await service.get_rule(rule.uuid)).success_count == len(orders)
    records = await service.conversions.records(ConversionFilter(mailbox_uuid=mailbox))
    assert {(r.rule_name, r.status) for r in records} == {
        ("Orders as CSV", ConversionStatus.PROCESSED)
    }
    activity = await service.activity_log(mailbox)
    assert {a.rule for a in activity} == {"rule:Orders as CSV"}


async def test_a_pinned_version_takes_only_its_version_and_clashing_names_get_the_time(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    await service.create_rule(
        PURCHASING, in_rule("Version 2 only", template_version=2, naming_pattern="order.csv")
    )
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    engine.wake()

    async def done() -> bool:
        return await statuses(service, mailbox) == {"COMPLETED"}

    await eventually(done)
    orders = await service.list_envelopes(mailbox)
    version_2 = [e for e in orders if e.template_version == 2]
    files = await folder(data_dir, mailbox, "cinbox")
    assert len(files) == len(version_2) == 2
    assert "order.csv" in files
    [other] = [name for name in files if name != "order.csv"]
    assert other.startswith("order_") and other.endswith(".csv")
    inbox = await folder(data_dir, mailbox, "inbox")
    assert sorted(inbox) == sorted(f"{e.uuid}.xml" for e in orders if e.template_version == 1)
    records = await service.conversions.records(ConversionFilter(mailbox_uuid=mailbox))
    assert sorted(r.rule_name for r in records) == [
        "Version 2 only",
        "Version 2 only",
        "default:copy",
        "default:copy",
    ]
    assert await service.conversions.no_rule_count(mailbox) == 2


async def test_a_failing_map_parks_the_envelope_and_reprocess_after_the_fix_delivers_it(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    rule = await service.create_rule(
        PURCHASING, in_rule("Broken", BROKEN_AT_LINE_4, template_version=1)
    )
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    engine.wake()

    async def two_parked() -> bool:
        return len(await jobs_of(service, mailbox, JobKind.ENVELOPE, JobState.PARKED)) == 2

    await eventually(two_parked)
    failed = await service.conversions.records(
        ConversionFilter(mailbox_uuid=mailbox, status=ConversionStatus.FAILED)
    )
    assert len(failed) == 2  # parked at once: retrying cannot mend a map
    assert all("line 4" in r.error and "Rule 'Broken' failed" in r.error for r in failed)
    assert (await service.get_rule(rule.uuid)).failure_count == 2
    assert len(await folder(data_dir, mailbox, "inbox")) == 2  # version 2 flowed on

    fixed = replace(rule.form, conversion_map=in_rule("x").conversion_map)
    await service.update_rule(rule.uuid, fixed)
    result = await service.conversions.reprocess([r.id for r in failed])
    assert sorted(result.queued) == sorted(r.id for r in failed) and result.skipped == ()
    engine.wake()

    async def delivered() -> bool:
        return len(await folder(data_dir, mailbox, "cinbox")) == 2

    await eventually(delivered)
    again = await service.conversions.records(
        ConversionFilter(mailbox_uuid=mailbox, status=ConversionStatus.REPROCESSED)
    )
    assert sorted(r.envelope_uuid for r in again) == sorted(r.envelope_uuid for r in failed)
    assert await statuses(service, mailbox) == {"COMPLETED"}


LOOKUP_MAP = """<?xml version="1.0"?>
<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:wd="java:com.whitedoc.xslt.extensions.WdExtensions">
  <xsl:output method="text"/>
  <xsl:template match="/">
    <xsl:value-of select="wd:getMailboxUuidByAlias('Logistics')"/>
  </xsl:template>
</xsl:stylesheet>
"""


async def test_the_platform_s_look_up_functions_answer_from_the_mailbox_s_account(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    await service.create_rule(PURCHASING, in_rule("Look-up", LOOKUP_MAP, template_version=1))
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    engine.wake()

    async def delivered() -> bool:
        return len(await folder(data_dir, mailbox, "cinbox")) == 2

    await eventually(delivered)
    logistics = (await service.resolve_mailbox("Logistics")).uuid
    assert set((await folder(data_dir, mailbox, "cinbox")).values()) == {logistics}
