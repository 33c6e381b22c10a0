"""Pilot helpers: the app against a real store in a temporary data directory."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual import events
from textual.keys import _character_to_key
from textual.pilot import Pilot

from tui.app import DocbridgeApp
from tui.screens.integrations import IntegrationsScreen

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
MENDELSON = SHARED / "interop" / "mendelson"


@pytest.fixture(autouse=True)
def _no_local_clipboard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must never touch the machine's clipboard; OSC 52 is what they check."""
    monkeypatch.setenv("DOCBRIDGE_NO_LOCAL_CLIPBOARD", "1")


@pytest.fixture(autouse=True)
def _no_log_file_left_open() -> Iterator[None]:
    """An app detaches its log file when it exits: a later app (the next test) must never log
    into this one's data directory."""
    yield
    assert logging.getLogger("docbridge.tui").handlers == []


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


async def until(pilot: Pilot[None], check: Callable[[], bool], within_s: float = 10) -> None:
    """Wait for a condition (never for a fixed time)."""
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.02)


def screen_lines(pilot: Pilot[None]) -> list[str]:
    """What the terminal shows now, line by line."""
    return [strip.text for strip in pilot.app.screen._compositor.render_strips()]


async def burst(pilot: Pilot[None], *keys: str) -> None:
    """Keys as they arrive over SSH when typed fast: all queued at once, before the app has
    handled the first (``pilot.press`` waits for the app to idle between keys; a terminal
    does not)."""
    driver = pilot.app._driver
    assert driver is not None
    for key in keys:
        char = key if len(key) == 1 else None
        name = _character_to_key(key) if len(key) == 1 and not key.isalnum() else key
        event = events.Key(name, char)
        event.set_sender(pilot.app)
        driver.send_message(event)
    await settle(pilot)
