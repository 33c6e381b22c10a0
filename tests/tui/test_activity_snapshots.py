"""Snapshots of the Activity screen (F6) at 80x24 and 120x40: a parked item, a retrying one,
their attempts and an SFTP ban.

Deterministic by construction: the clock is pinned (DOCBRIDGE_FIXED_NOW, which also drives
"in 40 s" and "10 min left"), the demo data has fixed uuids, the queue and the log are written
directly (no engine timing), cursors do not blink and animations are off.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from core.bootstrap import init_data_dir
from core.service import Service
from tests.tui.conftest import make_app, settle, wait_for_page
from tests.tui.test_activity import troubles
from tui.app import DocbridgeApp
from tui.screens.activity import ActivityScreen

SMALL = (80, 24)
LARGE = (120, 40)
FIXED_NOW = "2025-01-15T09:30:00.000Z"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCBRIDGE_FIXED_NOW", FIXED_NOW)
    monkeypatch.setenv("DOCBRIDGE_NO_LOCAL_CLIPBOARD", "1")
    directory = tmp_path / "home"
    asyncio.run(init_data_dir(directory, with_demo=True, actor="snapshot"))

    async def setup() -> None:
        service = await Service.open(directory, actor="snapshot")
        try:
            await troubles(service)
        finally:
            await service.close()

    asyncio.run(setup())
    return directory


def app_for(home: Path) -> DocbridgeApp:
    app = make_app(home)
    app.animation_level = "none"
    return app


def activity_after(*keys: str) -> Any:
    async def run(pilot: Pilot[None]) -> None:
        await wait_for_page(pilot)
        await pilot.press("f6")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ActivityScreen)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_activity_items(snap_compare: Any, home: Path, size: tuple[int, int]) -> None:
    """Items: the parked envelope selected, its full error and ids in the detail pane."""
    assert snap_compare(app_for(home), terminal_size=size, run_before=activity_after())


def test_activity_attempts(snap_compare: Any, home: Path) -> None:
    """Attempts at 80x24: each failure with its number, the last one "retrying 1/8 in 40 s"."""
    assert snap_compare(app_for(home), terminal_size=SMALL, run_before=activity_after("2"))


def test_activity_bans(snap_compare: Any, home: Path) -> None:
    """Bans at 80x24 while items are parked: reachable, with the time left from the clock."""
    assert snap_compare(app_for(home), terminal_size=SMALL, run_before=activity_after("4"))
