"""States a person reads, derived in the core: the CLI says what the Activity screen says."""

from __future__ import annotations

import json
from pathlib import Path

from core.activity import duration
from core.service import Service
from tests.conftest import run_cli
from tests.tui.test_activity import PARKED_ENVELOPE, RETRYING_ENVELOPE, troubles


def test_durations_read_naturally_and_never_round_down_to_zero() -> None:
    assert [duration(s) for s in (0, 0.2, 40, 60, 280, 600, 3600, 3 * 3600 + 300)] == [
        "0 s",
        "1 s",
        "40 s",
        "1 min",
        "4 min 40 s",
        "10 min",
        "1 h",
        "3 h 5 min",
    ]


async def test_docbridge_activity_shows_retrying_and_parked_not_ready(
    data_dir: Path, service: Service
) -> None:
    await troubles(service)
    shown = run_cli(data_dir, "activity")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any("retrying 1/8 in" in line and RETRYING_ENVELOPE in line for line in lines)
    assert any("parked after 8/8" in line and PARKED_ENVELOPE in line for line in lines)
    assert any("failed 1/8, retried" in line for line in lines)
    assert not any(" ready " in line for line in lines)
    as_json = json.loads(run_cli(data_dir, "activity", "--json").stdout)
    assert {a["outcome"] for a in as_json} == {"retrying", "parked", "failed"}
