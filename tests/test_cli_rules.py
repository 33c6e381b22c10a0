"""The conversion commands of the CLI (issue 9): rules as JSON, Run, the XML view of a source,
the conversion log and its reprocess, through the real console script."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from core.models import ConversionStatus, Direction, JobKind, JobState
from core.rule_json import KEYS, form_to_json
from core.service import Service
from core.sftp.folders import ensure_mailbox_root
from core.storage import conversions
from core.storage.conversions import NewConversion
from tests.conftest import run_cli
from tests.rules.samples import (
    BROKEN_AT_LINE_4,
    CSV_TO_ORDERS_1_0,
    CSV_TO_ORDERS_2_0,
    ORDERS_CSV,
    in_rule,
    out_rule,
)
from tests.test_cli import DEMO_ENVELOPE, PURCHASING, store_snapshot

ACCOUNTS_PAYABLE = "a241b640-05fa-41d9-ba01-dd083bca8dac"


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "orders.csv"
    path.write_bytes(ORDERS_CSV)
    return path


async def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The console script from an async test, off the event loop."""
    return await asyncio.to_thread(run_cli, data_dir, *args)


async def record(service: Service, **fields: Any) -> int:
    entry = NewConversion(
        **{
            "mailbox_uuid": PURCHASING,
            "direction": Direction.OUT,
            "rule_uuid": None,
            "rule_name": "",
            "status": ConversionStatus.PROCESSED,
            **fields,
        }
    )
    return await service.db.write(conversions.record, entry, 1 << 20)


# -- rules as JSON ---------------------------------------------------------------------------


def test_an_export_leaves_empty_what_the_direction_does_not_use(
    data_dir: Path, tmp_path: Path
) -> None:
    """The TUI's form keeps a default naming pattern on an OUT rule (and a pattern on an IN
    rule after switching): exported, the rule says only what it uses."""
    typed = dict(
        form_to_json(out_rule("Orders CSV", CSV_TO_ORDERS_2_0)), naming_pattern="{envelopeUuid}.xml"
    )
    imported = run_cli(
        data_dir, "rule", "import", "Purchasing", str(write_json(tmp_path / "r.json", typed))
    )
    assert imported.returncode == 0, imported.stderr
    exported = json.loads(run_cli(data_dir, "rule", "export", "Orders CSV").stdout)
    assert exported == dict(typed, naming_pattern="")


def test_export_then_import_round_trips_with_exactly_the_specified_keys(
    data_dir: Path, tmp_path: Path
) -> None:
    original = form_to_json(out_rule("Orders CSV", CSV_TO_ORDERS_2_0, template_version=2))
    imported = run_cli(
        data_dir, "rule", "import", "Purchasing", str(write_json(tmp_path / "r.json", original))
    )
    assert imported.returncode == 0, imported.stderr
    rule_uuid = imported.stdout.strip()
    assert "Purchasing: rule 'Orders CSV' imported (enabled)" in imported.stderr

    by_name = run_cli(data_dir, "rule", "export", "Orders CSV")
    by_uuid = run_cli(data_dir, "rule", "export", rule_uuid)
    assert by_name.returncode == 0, by_name.stderr
    exported = json.loads(by_name.stdout)
    assert list(exported) == [
        "name",
        "enabled",
        "direction",
        "template_uuid",
        "template_version",
        "match_pattern",
        "match_source",
        "naming_pattern",
        "multiple_envelopes",
        "conversion_map",
    ]
    assert list(exported) == list(KEYS)
    assert exported == original == json.loads(by_uuid.stdout)
    assert (exported["direction"], exported["match_source"], exported["template_version"]) == (
        "out",
        "name",
        2,
    )

    # The export imports into another mailbox unchanged.
    again = run_cli(
        data_dir, "rule", "import", ACCOUNTS_PAYABLE, str(write_json(tmp_path / "e.json", exported))
    )
    assert again.returncode == 0, again.stderr
    two = run_cli(data_dir, "rule", "export", "Orders CSV")
    assert two.returncode == 1
    assert "2 rules are named 'Orders CSV'" in two.stderr and "--mailbox" in two.stderr
    scoped = run_cli(data_dir, "rule", "export", "Orders CSV", "--mailbox", "Accounts Payable")
    assert json.loads(scoped.stdout) == original


def _good() -> dict[str, Any]:
    return form_to_json(out_rule("Orders CSV", CSV_TO_ORDERS_1_0))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"name": "Orders", "direction": "out",\n  oops}', ["is not JSON", "(line 2, column"]),
        ({**_good(), "colour": "red"}, ["docbridge: rule: Unknown keys: colour"]),
        (
            {**_good(), "direction": "sideways"},
            ["docbridge: direction: Must be one of 'in', 'out'"],
        ),
        ([_good()], ["docbridge: rule: A rule is one JSON object"]),
        (
            {**_good(), "conversion_map": BROKEN_AT_LINE_4},
            ["docbridge: conversion_map: The conversion map does not compile (line 4)"],
        ),
        (
            {**_good(), "conversion_map": BROKEN_AT_LINE_4, "match_pattern": "("},
            ["docbridge: match_pattern: Not a valid regular expression", "conversion_map:"],
        ),
    ],
)
def test_import_refuses_a_bad_rule_with_a_clear_message_and_stores_nothing(
    data_dir: Path, tmp_path: Path, content: Any, expected: list[str]
) -> None:
    path = tmp_path / "rule.json"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        write_json(path, content)
    before = store_snapshot(data_dir)
    result = run_cli(data_dir, "rule", "import", "Purchasing", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    for text in expected:
        assert text in result.stderr
    assert all(line.startswith("docbridge: ") for line in result.stderr.splitlines())
    assert store_snapshot(data_dir) == before


def test_import_refuses_a_duplicate_name_and_a_missing_file(data_dir: Path, tmp_path: Path) -> None:
    path = write_json(tmp_path / "rule.json", _good())
    assert run_cli(data_dir, "rule", "import", "Purchasing", str(path)).returncode == 0
    before = store_snapshot(data_dir)
    duplicate = run_cli(data_dir, "rule", "import", "Purchasing", str(path))
    assert duplicate.returncode == 1
    assert duplicate.stderr == (
        "docbridge: name: This mailbox already has a rule named 'Orders CSV'.\n"
    )
    missing = run_cli(data_dir, "rule", "import", "Purchasing", str(tmp_path / "nope.json"))
    assert missing.returncode == 1
    assert "There is no file at" in missing.stderr
    assert store_snapshot(data_dir) == before


async def test_rule_list_json_gives_the_rules_in_order_with_their_counters(
    data_dir: Path, service: Service
) -> None:
    first = await service.create_rule(PURCHASING, out_rule("Orders CSV", CSV_TO_ORDERS_1_0))
    second = await service.create_rule(PURCHASING, in_rule("Order line", enabled=False))
    await service.create_rule(ACCOUNTS_PAYABLE, in_rule("Elsewhere"))
    await record(service, rule_uuid=first.uuid, rule_name="Orders CSV")
    await record(service, rule_uuid=first.uuid, rule_name="Orders CSV")
    await record(
        service,
        rule_uuid=second.uuid,
        rule_name="Order line",
        direction=Direction.IN,
        status=ConversionStatus.FAILED,
        error="boom",
    )
    listed = await cli(data_dir, "rule", "list", "Purchasing", "--json")
    assert listed.returncode == 0, listed.stderr
    rules = json.loads(listed.stdout)
    assert [(r["name"], r["direction"], r["enabled"]) for r in rules] == [
        ("Orders CSV", "out", True),
        ("Order line", "in", False),
    ]
    assert [(r["uuid"], r["success_count"], r["failure_count"]) for r in rules] == [
        (first.uuid, 2, 0),
        (second.uuid, 0, 1),
    ]
    assert rules[0]["position"] < rules[1]["position"]
    assert rules[0]["conversion_map"] == CSV_TO_ORDERS_1_0

    text = await cli(data_dir, "rule", "list", "Purchasing")
    lines = text.stdout.splitlines()
    assert len(lines) == 2
    assert first.uuid in lines[0] and "Orders CSV" in lines[0] and "ok 2, failed 0" in lines[0]
    assert "off" in lines[1] and "ok 0, failed 1" in lines[1]


async def test_rule_list_shows_a_name_with_control_characters_escaped(
    data_dir: Path, service: Service
) -> None:
    await service.create_rule(PURCHASING, in_rule("Evil\x1b[2J"))
    listed = await cli(data_dir, "rule", "list", "Purchasing")
    assert "\x1b" not in listed.stdout
    assert "Evil\\x1b[2J" in listed.stdout


# -- Run and the XML view --------------------------------------------------------------------


async def test_rule_run_out_prints_two_envelopes_and_changes_nothing(
    data_dir: Path, service: Service, tmp_path: Path
) -> None:
    await service.create_rule(PURCHASING, out_rule("Orders CSV", CSV_TO_ORDERS_1_0))
    source = csv_file(tmp_path)
    before = await asyncio.to_thread(store_snapshot, data_dir)
    result = await cli(data_dir, "rule", "run", "Orders CSV", "--source", str(source))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("<envelope ") == 2
    assert "<subject>Order PO-1</subject>" in result.stdout
    assert "<subject>Order PO-2</subject>" in result.stdout
    assert f'mailboxUuid="{PURCHASING}"' in result.stdout  # SENDER_MAILBOX: the rule's mailbox
    assert "2 envelopes; source read as CSV, delimiter ';'" in result.stderr
    assert await asyncio.to_thread(store_snapshot, data_dir) == before

    as_json = await cli(data_dir, "rule", "run", "Orders CSV", "--source", str(source), "--json")
    data = json.loads(as_json.stdout)
    assert (data["ok"], data["direction"], len(data["envelopes"])) == (True, "out", 2)


def test_rule_run_a_json_rule_runs_as_the_given_mailbox(data_dir: Path, tmp_path: Path) -> None:
    rule = write_json(tmp_path / "orders.json", _good())
    source = csv_file(tmp_path)
    before = store_snapshot(data_dir)
    result = run_cli(
        data_dir, "rule", "run", str(rule), "--source", str(source), "--mailbox", ACCOUNTS_PAYABLE
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("<envelope ") == 2
    assert f'<role id="sender" mailboxUuid="{ACCOUNTS_PAYABLE}"/>' in result.stdout
    without = run_cli(data_dir, "rule", "run", str(rule), "--source", str(source))
    assert without.returncode == 1
    assert "needs the mailbox it runs as" in without.stderr and "--mailbox" in without.stderr
    gone = run_cli(data_dir, "rule", "run", str(tmp_path / "gone.json"), "--source", str(source))
    assert gone.returncode == 1
    assert "There is no file at" in gone.stderr and "no conversion rule" in gone.stderr
    assert store_snapshot(data_dir) == before


async def test_rule_run_in_on_a_demo_envelope_prints_the_file_name_and_text(
    data_dir: Path, service: Service
) -> None:
    await service.create_rule(PURCHASING, in_rule("Order line"))
    result = await cli(data_dir, "rule", "run", "Order line", "--source", str(DEMO_ENVELOPE))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "PO-2024-0117;EUR;2683.00\n"
    [name_line] = result.stderr.splitlines()
    assert name_line.startswith("file name: ") and name_line.endswith(".csv")

    as_json = await cli(
        data_dir, "rule", "run", "Order line", "--source", str(DEMO_ENVELOPE), "--json"
    )
    data = json.loads(as_json.stdout)
    assert (data["ok"], data["direction"], data["text"]) == (
        True,
        "in",
        "PO-2024-0117;EUR;2683.00\n",
    )
    assert data["file_name"] == name_line.removeprefix("file name: ")


def test_rule_run_with_a_broken_map_exits_1_naming_the_line(data_dir: Path, tmp_path: Path) -> None:
    rule = write_json(tmp_path / "broken.json", form_to_json(out_rule("Broken", BROKEN_AT_LINE_4)))
    source = csv_file(tmp_path)
    args = ("rule", "run", str(rule), "--source", str(source), "--mailbox", "Purchasing")
    result = run_cli(data_dir, *args)
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("docbridge: The conversion map does not compile (line 4)")
    as_json = run_cli(data_dir, *args, "--json")
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert (data["ok"], data["line"]) == (False, 4)
    assert "line 4" in as_json.stderr


def test_rule_run_of_an_unknown_rule_says_how_to_find_one(data_dir: Path, tmp_path: Path) -> None:
    result = run_cli(data_dir, "rule", "run", "Nope", "--source", str(csv_file(tmp_path)))
    assert result.returncode == 1
    assert result.stderr == (
        "docbridge: No conversion rule 'Nope'. Give the rule's uuid or exact name "
        "(see 'docbridge rule list MAILBOX').\n"
    )


def test_source_view_of_a_csv_prints_the_xml_view(data_dir: Path, tmp_path: Path) -> None:
    source = csv_file(tmp_path)
    result = run_cli(data_dir, "source", "view", str(source))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("<?xml")
    assert '<xml><sheet index="0" name="Sheet1"><row index="0"><col index="0">orderNumber' in (
        result.stdout
    )
    assert result.stderr == "orders.csv: CSV, delimiter ';', encoding UTF-8\n"
    as_json = json.loads(run_cli(data_dir, "source", "view", str(source), "--json").stdout)
    assert as_json["details"] == "CSV, delimiter ';', encoding UTF-8"
    assert '<sheet index="0"' in as_json["xml"]
    directory = run_cli(data_dir, "source", "view", str(tmp_path))
    assert directory.returncode == 1
    assert "is a directory" in directory.stderr


# -- the conversion log and reprocess -------------------------------------------------------


async def test_conversions_lists_records_newest_first_and_filters(
    data_dir: Path, service: Service
) -> None:
    rule = await service.create_rule(PURCHASING, out_rule("Orders CSV", CSV_TO_ORDERS_1_0))
    ok = await record(
        service, rule_uuid=rule.uuid, rule_name="Orders CSV", file_name="coutbox/a.csv"
    )
    failed = await record(
        service,
        rule_uuid=rule.uuid,
        rule_name="Orders CSV",
        file_name="coutbox/b.csv",
        status=ConversionStatus.FAILED,
        error="line 4: boom",
    )
    elsewhere = await record(
        service, mailbox_uuid=ACCOUNTS_PAYABLE, direction=Direction.IN, envelope_uuid="e-1"
    )

    listed = await cli(data_dir, "conversions", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert data["total"] == 3
    assert [r["id"] for r in data["items"]] == [elsewhere, failed, ok]
    assert data["items"][1]["status"] == "FAILED" and data["items"][1]["error"] == "line 4: boom"

    async def ids(*args: str) -> list[int]:
        result = await cli(data_dir, "conversions", *args, "--json")
        assert result.returncode == 0, result.stderr
        return [r["id"] for r in json.loads(result.stdout)["items"]]

    assert await ids("--mailbox", "Purchasing") == [failed, ok]
    assert await ids("--rule", "Orders CSV") == [failed, ok]
    assert await ids("--status", "failed") == [failed]
    assert await ids("--mailbox", "Accounts Payable", "--status", "processed") == [elsewhere]
    assert await ids("--no-rule") == [elsewhere]  # the record no rule took
    both = await cli(data_dir, "conversions", "--rule", "Orders CSV", "--no-rule")
    assert both.returncode == 1 and "not both" in both.stderr

    text = await cli(data_dir, "conversions", "--mailbox", "Purchasing")
    lines = text.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[0] == str(failed) and "FAILED" in lines[0]
    assert "coutbox/b.csv" in lines[0] and "line 4: boom" in lines[0]
    assert "Showing 1-2 of 2 conversion records" in text.stderr

    bad = await cli(data_dir, "conversions", "--status", "done")
    assert bad.returncode == 1
    assert bad.stderr == (
        "docbridge: Unknown status 'done'. Use one of: processed, reprocessed, failed.\n"
    )


async def test_reprocess_of_an_unknown_id_says_so_and_queues_nothing(
    data_dir: Path, service: Service
) -> None:
    kept = await record(
        service,
        rule_name="Orders CSV",
        file_name="coutbox/orders.csv",
        status=ConversionStatus.FAILED,
        input_name="orders.csv",
        input=ORDERS_CSV,
        output=b"",
    )
    before = await asyncio.to_thread(store_snapshot, data_dir)
    result = await cli(data_dir, "reprocess", str(kept), "999999")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "docbridge: No conversion record 999999. See 'docbridge conversions' for the ids; "
        "nothing was reprocessed.\n"
    )
    assert await asyncio.to_thread(store_snapshot, data_dir) == before
    not_a_number = await cli(data_dir, "reprocess", "x1")
    assert not_a_number.returncode == 2
    assert "'x1' is not a whole number" in not_a_number.stderr


async def test_reprocess_queues_a_kept_input_and_says_why_another_cannot_be(
    data_dir: Path, service: Service
) -> None:
    kept = await record(
        service,
        rule_name="Orders CSV",
        file_name="coutbox/orders.csv",
        status=ConversionStatus.FAILED,
        input_name="orders.csv",
        input=ORDERS_CSV,
        output=b"",
    )
    lost = await record(service, rule_name="Orders CSV", file_name="coutbox/big.csv")
    # The mailbox's folders exist: its file came from there.
    await asyncio.to_thread(ensure_mailbox_root, data_dir / "mailboxes", PURCHASING)
    result = await cli(data_dir, "reprocess", str(kept), str(lost), "--json")
    assert result.returncode == 1, result.stderr
    assert result.stdout, result.stderr
    data = json.loads(result.stdout)
    assert data["queued"] == [kept]
    assert [s["id"] for s in data["skipped"]] == [lost]
    assert f"docbridge: record {lost} cannot be reprocessed: its input was not kept" in (
        result.stderr
    )
    ready = await service.list_jobs((JobState.READY,))
    assert [j.mailbox_uuid for j in ready if j.kind is JobKind.FILE] == [PURCHASING]
