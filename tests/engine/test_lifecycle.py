"""The engine's life cycle: it stops when asked, whatever it was doing."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from core.config import load_config
from core.engine.engine import Engine
from tests.engine.conftest import FAST


async def test_stop_right_after_a_wake_returns(data_dir: Path) -> None:
    """Work arriving as the engine stops (an upload as the user quits the TUI). Before: on
    Python 3.11 ``asyncio.wait_for`` swallowed the cancellation of an idle loop whose event
    was set at that moment, and ``stop()`` waited for that loop forever."""
    config = await asyncio.to_thread(load_config, data_dir)
    for _ in range(5):
        engine = Engine(config, replace(FAST, idle_poll_s=5, scan_interval_s=5))
        await engine.start()
        # Idle: every loop waits for its wake-up (long polls, so they are surely waiting).
        await asyncio.sleep(0.3)
        engine.wake()
        async with asyncio.timeout(10):
            await engine.stop()
