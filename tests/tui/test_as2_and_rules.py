"""AS2 connection details and the conversion rules block, from the keyboard."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Checkbox, Input, Select, TextArea

from core.models import Direction, MatchTarget, RuleForm, TransferProtocol
from core.service import Service
from tests.rules.samples import CSV_TO_ORDERS_1_0, IDENTITY_MAP, ORDERS_CSV, PURCHASE_ORDER
from tests.tui.conftest import MENDELSON, make_app, settle, until, wait_for_page
from tests.tui.test_rule_run import run
from tui.modals.certificate import ExportCertificateModal, ImportCertificateModal
from tui.modals.confirm import ConfirmModal
from tui.screens.integrations import IntegrationsScreen
from tui.screens.rule_form import RuleFormScreen
from tui.widgets.fields import FieldError
from tui.widgets.rule_table import RuleTable


async def test_as2_fields_certificates_and_save(
    data_dir: Path, service: Service, tmp_path: Path
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await wait_for_page(pilot)
        screen.query_one("#protocol", Select).value = TransferProtocol.AS2.value
        await settle(pilot)
        assert screen.query_one("#as2").display and not screen.query_one("#sftp").display
        # Choosing AS2 generates nothing yet: the key pair comes with Save.
        assert "generated when you Save" in str(screen.query_one("#as2-self-cert").value_text)
        assert (await service.page_state(mailbox.uuid)).as2_identity is None

        await pilot.press("3", "ctrl+l")
        await settle(pilot)
        assert app.clipboard == screen.state.as2_self_url  # type: ignore[union-attr]

        await pilot.press("ctrl+s")  # recipient fields are empty: errors, nothing saved
        await settle(pilot)
        for key in ("as2.partner_url", "as2.partner_certificate", "as2.partner_id"):
            assert screen.query_one(f"#err-{key.replace('.', '-')}", FieldError).message
        assert not (await service.get_integration(mailbox.uuid)).saved

        await pilot.press("escape", "3", "ctrl+o")
        await settle(pilot)
        assert isinstance(app.screen, ImportCertificateModal)
        await pilot.press(*"/nonexistent.pem", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ImportCertificateModal)  # the error stays in the modal
        app.screen.query_one("#import-path", Input).value = str(
            MENDELSON / "cert_mecas2_public.pem"
        )
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is screen
        assert "mendelson test key 3" in str(screen.query_one("#as2-partner-cert").value_text)

        screen.query_one("#as2-partner_url", Input).value = "https://partner.example.com/as2"
        screen.query_one("#as2-partner_id", Input).value = "MENDELSON"
        screen.query_one("#as2-encryption", Select).value = "aes_128_cbc"
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        identity = (await service.page_state(mailbox.uuid)).as2_identity
        assert identity is not None
        shown = str(screen.query_one("#as2-self-cert").value_text)
        assert identity.subject in shown and identity.fingerprint_sha256[:20] in shown

        target = tmp_path / "self.pem"
        await pilot.press("escape", "3", "ctrl+g")
        await settle(pilot)
        assert isinstance(app.screen, ExportCertificateModal)
        app.screen.query_one("#export-path", Input).value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        assert target.read_text() == identity.certificate_pem
    stored = await service.get_integration(mailbox.uuid)
    assert stored.saved and stored.form.protocol is TransferProtocol.AS2
    assert stored.form.as2.partner_id == "MENDELSON"
    assert stored.form.as2.encryption == "aes_128_cbc"
    assert "BEGIN CERTIFICATE" in stored.form.as2.partner_certificate
    assert not stored.password_set  # AS2 needs no SFTP password


async def fill_rule(pilot, name: str, pattern: str) -> None:  # type: ignore[no-untyped-def]
    """Name, naming pattern and a map, then Run on the generated example (Save needs it)."""
    screen = pilot.app.screen
    assert isinstance(screen, RuleFormScreen)
    screen.query_one("#rule-name", Input).value = name
    screen.query_one("#rule-naming_pattern", Input).value = pattern
    screen.query_one("#rule-conversion_map", TextArea).text = IDENTITY_MAP
    await settle(pilot)
    example = screen.query_one("#rule-example_envelope", TextArea)
    await until(pilot, lambda: bool(example.text))
    await run(pilot, screen)


async def test_rules_add_toggle_clone_move_delete(data_dir: Path, service: Service) -> None:
    mailbox = (await service.list_mailboxes())[0]
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        page = await wait_for_page(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, RuleFormScreen)
        await fill_rule(pilot, "Orders [bold]csv[/]", "{envelopeUuid}.csv")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is page
        rules = await service.list_rules(mailbox.uuid)
        assert [r.name for r in rules] == ["Orders [bold]csv[/]"]
        table = page.query_one("#rules", RuleTable)
        assert table.display and table.row_count == 1
        assert table.get_row_at(0)[1] == Text("Orders [bold]csv[/]")  # never markup

        await pilot.press("5", "ctrl+t")
        await settle(pilot)
        assert (await service.get_rule(rules[0].uuid)).enabled
        assert "on" in str(table.get_row_at(0)[0])

        await pilot.press("ctrl+d")
        await settle(pilot)
        assert isinstance(app.screen, RuleFormScreen)
        assert app.screen.query_one("#rule-name", Input).value == "Orders [bold]csv[/] (copy)"
        await run(pilot, app.screen)  # a clone is saved once it ran
        await pilot.press("ctrl+s")
        await settle(pilot)
        names = [r.name for r in await service.list_rules(mailbox.uuid)]
        assert names == ["Orders [bold]csv[/]", "Orders [bold]csv[/] (copy)"]
        clone = (await service.list_rules(mailbox.uuid))[1]
        assert not clone.enabled

        page.query_one("#rules", RuleTable).select_rule(clone.uuid)
        await pilot.press("shift+up")
        await settle(pilot)
        assert [r.uuid for r in await service.list_rules(mailbox.uuid)][0] == clone.uuid
        assert table.selected_rule_uuid() == clone.uuid
        await pilot.press("shift+down")
        await settle(pilot)
        assert [r.uuid for r in await service.list_rules(mailbox.uuid)][1] == clone.uuid

        await pilot.press("delete")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")
        await settle(pilot)
        assert len(await service.list_rules(mailbox.uuid)) == 2
        await pilot.press("delete")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert [r.name for r in await service.list_rules(mailbox.uuid)] == ["Orders [bold]csv[/]"]

        await pilot.press("enter")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, RuleFormScreen)
        assert form.query_one("#rule-name", Input).value == "Orders [bold]csv[/]"
        form.query_one("#rule-naming_pattern", Input).value = "{envelopeUuid}.txt"
        await settle(pilot)
        await pilot.press("escape")  # unsaved edits: asks
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert app.screen is page
        assert (await service.list_rules(mailbox.uuid))[0].form.naming_pattern == (
            "{envelopeUuid}.csv"
        )

        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("f8")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert app.screen is page
        assert await service.list_rules(mailbox.uuid) == []
        assert not table.display and page.query_one("#rules-empty").display


async def test_rule_form_validates_every_field(
    data_dir: Path, service: Service, tmp_path: Path
) -> None:
    mailbox = (await service.list_mailboxes())[0]
    source = tmp_path / "orders_1.csv"
    source.write_bytes(ORDERS_CSV)
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_page(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, RuleFormScreen)
        form.query_one("#rule-naming_pattern", Input).value = "out:{envelopeUuid}"
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "name" in form.query_one("#err-name", FieldError).message.lower()
        assert "':'" in form.query_one("#err-naming_pattern", FieldError).message
        assert "conversion map" in form.query_one("#err-conversion_map", FieldError).message
        assert "3 field(s) need attention" in str(form.query_one("#rule-summary").render())

        form.query_one("#rule-name", Input).value = "Inbound"
        form.query_one("#rule-direction", Select).value = Direction.OUT.value
        await settle(pilot)  # the OUT fields are built when OUT is first chosen
        form.query_one("#rule-match_pattern", Input).value = "orders_(.*"
        form.query_one("#rule-conversion_map", TextArea).text = "<not-xslt/>"
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "regular expression" in form.query_one("#err-match_pattern", FieldError).message
        assert "XSLT" in form.query_one("#err-conversion_map", FieldError).message
        assert form.query_one("#err-naming_pattern", FieldError).message == ""

        form.query_one("#rule-match_pattern", Input).value = r"^orders_.*\.csv$"
        form.query_one("#rule-conversion_map", TextArea).text = ""
        await settle(pilot)
        await pilot.press("ctrl+s")  # an empty map is refused too
        await settle(pilot)
        assert "conversion map" in form.query_one("#err-conversion_map", FieldError).message

        form.query_one("#rule-template", Select).value = PURCHASE_ORDER
        form.query_one("#rule-multiple", Checkbox).value = True
        form.query_one("#rule-conversion_map", TextArea).text = CSV_TO_ORDERS_1_0
        form.query_one("#rule-match_target", Select).value = MatchTarget.CONTENT.value
        form.query_one("#rule-example_source", Input).value = str(source)
        await settle(pilot)
        await run(pilot, form)  # the example path is read by the Run
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, IntegrationsScreen)
    [rule] = await service.list_rules(mailbox.uuid)
    assert rule.form.direction is Direction.OUT
    assert rule.form.match_target is MatchTarget.CONTENT
    assert rule.form.example_source == ORDERS_CSV


async def test_rule_name_must_be_unique(data_dir: Path, service: Service) -> None:
    mailbox = (await service.list_mailboxes())[0]
    templates = await service.list_templates(mailbox.account_uuid)
    await service.create_rule(
        mailbox.uuid,
        RuleForm(
            "Taken",
            Direction.IN,
            templates[0].uuid,
            naming_pattern="x.xml",
            conversion_map=IDENTITY_MAP,
        ),
    )
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_page(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        await fill_rule(pilot, "Taken", "{envelopeUuid}.xml")
        await pilot.press("ctrl+s")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, RuleFormScreen)
        assert "already has a rule named" in form.query_one("#err-name", FieldError).message


async def test_keys_can_be_remapped_by_binding_id(data_dir: Path, service: Service) -> None:
    (data_dir / "keymap.toml").write_text('"rules.add" = "ctrl+b"\n"page.save" = "ctrl+w"\n')
    mailbox = (await service.list_mailboxes())[0]
    app = make_app(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_page(pilot)
        await pilot.press("ctrl+b")
        await settle(pilot)
        assert isinstance(app.screen, RuleFormScreen)
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("ctrl+w")
        await settle(pilot)
    assert (await service.get_integration(mailbox.uuid)).saved
