"""The engine's life cycle: it stops when asked, whatever it was doing."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core.config import load_config
from core.engine import mail_handler
from core.engine.engine import Engine, EngineLoop
from core.models import DefaultRule, IntegrationForm
from core.service import Service
from tests.engine.conftest import FAST, enable, use_free_as2_port


async def test_stop_right_after_a_wake_returns(data_dir: Path) -> None:
    """Work arriving as the engine stops (an upload as the user quits the TUI). Before: on
    Python 3.11 ``asyncio.wait_for`` swallowed the cancellation of an idle loop whose event
    was set at that moment, and ``stop()`` waited for that loop forever."""
    await asyncio.to_thread(use_free_as2_port, data_dir)  # every loop runs, the AS2 ones too
    config = await asyncio.to_thread(load_config, data_dir)
    for _ in range(5):
        engine = Engine(config, replace(FAST, idle_poll_s=5, scan_interval_s=5, run_as2=True))
        await engine.start()
        # Idle: every loop has finished its first pass and waits for its wake-up (long polls).
        for loop in EngineLoop:
            if engine.cycles(loop) < 1:
                await engine.wait_for_cycles(loop, 1)
        engine.wake()
        async with asyncio.timeout(10):
            await engine.stop()


async def test_stop_returns_when_a_library_swallows_the_cancellation(
    service: Service, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiosmtplib waits with ``asyncio.wait_for``, which on Python 3.11 may swallow the
    cancellation ``stop()`` sends (seen as a teardown hanging after a batch of mails). Before:
    the mail loop carried on as if nothing happened, and ``stop()`` waited for it forever. Now
    every loop also ends at its next turn once the engine stops."""
    sending = asyncio.Event()

    async def swallowing(config: Any, batch: Any, record: Any) -> None:
        sending.set()
        with contextlib.suppress(asyncio.CancelledError):  # as wait_for on 3.11 may do
            await asyncio.Event().wait()  # a send that never ends on its own

    monkeypatch.setattr(mail_handler, "deliver_batch", swallowing)
    form = IntegrationForm(default_rule=DefaultRule.NOTIFY, notify_email="ops@example.com")
    await enable(service, "Accounts Payable", form)
    engine.wake()
    async with asyncio.timeout(10):
        await sending.wait()
    async with asyncio.timeout(10):
        await engine.stop()
