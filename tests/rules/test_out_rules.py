"""OUT rules end to end: a file dropped in coutbox/ becomes envelopes through the first
matching rule, or goes to error/ with a note that says what failed and where."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from core.config import load_config
from core.engine.engine import Engine
from core.models import (
    ConversionFilter,
    ConversionRecord,
    ConversionStatus,
    Direction,
    EnvelopeDirection,
    IntegrationForm,
    MatchTarget,
)
from core.service import Service
from core.sftp.folders import ensure_mailbox_root
from core.storage import conversions
from tests.engine.conftest import FAST, enable
from tests.engine.test_customer_files import drop
from tests.engine.test_default_rules import eventually
from tests.rules.samples import (
    BROKEN_AT_LINE_4,
    CSV_TO_ORDERS_1_0,
    CSV_TO_ORDERS_2_0,
    ORDERS_CSV,
    out_rule,
)


async def setup(service: Service, data_dir: Path) -> tuple[str, Path]:
    mailbox = await enable(service, "Purchasing", IntegrationForm())
    root = await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", mailbox)
    return mailbox, root


async def sent_subjects(service: Service, mailbox: str) -> list[str]:
    return sorted(
        e.subject
        for e in await service.list_envelopes(mailbox)
        if e.direction is EnvelopeDirection.OUTGOING
    )


async def error_files(root: Path) -> dict[str, str]:
    def read() -> dict[str, str]:
        return {
            p.name: p.read_text(encoding="utf-8", errors="replace")
            for p in (root / "error").iterdir()
        }

    return await asyncio.to_thread(read)


async def test_a_csv_becomes_one_envelope_per_row_through_an_xslt_1_0_rule(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    mailbox, root = await setup(service, data_dir)
    rule = await service.create_rule(mailbox, out_rule("Orders CSV", CSV_TO_ORDERS_1_0))
    await asyncio.to_thread(drop, root, "coutbox", "orders.csv", ORDERS_CSV)
    engine.wake()

    async def two_sent() -> bool:
        return len(await sent_subjects(service, mailbox)) == 2

    await eventually(two_sent)
    assert await sent_subjects(service, mailbox) == ["Order PO-1", "Order PO-2"]
    assert await asyncio.to_thread(lambda: list((root / "coutbox").iterdir())) == []
    assert (await service.get_rule(rule.uuid)).success_count == 1
    records = await service.conversions.records(ConversionFilter(mailbox_uuid=mailbox))
    [record] = [r for r in records if r.direction is Direction.OUT]
    assert (record.status, record.rule_name, record.file_name) == (
        ConversionStatus.PROCESSED,
        "Orders CSV",
        "coutbox/orders.csv",
    )
    payload = await service.conversions.payload(record.id)
    assert payload is not None and payload.input == ORDERS_CSV
    assert payload.output.count(b"<envelope") == 2


async def test_xslt_2_0_grouping_and_the_first_enabled_match_wins(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    mailbox, root = await setup(service, data_dir)
    off = out_rule("Off", CSV_TO_ORDERS_1_0, enabled=False)
    await service.create_rule(mailbox, off)
    other = await service.create_rule(mailbox, out_rule("Other files", CSV_TO_ORDERS_1_0, r"^x"))
    grouped = await service.create_rule(mailbox, out_rule("Grouped", CSV_TO_ORDERS_2_0))
    data = ORDERS_CSV + b"PO-2;2026-11-02;EUR;C-300;3;1.00\n"
    await asyncio.to_thread(drop, root, "coutbox", "orders.csv", data)
    engine.wake()

    async def two_sent() -> bool:
        return len(await sent_subjects(service, mailbox)) == 2

    await eventually(two_sent)
    assert (await service.get_rule(grouped.uuid)).success_count == 1
    assert (await service.get_rule(other.uuid)).success_count == 0


async def test_failures_go_to_error_with_what_and_where_and_the_others_flow(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    mailbox, root = await setup(service, data_dir)
    broken = await service.create_rule(mailbox, out_rule("Broken", BROKEN_AT_LINE_4, r"^broken"))
    not_envelope = (
        CSV_TO_ORDERS_1_0.replace("<envelopes>", "<orders>")
        .replace("</envelopes>", "</orders>")
        .replace("<envelope ", "<order ")
        .replace("</envelope>", "</order>")
    )
    await service.create_rule(mailbox, out_rule("Wrong output", not_envelope, r"^wrong"))
    await service.create_rule(mailbox, out_rule("Good", CSV_TO_ORDERS_1_0, r"^good"))
    for name in ("broken.csv", "wrong.csv", "nomatch.txt", "good.csv"):
        await asyncio.to_thread(drop, root, "coutbox", name, ORDERS_CSV)
    engine.wake()

    async def all_handled() -> bool:
        # The files reach error/ before their failures are recorded (moved, then recorded).
        failures = await service.conversions.records(
            ConversionFilter(mailbox_uuid=mailbox, status=ConversionStatus.FAILED)
        )
        return (
            len(await error_files(root)) == 6
            and len(await sent_subjects(service, mailbox)) == 2
            and len([r for r in failures if r.direction is Direction.OUT]) == 3
        )

    await eventually(all_handled)
    notes = await error_files(root)
    assert "Rule 'Broken' failed" in notes["broken.csv.error.txt"]
    assert "line 4" in notes["broken.csv.error.txt"]
    assert "no <envelope> in it" in notes["wrong.csv.error.txt"]
    assert "No conversion rule matches this file" in notes["nomatch.txt.error.txt"]
    assert notes["broken.csv"] == ORDERS_CSV.decode()  # the file itself, untouched
    assert (await service.get_rule(broken.uuid)).failure_count == 1
    failed = await service.conversions.records(
        ConversionFilter(mailbox_uuid=mailbox, status=ConversionStatus.FAILED)
    )
    failed = [r for r in failed if r.direction is Direction.OUT]
    assert sorted(r.file_name for r in failed) == [
        "coutbox/broken.csv",
        "coutbox/nomatch.txt",
        "coutbox/wrong.csv",
    ]
    assert [r.rule_uuid for r in failed if r.file_name == "coutbox/nomatch.txt"] == [None]


async def test_reprocess_of_a_failed_file_after_the_fix_makes_its_envelopes(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    mailbox, root = await setup(service, data_dir)
    rule = await service.create_rule(mailbox, out_rule("Orders", BROKEN_AT_LINE_4))
    await asyncio.to_thread(drop, root, "coutbox", "orders.csv", ORDERS_CSV)
    engine.wake()

    async def out_records() -> list[ConversionRecord]:
        records = await service.conversions.records(ConversionFilter(mailbox_uuid=mailbox))
        return [r for r in records if r.direction is Direction.OUT]

    async def failed_once() -> bool:
        return len(await out_records()) == 1

    await eventually(failed_once)
    [failed] = await out_records()
    assert failed.status is ConversionStatus.FAILED
    await service.update_rule(rule.uuid, replace(rule.form, conversion_map=CSV_TO_ORDERS_1_0))
    result = await service.conversions.reprocess([failed.id, 999_999])
    assert result.queued == (failed.id,)
    assert result.skipped == ((999_999, "no such record"),)
    engine.wake()

    async def two_sent() -> bool:
        return len(await sent_subjects(service, mailbox)) == 2

    await eventually(two_sent)
    records = await service.conversions.records(
        ConversionFilter(mailbox_uuid=mailbox, status=ConversionStatus.REPROCESSED)
    )
    assert [r.file_name for r in records] == ["coutbox/orders.csv"]
    assert await error_files(root) == {}  # the mended failure no longer shows


async def test_a_content_rule_matches_text_in_the_first_megabyte_only(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    mailbox, root = await setup(service, data_dir)
    await service.create_rule(
        mailbox,
        out_rule(
            "By content", CSV_TO_ORDERS_1_0, r"^orderNumber;", match_target=MatchTarget.CONTENT
        ),
    )
    late = ORDERS_CSV + b"x" * (1024 * 1024) + b"\norderNumber;late\n"
    await asyncio.to_thread(drop, root, "coutbox", "a.txt", ORDERS_CSV)
    await asyncio.to_thread(drop, root, "coutbox", "b.txt", late.replace(b"orderNumber;o", b"x", 1))
    engine.wake()

    async def handled() -> bool:
        return len(await sent_subjects(service, mailbox)) == 2 and len(await error_files(root)) == 2

    await eventually(handled)
    assert set(await error_files(root)) == {"b.txt", "b.txt.error.txt"}


async def test_kept_inputs_and_outputs_are_pruned_past_keep_days(
    service: Service, data_dir: Path
) -> None:
    """With keep_days = 0 the engine's first pruning drops what an earlier attempt kept; the
    record itself (and the counters) stay."""
    mailbox, _ = await setup(service, data_dir)
    entry = conversions.NewConversion(
        mailbox_uuid=mailbox,
        direction=Direction.OUT,
        rule_uuid=None,
        rule_name="",
        status=ConversionStatus.FAILED,
        file_name="coutbox/x.csv",
        input_name="x.csv",
        input=b"a;b\n",
    )
    record_id = await service.db.write(conversions.record, entry, 1024)
    assert (await service.conversions.payload(record_id)) is not None
    config = await asyncio.to_thread(load_config, data_dir)
    config = replace(config, conversion=replace(config.conversion, keep_days=0))
    engine = Engine(config, FAST)
    await engine.start()
    try:

        async def pruned() -> bool:
            return await service.conversions.payload(record_id) is None

        await eventually(pruned)
    finally:
        await engine.stop()
    assert (await service.conversions.get(record_id)).file_name == "coutbox/x.csv"


async def test_an_invalid_envelope_from_the_map_is_named_by_its_xpath(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    mailbox, root = await setup(service, data_dir)
    bad_index = CSV_TO_ORDERS_1_0.replace('<fieldset index="0">', '<fieldset index="first">')
    await service.create_rule(mailbox, out_rule("Bad index", bad_index))
    await asyncio.to_thread(drop, root, "coutbox", "orders.csv", ORDERS_CSV)
    engine.wake()

    async def failed() -> bool:
        return "orders.csv.error.txt" in await error_files(root)

    await eventually(failed)
    note = (await error_files(root))["orders.csv.error.txt"]
    assert "Envelope 1 of 2 the conversion map produced is not valid" in note
    assert "at /envelope/documents/document/fieldgroup/fieldset" in note
    assert await sent_subjects(service, mailbox) == []  # all or nothing: the valid one neither


SAMPLES = Path(__file__).resolve().parents[1] / "conversion" / "samples" / "edifact"


async def test_unreadable_sources_go_to_error_naming_format_and_place_and_lose_nothing(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    """Real files, broken as they break in practice: a workbook cut off in transfer, an
    EDIFACT interchange cut off mid-message, and binary junk sent as a CSV."""
    from tests.conversion.test_sources import xlsx_bytes

    mailbox, root = await setup(service, data_dir)
    await service.create_rule(mailbox, out_rule("Anything", CSV_TO_ORDERS_1_0, r"."))
    workbook = await asyncio.to_thread(xlsx_bytes)
    edifact = await asyncio.to_thread((SAMPLES / "orders-d96a-eancom.edi").read_bytes)
    broken = {
        "orders.xlsx": workbook[: len(workbook) // 2],
        "orders.edi": edifact[: len(edifact) * 2 // 3],
        "orders.csv": bytes(range(256)) * 4,
    }
    for name, data in broken.items():
        await asyncio.to_thread(drop, root, "coutbox", name, data)
    engine.wake()

    async def all_failed() -> bool:
        return len(await error_files(root)) == 2 * len(broken)

    await eventually(all_failed)
    notes = await error_files(root)
    assert "XLSX workbook cannot be read" in notes["orders.xlsx.error.txt"]
    assert "EDIFACT" in notes["orders.edi.error.txt"]
    assert "segment" in notes["orders.edi.error.txt"] or "byte" in notes["orders.edi.error.txt"]
    assert "CSV" in notes["orders.csv.error.txt"]
    for name, data in broken.items():  # nothing lost: each file back, byte for byte
        assert (root / "error" / name).read_bytes() == data
    print(*(notes[f"{n}.error.txt"] for n in broken), sep="\n")


async def test_a_file_whose_second_envelope_is_refused_records_none_and_its_batch_flows(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    """The template check runs where envelopes are recorded, all files of a batch in one
    transaction: the refused file's first envelope must be undone with it, the others kept."""
    mailbox, root = await setup(service, data_dir)
    unknown_field_on_po_2 = CSV_TO_ORDERS_1_0.replace(
        '<field name="currency">',
        '<xsl:if test="col[@index=0]=\'PO-2\'"><field name="bogus">x</field></xsl:if>'
        '<field name="currency">',
    )
    await service.create_rule(mailbox, out_rule("Bogus", unknown_field_on_po_2))
    good = ORDERS_CSV.replace(b"PO-1", b"PO-7").replace(b"PO-2", b"PO-8")
    await asyncio.to_thread(drop, root, "coutbox", "bad.csv", ORDERS_CSV)
    await asyncio.to_thread(drop, root, "coutbox", "good.csv", good)
    engine.wake()

    async def handled() -> bool:
        return len(await error_files(root)) == 2 and len(await sent_subjects(service, mailbox)) == 2

    await eventually(handled)
    assert await sent_subjects(service, mailbox) == ["Order PO-7", "Order PO-8"]
    note = (await error_files(root))["bad.csv.error.txt"]
    assert "Envelope 2 of 2" in note and "bogus" in note


async def test_values_the_template_does_not_allow_are_refused_with_the_field_and_row(
    service: Service, engine: Engine, data_dir: Path
) -> None:
    """Found walking the TUI: a CSV with 'not-a-date' as a date and 'x' as a quantity became
    a sent envelope. Every envelope a mailbox sends fills the required fields and types."""
    mailbox, root = await setup(service, data_dir)
    await service.create_rule(mailbox, out_rule("Orders", CSV_TO_ORDERS_1_0))
    bad = ORDERS_CSV.replace(b"PO-1;2026-11-01;EUR;A-100;2;", b"PO-1;not-a-date;;A-100;x;")
    await asyncio.to_thread(drop, root, "coutbox", "bad.csv", bad)
    engine.wake()

    async def failed() -> bool:
        return "bad.csv.error.txt" in await error_files(root)

    await eventually(failed)
    note = (await error_files(root))["bad.csv.error.txt"]
    assert "order: 'orderDate' is 'not-a-date', not a date" in note
    assert "order: 'currency' is required and empty" in note
    assert "order / lines row 0: 'quantity' is 'x', not a number" in note
    assert await sent_subjects(service, mailbox) == []
    result = await service.conversions.run(
        mailbox, replace(out_rule("Orders", CSV_TO_ORDERS_1_0), example_source=bad)
    )
    assert not result.ok and "not a date" in result.error  # Run says the same
