"""Renewing our AS2 certificate from the page's command palette: asked first, then the page
shows the new certificate (the old key still decrypts: tests/as2/test_rollover.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.service import Service
from tests.as2.conftest import partner_form
from tests.as2.partner import PyAs2Partner
from tests.tui.conftest import make_app, settle, until, wait_for_page
from tests.tui.test_help_palette import run_command
from tui.modals.confirm import ConfirmModal


async def test_renew_self_certificate_asks_then_shows_the_new_one(
    data_dir: Path, service: Service, tmp_path: Path
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    partner = await asyncio.to_thread(PyAs2Partner, tmp_path / "partner")
    saved = await service.save_integration(mailbox.uuid, partner_form(partner))
    assert saved.as2_identity is not None
    old = saved.as2_identity.fingerprint_sha256
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        await run_command(pilot, "Renew self certificate")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("escape")  # not now: nothing changes
        await settle(pilot)
        unchanged = (await service.page_state(mailbox.uuid)).as2_identity
        assert unchanged is not None and unchanged.fingerprint_sha256 == old

        await run_command(pilot, "Renew self certificate")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await settle(pilot)
        new = (await service.page_state(mailbox.uuid)).as2_identity
        assert new is not None and new.fingerprint_sha256 != old
        head = new.fingerprint_sha256.split(":")[0]

        def shown() -> bool:
            text = str(screen.query_one("#as2-self-cert").value_text)
            return head in text and old.split(":")[0] + ":" + old.split(":")[1] not in text

        await until(pilot, shown)
