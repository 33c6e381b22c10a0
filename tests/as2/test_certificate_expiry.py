"""Certificate expiry: days left, warnings at 30/14/7/1 days in `docbridge status`, and one mail
per certificate and threshold to the notify address (a real SMTP server on loopback)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.as2.certificates import generate_identity
from core.as2.expiry import expiry
from core.config import SmtpConfig, load_config
from core.engine.engine import Engine, EngineLoop
from core.service import Service
from tests.as2.conftest import partner_form
from tests.as2.partner import PyAs2Partner
from tests.conftest import run_cli
from tests.engine.conftest import FAST, SmtpServer
from tests.engine.test_default_rules import eventually

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_days_left_round_up_and_thresholds_are_30_14_7_1() -> None:
    def at(**delta: float) -> tuple[int, int | None, bool]:
        found = expiry(NOW + timedelta(**delta), NOW)
        return found.days_left, found.threshold, found.expired

    assert at(days=400) == (400, None, False)
    assert at(days=31) == (31, None, False)
    assert at(days=30) == (30, 30, False)
    assert at(days=20) == (20, 30, False)
    assert at(days=14) == (14, 14, False)
    assert at(days=8) == (8, 14, False)
    assert at(days=7) == (7, 7, False)
    assert at(hours=2) == (1, 1, False)  # valid two more hours: one day left, not zero
    assert at(hours=-1) == (0, 1, True)


async def expiring_partner(service: Service, tmp_path: Path, days: int) -> str:
    """Logistics on AS2 with a partner whose certificate is valid ``days`` more days."""
    partner = await asyncio.to_thread(PyAs2Partner, tmp_path / "partner")
    short = await asyncio.to_thread(
        generate_identity, "short-lived", tmp_path / "keys" / "short.pem", days
    )
    form = partner_form(partner, partner_certificate=short.certificate_pem)
    form = replace(form, notify_email="ops@example.com")
    mailbox = (await service.resolve_mailbox("Logistics")).uuid
    await service.save_integration(mailbox, form)
    return mailbox


async def test_status_lists_a_partner_certificate_inside_the_warning_window(
    service: Service, data_dir: Path, tmp_path: Path
) -> None:
    await expiring_partner(service, tmp_path, 10)
    shown = await asyncio.to_thread(run_cli, data_dir, "status")
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.splitlines() if x.startswith("certificate:"))
    assert "Logistics partner certificate valid until" in line and line.endswith("10 days left")
    found = json.loads((await asyncio.to_thread(run_cli, data_dir, "status", "--json")).stdout)
    [warning] = found["certificate_warnings"]
    assert (warning["which"], warning["days_left"]) == ("partner", 10)
    # Our own certificate (ten years) is not in the window.
    assert not any("self certificate" in x for x in shown.stdout.splitlines())


async def test_one_mail_per_certificate_and_threshold_reaches_the_notify_address(
    service: Service, data_dir: Path, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    mailbox = await expiring_partner(service, tmp_path, 10)
    await service.set_enabled(mailbox, True)
    config = await asyncio.to_thread(load_config, data_dir)
    config = replace(config, smtp=SmtpConfig(host="127.0.0.1", port=smtp_server.port))
    # Checked at every heartbeat here: a second check must not mail again.
    engine = Engine(config, replace(FAST, certificate_check_s=0.0))
    await engine.start()
    try:

        async def mailed() -> bool:
            return len(smtp_server.sink.messages) >= 1

        await eventually(mailed)
        # More checks (one per heartbeat here) and mail passes after them: still one mail.
        await engine.wait_for_cycles(EngineLoop.HEARTBEAT, 3)
        await engine.wait_for_cycles(EngineLoop.MAIL, 2)
    finally:
        await engine.stop()
    [mail] = smtp_server.sink.messages
    assert mail["To"] == "ops@example.com"
    assert "10 days left" in str(mail["Subject"])
    body = mail.get_payload()
    assert "partner" in str(body) and "valid until" in str(body)


async def test_a_certificate_outside_the_window_sends_no_mail(
    service: Service, data_dir: Path, tmp_path: Path
) -> None:
    await expiring_partner(service, tmp_path, 45)
    assert await service.as2.certificate_warnings() == []
