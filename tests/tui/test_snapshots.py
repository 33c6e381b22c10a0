"""Snapshots of each screen and key state, at 80x24 and 120x40.

Deterministic by construction: the clock is pinned (DOCBRIDGE_FIXED_NOW), the demo data has fixed
uuids, the theme is fixed, cursors do not blink and animations are off. The two random things a
page shows are replaced in the test only: the SFTP password by a fixed, obviously fake value, and
the generated AS2 identity by the public pyas2lib test certificate from shared/interop (no private
key is written or committed). The partner certificate is mendelson's public test certificate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from core.as2.certificates import GeneratedIdentity, inspect_certificate
from core.bootstrap import init_data_dir
from core.errors import StoreFull
from core.models import (
    Direction,
    EngineStatus,
    IntegrationForm,
    MatchTarget,
    RuleForm,
    TransferProtocol,
)
from core.service import Service
from tests.rules.samples import IDENTITY_MAP
from tests.tui.conftest import MENDELSON, make_app, settle, wait_for_page
from tui.app import DocbridgeApp
from tui.errors import report_error
from tui.modals.password import PasswordModal

FAKE_PASSWORD = "SNAPSHOT-fake-password-0"
SMALL = (80, 24)
LARGE = (120, 40)


def fake_identity(common_name: str, key_path: Path, *args: Any, **kwargs: Any) -> GeneratedIdentity:
    pem = (MENDELSON / "cert_test_public.pem").read_text(encoding="ascii")
    return GeneratedIdentity(certificate_pem=pem, key_path=key_path, info=inspect_certificate(pem))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCBRIDGE_FIXED_NOW", "2025-01-15T09:30:00.000Z")
    monkeypatch.setenv("DOCBRIDGE_NO_LOCAL_CLIPBOARD", "1")
    monkeypatch.setattr("core.service.generate_password", lambda: FAKE_PASSWORD)
    monkeypatch.setattr("core.as2_desk.generate_identity", fake_identity)
    directory = tmp_path / "home"
    asyncio.run(init_data_dir(directory, with_demo=True, actor="snapshot"))
    return directory


def prepare(home: Path, setup: Callable[[Service], Any]) -> None:
    async def run() -> None:
        service = await Service.open(home, actor="snapshot")
        try:
            await setup(service)
        finally:
            await service.close()

    asyncio.run(run())


async def as2_saved(service: Service) -> None:
    mailbox = (await service.list_mailboxes())[0]
    state = await service.page_state(mailbox.uuid)
    form = IntegrationForm(
        protocol=TransferProtocol.AS2,
        notify_email="ops@example.com",
        as2=state.integration.form.as2.__class__(
            self_id=state.integration.form.as2.self_id,
            partner_url="https://as2.mendelson-e-c.com:8444/as2/HttpReceiver",
            partner_certificate=(MENDELSON / "cert_mecas2_public.pem").read_text(),
            partner_id="mendelsontestAS2",
            partner_email="as2@example.com",
        ),
    )
    await service.save_integration(mailbox.uuid, form)


async def three_rules(service: Service) -> None:
    mailbox = (await service.list_mailboxes())[0]
    template = (await service.list_templates(mailbox.account_uuid))[0]
    await service.create_rule(
        mailbox.uuid,
        RuleForm(
            "Invoices to ERP [csv]",
            Direction.IN,
            template.uuid,
            enabled=True,
            naming_pattern="{envelopeUuid}_{date yyyy-MM-dd}.csv",
            conversion_map=IDENTITY_MAP,
        ),
    )
    await service.create_rule(
        mailbox.uuid,
        RuleForm(
            "Orders from ERP",
            Direction.OUT,
            template.uuid,
            template_version=template.versions[0],
            match_pattern=r"^orders_.*\.csv$",
            match_target=MatchTarget.NAME,
            conversion_map=IDENTITY_MAP,
        ),
    )
    await service.create_rule(
        mailbox.uuid,
        RuleForm(
            "Archive copy",
            Direction.IN,
            template.uuid,
            naming_pattern="{envelopeUuid}.xml",
            conversion_map=IDENTITY_MAP,
        ),
    )


def app_for(home: Path) -> DocbridgeApp:
    app = make_app(home)
    app.animation_level = "none"
    return app


async def loaded(pilot: Pilot[None]) -> None:
    await wait_for_page(pilot)


def after(*keys: str) -> Callable[[Pilot[None]], Any]:
    async def run(pilot: Pilot[None]) -> None:
        await wait_for_page(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_page_sftp(snap_compare: Any, home: Path, size: tuple[int, int]) -> None:
    """The page as a new user first sees it: SFTP, nothing saved yet, no rules."""
    assert snap_compare(app_for(home), terminal_size=size, run_before=loaded)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_page_as2(snap_compare: Any, home: Path, size: tuple[int, int]) -> None:
    """AS2 saved with a partner: Self URL, self certificate, recipient fields (block 3)."""
    prepare(home, as2_saved)
    assert snap_compare(app_for(home), terminal_size=size, run_before=after("3"))


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_password_revealed(snap_compare: Any, home: Path, size: tuple[int, int]) -> None:
    """First Save generates the SFTP password and shows it once, with its copy key."""
    assert snap_compare(app_for(home), terminal_size=size, run_before=after("ctrl+s"))


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_validation_errors(snap_compare: Any, home: Path, size: tuple[int, int]) -> None:
    """Default rule 2 without a notify address: error next to the field and a summary."""
    assert snap_compare(
        app_for(home), terminal_size=size, run_before=after("4", "down", "enter", "ctrl+s")
    )


def test_rules_empty(snap_compare: Any, home: Path) -> None:
    """Block (5) without rules says how to add the first one."""
    assert snap_compare(app_for(home), terminal_size=SMALL, run_before=after("5"))


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_rules_filled(snap_compare: Any, home: Path, size: tuple[int, int]) -> None:
    """Three rules: on/off as words, IN/OUT, template, pattern, counters."""
    prepare(home, three_rules)
    assert snap_compare(app_for(home), terminal_size=size, run_before=after("5"))


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_rule_form(snap_compare: Any, home: Path, size: tuple[int, int]) -> None:
    """The rule form of an existing OUT rule."""
    prepare(home, three_rules)
    assert snap_compare(app_for(home), terminal_size=size, run_before=after("5", "down", "enter"))


def test_confirm_modal(snap_compare: Any, home: Path) -> None:
    """Turning the integration off asks first (y / n / escape)."""

    async def enable(service: Service) -> None:
        await service.set_enabled((await service.list_mailboxes())[0].uuid, True)

    prepare(home, enable)
    assert snap_compare(app_for(home), terminal_size=SMALL, run_before=after("f2"))


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_help(snap_compare: Any, home: Path, size: tuple[int, int]) -> None:
    """F1 lists every key by where it works, with its binding id."""
    assert snap_compare(app_for(home), terminal_size=size, run_before=after("f1"))


def test_header_with_the_engine_running(snap_compare: Any, home: Path) -> None:
    """The header names the engine's pid (80 columns: the unsaved marker still shows)."""

    async def run(pilot: Pilot[None]) -> None:
        page = await wait_for_page(pilot)
        pilot.app.engine_status = EngineStatus(running=True, pid=4242, host="gateway")  # type: ignore[attr-defined]
        page.query_one("#notify_email").value = "ops@example.com"  # type: ignore[attr-defined]
        await settle(pilot)

    assert snap_compare(app_for(home), terminal_size=SMALL, run_before=run)


def test_error_modal(snap_compare: Any, home: Path) -> None:
    """A store error: what happened and what to do, never a traceback."""

    async def run(pilot: Pilot[None]) -> None:
        await wait_for_page(pilot)
        report_error(pilot.app, StoreFull(Path("/srv/docbridge/docbridge.sqlite3")))
        await settle(pilot)

    assert snap_compare(app_for(home), terminal_size=SMALL, run_before=run)


def test_unexpected_error_modal(snap_compare: Any, home: Path) -> None:
    """A defect: the error modal with its details to copy into a report."""

    async def run(pilot: Pilot[None]) -> None:
        await wait_for_page(pilot)
        try:
            raise RuntimeError("the widget tree lost a block")
        except RuntimeError as error:
            error.__traceback__ = None  # the traceback's paths differ between machines
            report_error(pilot.app, error)
        await settle(pilot)

    assert snap_compare(app_for(home), terminal_size=SMALL, run_before=run)


def test_unsaved_changes_modal(snap_compare: Any, home: Path) -> None:
    """Quitting with unsaved changes asks save / discard / cancel, with its own keys."""

    async def run(pilot: Pilot[None]) -> None:
        page = await wait_for_page(pilot)
        page.query_one("#notify_email").value = "ops@example.com"  # type: ignore[attr-defined]
        await settle(pilot)
        await pilot.press("ctrl+q")
        await settle(pilot)

    assert snap_compare(app_for(home), terminal_size=SMALL, run_before=run)


def test_new_password_dialog(snap_compare: Any, home: Path) -> None:
    """A password generated on the way out (mailbox switch, quit) is shown in a dialog."""

    async def run(pilot: Pilot[None]) -> None:
        await wait_for_page(pilot)
        pilot.app.push_screen(PasswordModal("Purchasing", FAKE_PASSWORD))
        await settle(pilot)

    assert snap_compare(app_for(home), terminal_size=SMALL, run_before=run)


def test_import_certificate_modal(snap_compare: Any, home: Path) -> None:
    """The recipient certificate from a file or pasted PEM (AS2, ctrl+o)."""
    prepare(home, as2_saved)
    assert snap_compare(app_for(home), terminal_size=SMALL, run_before=after("3", "ctrl+o"))


def test_export_certificate_modal(snap_compare: Any, home: Path) -> None:
    """Our certificate to a PEM file (AS2, ctrl+g); never overwrites."""
    prepare(home, as2_saved)
    assert snap_compare(app_for(home), terminal_size=SMALL, run_before=after("3", "ctrl+g"))
