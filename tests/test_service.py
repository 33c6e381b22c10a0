"""The service API against a real store in a temporary data directory."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import FieldErrors, NotFound
from core.models import (
    DefaultRule,
    Direction,
    IntegrationForm,
    MatchTarget,
    RuleForm,
    TransferProtocol,
)
from core.service import Service
from tests.rules.samples import IDENTITY_MAP


async def first_mailbox(service: Service) -> str:
    return (await service.list_mailboxes())[0].uuid


async def test_page_opens_with_defaults_and_empty_notify_email(service: Service) -> None:
    state = await service.page_state()
    assert state.mailbox.name == "Purchasing"
    assert [m.name for m in state.mailboxes] == ["Purchasing", "Accounts Payable", "Logistics"]
    form = state.integration.form
    assert (form.protocol, form.default_rule, form.notify_email) == (
        TransferProtocol.SFTP,
        DefaultRule.COPY,
        "",
    )
    assert state.integration.enabled is False
    assert state.sftp.login == state.mailbox.uuid
    assert (state.sftp.host, state.sftp.port) == ("127.0.0.1", 2222)
    assert state.sftp.password_set is False
    assert state.integration.form.as2.self_id == "Purchasing"  # pre-filled from the name
    assert state.rules == ()


async def test_invalid_save_reports_every_field_and_stores_nothing(
    service: Service, data_dir: Path
) -> None:
    mailbox = await first_mailbox(service)
    form = IntegrationForm(
        protocol=TransferProtocol.AS2,
        notify_email="nope",
        default_rule=DefaultRule.REJECT,
        reject_reason="no",
    )
    with pytest.raises(FieldErrors) as raised:
        await service.save_integration(mailbox, form)
    assert set(raised.value.errors) == {
        "notify_email",
        "reject_reason",
        "as2.partner_url",
        "as2.self_id",
        "as2.partner_id",
        "as2.partner_certificate",
    }
    integration = await service.get_integration(mailbox)
    assert integration.saved is False and integration.password_set is False
    assert await service.audit_log(mailbox) == []


@pytest.mark.sqlite_only("reads the SQLite file's bytes")
async def test_first_save_generates_password_once_and_stores_only_its_hash(
    service: Service, data_dir: Path
) -> None:
    mailbox = await first_mailbox(service)
    first = await service.save_integration(mailbox, IntegrationForm())
    assert first.new_password is not None and len(first.new_password) >= 22
    assert await service.check_password(mailbox, first.new_password)
    assert not await service.check_password(mailbox, first.new_password + "x")
    second = await service.save_integration(mailbox, IntegrationForm(notify_email="a@b.example"))
    assert second.new_password is None  # shown once: later saves keep it
    assert await service.check_password(mailbox, first.new_password)
    database = (data_dir / "docbridge.sqlite3").read_bytes()
    assert first.new_password.encode() not in database


async def test_reset_password_makes_the_old_one_stop_working(service: Service) -> None:
    mailbox = await first_mailbox(service)
    old = (await service.save_integration(mailbox, IntegrationForm())).new_password
    assert old is not None
    new = await service.reset_password(mailbox)
    assert new != old
    assert await service.check_password(mailbox, new)
    assert not await service.check_password(mailbox, old)
    actions = [entry.action for entry in await service.audit_log(mailbox)]
    assert actions[0] == "password.reset"
    assert all(new not in str(entry.details) for entry in await service.audit_log(mailbox))


async def test_toggle_acts_at_once_and_is_audited(service: Service) -> None:
    mailbox = await first_mailbox(service)
    assert (await service.set_enabled(mailbox, True)).enabled is True
    assert (await service.set_enabled(mailbox, True)).enabled is True  # no duplicate entry
    assert (await service.set_enabled(mailbox, False)).enabled is False
    actions = [entry.action for entry in await service.audit_log(mailbox)]
    assert actions == ["integration.disabled", "integration.enabled"]
    assert (await service.get_integration(mailbox)).saved is False  # form untouched


@pytest.mark.sqlite_only("the key file's mode; on a shared store the key is sealed in the store")
async def test_as2_identity_key_is_private_and_certificate_stable(
    service: Service, data_dir: Path
) -> None:
    mailbox = await first_mailbox(service)
    identity = await service.ensure_as2_identity(mailbox)
    key = Path(identity.key_path)
    assert key.is_relative_to(data_dir)
    key_mode, dir_mode = (stat.S_IMODE(os.stat(p).st_mode) for p in (key, key.parent))
    assert (key_mode, dir_mode) == (0o600, 0o700)
    assert "BEGIN CERTIFICATE" in identity.certificate_pem
    again = await service.ensure_as2_identity(mailbox)
    assert again.fingerprint_sha256 == identity.fingerprint_sha256
    state = await service.page_state(mailbox)
    assert state.as2_self_url == f"http://127.0.0.1:4080/as2/{mailbox}"


async def test_as2_save_with_valid_partner(service: Service) -> None:
    mailbox = await first_mailbox(service)
    other = (await service.list_mailboxes())[1].uuid
    partner_pem = (await service.ensure_as2_identity(other)).certificate_pem
    form = IntegrationForm(protocol=TransferProtocol.AS2)
    form = replace(
        form,
        as2=replace(
            form.as2,
            self_id="NORDWIND",
            partner_url="https://as2.partner.example/receive",
            partner_certificate=partner_pem,
            partner_id="PARTNER-1",
        ),
    )
    result = await service.save_integration(mailbox, form)
    assert result.new_password is None  # no SFTP password for an AS2 integration
    state = await service.page_state(mailbox)
    assert state.integration.form.as2.partner_id == "PARTNER-1"
    assert state.as2_identity is not None


def rule_form(template_uuid: str, name: str = "Orders to CSV", **changes: object) -> RuleForm:
    form = RuleForm(
        name=name,
        direction=Direction.IN,
        template_uuid=template_uuid,
        naming_pattern='{date yyyy-MM-dd}_{"order":"orderNumber"}.csv',
        conversion_map=IDENTITY_MAP,
    )
    return replace(form, **changes)  # type: ignore[arg-type]


async def test_rules_create_edit_enable_clone_move_delete(service: Service) -> None:
    state = await service.page_state()
    mailbox = state.mailbox.uuid
    template = state.templates[0]
    first = await service.create_rule(mailbox, rule_form(template.uuid, "first"))
    second = await service.create_rule(
        mailbox,
        rule_form(
            template.uuid,
            "second",
            direction=Direction.OUT,
            match_pattern=r"^po_\d+\.csv$",
            match_target=MatchTarget.NAME,
        ),
    )
    assert [r.position for r in (first, second)] == [0, 1]
    assert first.enabled is False

    enabled = await service.set_rule_enabled(first.uuid, True)
    assert enabled.enabled is True
    edited = await service.update_rule(second.uuid, replace(second.form, name="second, edited"))
    assert edited.name == "second, edited"

    copy = await service.clone_rule(first.uuid)
    assert (copy.name, copy.enabled) == ("first (copy)", False)
    assert len(await service.list_rules(mailbox)) == 2  # a clone is unsaved until created
    third = await service.create_rule(mailbox, copy)
    assert (await service.clone_rule(first.uuid)).name == "first (copy 2)"

    await service.move_rule(third.uuid, -1)
    assert [r.name for r in await service.list_rules(mailbox)] == [
        "first",
        "first (copy)",
        "second, edited",
    ]
    await service.move_rule(first.uuid, -1)  # already on top: nothing changes
    await service.delete_rule(first.uuid)
    remaining = await service.list_rules(mailbox)
    assert [(r.name, r.position) for r in remaining] == [("first (copy)", 0), ("second, edited", 1)]
    with pytest.raises(NotFound):
        await service.get_rule(first.uuid)


async def test_rule_validation_names_each_bad_field(service: Service) -> None:
    state = await service.page_state()
    mailbox = state.mailbox.uuid
    template = state.templates[0]
    await service.create_rule(mailbox, rule_form(template.uuid, "taken"))
    bad = rule_form(
        template.uuid,
        "taken",
        template_version=99,
        naming_pattern="out/{envelopeUuid}.xml",
        conversion_map="<xsl:stylesheet",
    )
    with pytest.raises(FieldErrors) as raised:
        await service.create_rule(mailbox, bad)
    errors = raised.value.errors
    assert set(errors) == {"name", "template_version", "naming_pattern", "conversion_map"}
    assert "'/' at position 4" in errors["naming_pattern"]
    out_rule = rule_form(template.uuid, "out", direction=Direction.OUT, match_pattern="(")
    with pytest.raises(FieldErrors) as raised:
        await service.create_rule(mailbox, out_rule)
    assert "regular expression" in raised.value.errors["match_pattern"]
    unknown = rule_form("00000000-0000-4000-8000-000000000000", "x")
    with pytest.raises(FieldErrors) as raised:
        await service.create_rule(mailbox, unknown)
    assert set(raised.value.errors) == {"template_uuid"}


async def test_received_demo_envelopes_wait_in_arrival_order(service: Service) -> None:
    envelopes = await service.list_envelopes()
    assert len(envelopes) == 10
    assert [e.sequence for e in envelopes] == sorted(e.sequence for e in envelopes)
    assert {e.status.value for e in envelopes} == {"WAITING"}
    mailboxes = {m.uuid for m in await service.list_mailboxes()}
    assert {e.mailbox_uuid for e in envelopes} == mailboxes
    assert all(e.sender_mailbox and e.sender_mailbox not in mailboxes for e in envelopes)


@pytest.mark.sqlite_only("SQLite's header and journal mode")
async def test_schema_is_versioned_and_in_wal_mode(service: Service, data_dir: Path) -> None:
    from core.storage.schema import SCHEMA_VERSION

    conn = sqlite3.connect(data_dir / "docbridge.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


@pytest.mark.sqlite_only(
    "SQLite's user_version; tests/storage/test_postgres_store.py has PostgreSQL's"
)
async def test_a_database_from_a_newer_docbridge_is_refused(data_dir: Path) -> None:
    from core.errors import DocbridgeError

    conn = sqlite3.connect(data_dir / "docbridge.sqlite3")
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(DocbridgeError, match="newer than this docbridge"):
        await Service.open(data_dir, actor="test")


def demo_text() -> str:
    demo = Path(__file__).resolve().parents[1] / "data/demo/envelopes/01-purchase-order-acme.xml"
    return demo.read_text(encoding="utf-8")


async def test_a_utf16_envelope_is_kept_as_valid_utf8_xml(service: Service) -> None:
    from core.envelope_xml import parse_envelope_xml

    text = demo_text().replace("0238cdda", "0238cddf", 1)
    text = text.replace('encoding="UTF-8"', 'encoding="UTF-16"').replace(
        "encoding='UTF-8'", "encoding='UTF-16'"
    )
    mailbox = (await service.resolve_mailbox("Purchasing")).uuid
    envelope = await service.receive_envelope(mailbox, text.encode("utf-16"))

    def stored(conn: sqlite3.Connection) -> str:
        row = conn.execute("SELECT xml FROM envelopes WHERE uuid = ?", (envelope.uuid,)).fetchone()
        return str(row[0])

    xml = await service.db.call(stored)
    parsed = await asyncio.to_thread(parse_envelope_xml, xml.encode("utf-8"))
    assert parsed.subject == envelope.subject


async def test_first_save_audits_only_what_the_user_changed(service: Service) -> None:
    """The Self ID is pre-filled from the mailbox name; keeping it is no change of the user's."""
    mailbox = (await service.list_mailboxes())[0]
    shown = (await service.page_state(mailbox.uuid)).integration.form
    await service.save_integration(mailbox.uuid, replace(shown, notify_email="ops@example.com"))
    saved = [e for e in await service.audit_log(mailbox.uuid) if e.action == "integration.saved"]
    assert saved[-1].details["changed"] == ["notify_email"]
    stored = await service.get_integration(mailbox.uuid)
    assert stored.form.as2.self_id == shown.as2.self_id  # stored all the same
