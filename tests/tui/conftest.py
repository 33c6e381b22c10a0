"""Pilot helpers: the app against a real store in a temporary data directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from tui.app import DocbridgeApp
from tui.screens.integrations import IntegrationsScreen

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
MENDELSON = SHARED / "interop" / "mendelson"


@pytest.fixture(autouse=True)
def _no_local_clipboard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must never touch the machine's clipboard; OSC 52 is what they check."""
    monkeypatch.setenv("DOCBRIDGE_NO_LOCAL_CLIPBOARD", "1")


def make_app(data_dir: Path) -> DocbridgeApp:
    return DocbridgeApp(data_dir, actor="test@tui", cursor_blink=False, poll_engine=False)


async def settle(pilot: Pilot[None]) -> None:
    """Let messages, workers and screen changes finish."""
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def wait_for_page(pilot: Pilot[None]) -> IntegrationsScreen:
    for _ in range(200):
        await settle(pilot)
        screen = pilot.app.screen
        if isinstance(screen, IntegrationsScreen) and screen.loaded:
            return screen
    raise AssertionError("the Integrations page did not load")
