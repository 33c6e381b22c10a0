"""Copying reaches the terminal as OSC 52: the only way to an SSH user's own clipboard."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from textual.drivers.headless_driver import HeadlessDriver

from core.service import Service
from tests.tui.conftest import make_app, settle, wait_for_page

OSC52 = re.compile(r"\x1b\]52;c;([A-Za-z0-9+/=]*)\x07")


async def test_copying_the_password_writes_osc52_with_its_base64(
    data_dir: Path, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[str] = []
    monkeypatch.setattr(HeadlessDriver, "write", lambda self, data: written.append(data))
    mailbox = (await service.list_mailboxes())[0]
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        password = screen.revealed_password
        assert password is not None
        written.clear()
        await pilot.press("w")
        await settle(pilot)
    sequences = [m.group(1) for data in written for m in OSC52.finditer(data)]
    assert sequences == [base64.b64encode(password.encode()).decode()]
    assert await service.check_password(mailbox.uuid, password)
    notes = " ".join(n.message for n in app._notifications)
    assert password not in notes  # the toast names what was copied, never the value
