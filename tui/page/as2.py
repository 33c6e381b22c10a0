"""Block (3) for AS2: our URL and certificate (generated), the partner's fields (typed in), and
the mailbox's recent AS2 messages; under the Self URL, whether the engine serves it now."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import datetime

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Select, Static

from core.errors import DocbridgeError
from core.models import (
    ENCRYPTION_ALGORITHMS,
    SIGNING_ALGORITHMS,
    As2Identity,
    EngineStatus,
    IntegrationForm,
    MdnMode,
    PageState,
)
from tui.clipboard import copy_text
from tui.errors import guarded, run_guarded
from tui.keys import bindings, key_label
from tui.modals.certificate import (
    ExportCertificateModal,
    ImportCertificateModal,
    ImportedCertificate,
)
from tui.modals.confirm import ConfirmModal
from tui.page.block import Command, FieldEdited, PageStateChanged
from tui.toast import say
from tui.widgets.activity_sections import recent_lines, serve_hint
from tui.widgets.certificate_text import certificate_lines
from tui.widgets.fields import CopyRow, FieldError, FieldRow, FormInput
from tui.widgets.marks import MarkedCheckbox

INPUTS = {  # form key -> widget id
    "as2.self_id": "as2-self_id",
    "as2.partner_url": "as2-partner_url",
    "as2.partner_id": "as2-partner_id",
    "as2.partner_email": "as2-partner_email",
}
RECENT = 5  # messages under the fields


class As2Details(Vertical):
    """The AS2 half of block (3). It has text fields, so its keys are ctrl keys."""

    BINDINGS = bindings("as2.copy_url", "as2.export_certificate", "as2.import_certificate")

    def __init__(self, service, *, id: str, build: bool) -> None:  # type: ignore[no-untyped-def]
        super().__init__(id=id)
        self.service = service
        self.state: PageState | None = None
        self.partner_certificate = ""
        # Built when first shown: an SFTP page opens without paying for ~60 AS2 widgets.
        self.built = build
        self.filled = False

    def compose(self) -> ComposeResult:
        if self.built:
            yield from self._fields()

    def build(self) -> None:
        """Mount the fields (AS2 was just chosen), then show the stored values in them."""
        if self.built:
            return
        self.built = True

        async def mount_then_fill() -> None:
            await self.mount_all(list(self._fields()))
            if self.state is not None:
                with self.prevent(Input.Changed, Select.Changed, Checkbox.Changed):
                    self.fill(self.state)

        self.call_later(mount_then_fill)

    def _fields(self) -> ComposeResult:
        yield CopyRow("Self URL", "self_url", id="as2-self-url")
        yield FieldRow("", Static(id="as2-serve-hint"))
        yield CopyRow("Self certificate", "self_certificate", id="as2-self-cert")
        yield FieldRow("Self ID", FormInput("as2.self_id", id="as2-self_id"))
        yield FieldError("as2.self_id", id="err-as2-self_id")
        yield FieldRow(
            "Recipient URL",
            FormInput(
                "as2.partner_url",
                id="as2-partner_url",
                placeholder="https://partner.example.com/as2",
            ),
        )
        yield FieldError("as2.partner_url", id="err-as2-partner_url")
        yield CopyRow("Recipient cert", "partner_certificate", id="as2-partner-cert")
        yield FieldError("as2.partner_certificate", id="err-as2-partner_certificate")
        yield FieldRow("Recipient ID", FormInput("as2.partner_id", id="as2-partner_id"))
        yield FieldError("as2.partner_id", id="err-as2-partner_id")
        yield FieldRow(
            "Recipient email",
            FormInput(
                "as2.partner_email",
                id="as2-partner_email",
                placeholder="optional: contact for failed transfers",
            ),
        )
        yield FieldError("as2.partner_email", id="err-as2-partner_email")
        yield FieldRow(
            "Encryption",
            Select[str](
                [(a, a) for a in ENCRYPTION_ALGORITHMS],
                id="as2-encryption",
                allow_blank=False,
                compact=True,
            ),
        )
        yield FieldRow(
            "Signing",
            Select[str](
                [(a, a) for a in SIGNING_ALGORITHMS],
                id="as2-signing",
                allow_blank=False,
                compact=True,
            ),
        )
        yield FieldRow(
            "MDN",
            Select[str](
                [
                    ("synchronous", MdnMode.SYNC.value),
                    ("asynchronous", MdnMode.ASYNC.value),
                    ("none", MdnMode.NONE.value),
                ],
                id="as2-mdn_mode",
                allow_blank=False,
                compact=True,
            ),
        )
        yield Horizontal(  # not a ``with`` block: these fields are also mounted after compose
            MarkedCheckbox("Signed MDN", id="as2-mdn_signed", compact=True),
            MarkedCheckbox("Compression", id="as2-compression", compact=True),
            classes="checks",
        )
        yield FieldRow("Recent messages", Static(id="as2-recent"))

    def fill(self, state: PageState) -> None:
        self.state = state
        if not self.built or not self.children:
            return  # the values go in when the fields are built
        self.filled = True
        as2 = state.integration.form.as2
        self.partner_certificate = as2.partner_certificate
        with self.prevent(Input.Changed, Select.Changed, Checkbox.Changed):
            for key, widget_id in INPUTS.items():
                self.query_one(f"#{widget_id}", Input).value = getattr(as2, key[4:])
            self.query_one("#as2-encryption", Select).value = as2.encryption
            self.query_one("#as2-signing", Select).value = as2.signing
            self.query_one("#as2-mdn_mode", Select).value = as2.mdn_mode.value
            self.query_one("#as2-mdn_signed", Checkbox).value = as2.mdn_signed
            self.query_one("#as2-compression", Checkbox).value = as2.compression
        self.query_one("#as2-self-url", CopyRow).set_value(
            state.as2_self_url, f"{key_label(self.app, 'as2.copy_url')} copy"
        )
        self.show_identity(state.as2_identity)
        self._render_partner_certificate()
        self.show_engine(getattr(self.app, "engine_status", None))

    def on_mount(self) -> None:
        # The page reads the engine's status every few seconds: the hint and the messages follow.
        self.watch(self.app, "engine_status", self._engine_changed, init=False)

    def _engine_changed(self, status: EngineStatus | None) -> None:
        if self.filled:
            self.show_engine(status)

    def show_engine(self, status: EngineStatus | None) -> None:
        """Whether partners can reach the Self URL now; the recent messages read again."""
        self.query_one("#as2-serve-hint", Static).update(serve_hint(status))
        self._load_recent()

    @work(group="as2-recent", exclusive=True, exit_on_error=False)
    @guarded
    async def _load_recent(self) -> None:
        state = self.state
        if state is None:
            return
        area = self.query_one("#as2-recent", Static)
        try:
            found = await self.service.as2.messages(state.mailbox.uuid, RECENT)
        except DocbridgeError as error:  # shown in place: this runs every few seconds
            area.update(Text(f"cannot be read now: {error.title}", style="italic"))
            return
        if self.state is not None and self.state.mailbox.uuid == state.mailbox.uuid:
            area.update(recent_lines(found))

    def read(self, form: IntegrationForm) -> IntegrationForm:
        if not self.filled:
            return form  # never shown: the stored AS2 settings stand as they are

        def text(key: str) -> str:
            return self.query_one(f"#{INPUTS[key]}", Input).value.strip()

        def choice(widget_id: str, default: str) -> str:
            value = self.query_one(f"#{widget_id}", Select).value
            return value if isinstance(value, str) else default

        return replace(
            form,
            # Over what is stored: a field the page does not show (set with the CLI) stays.
            as2=replace(
                form.as2,
                self_id=text("as2.self_id"),
                partner_url=text("as2.partner_url"),
                partner_certificate=self.partner_certificate,
                partner_id=text("as2.partner_id"),
                partner_email=text("as2.partner_email"),
                encryption=choice("as2-encryption", "aes_256_cbc"),
                signing=choice("as2-signing", "sha256"),
                mdn_mode=MdnMode(choice("as2-mdn_mode", MdnMode.SYNC.value)),
                mdn_signed=self.query_one("#as2-mdn_signed", Checkbox).value,
                compression=self.query_one("#as2-compression", Checkbox).value,
            ),
        )

    def first_field(self) -> Widget | None:
        if not self.filled:
            return None
        # The first row, not a text field: digits pressed next still jump between blocks.
        return self.query_one("#as2-self-url")

    def field_widget(self, key: str) -> Widget | None:
        if not self.filled:
            return None
        if key in INPUTS:
            return self.query_one(f"#{INPUTS[key]}")
        if key == "as2.partner_certificate":
            return self.query_one("#as2-partner-cert")
        return None

    def show_identity(self, identity: As2Identity | None) -> None:
        row = self.query_one("#as2-self-cert", CopyRow)
        if identity is None:
            save = key_label(self.app, "page.save")
            row.set_value(Text(f"generated when you Save with AS2 ({save})", style="italic"), "")
        else:
            expiry = None
            with contextlib.suppress(ValueError):
                not_after = datetime.fromisoformat(identity.not_after.replace("Z", "+00:00"))
                expiry = self.service.as2.certificate_expiry(not_after)
            row.set_value(
                certificate_lines(
                    identity.subject, identity.fingerprint_sha256, identity.not_after, expiry
                ),
                f"{key_label(self.app, 'as2.export_certificate')} export",
            )

    def _render_partner_certificate(self) -> None:
        row = self.query_one("#as2-partner-cert", CopyRow)
        load = f"{key_label(self.app, 'as2.import_certificate')} load"
        if not self.partner_certificate.strip():
            row.set_value(Text("none yet: load a PEM file or paste it", style="italic"), load)
            return
        info = self.service.describe_certificate(self.partner_certificate)
        if info is None:
            row.set_value(
                Text("stored certificate cannot be used (see below)", style="italic"), load
            )
            return
        row.set_value(
            certificate_lines(
                info.subject,
                info.fingerprint_sha256,
                info.not_after.isoformat(),
                self.service.as2.certificate_expiry(info.not_after),
            ),
            load,
        )

    # -- actions ----------------------------------------------------------------------------

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        event.stop()
        key = getattr(event.input, "field_key", None)
        self.post_message(FieldEdited(key))

    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _choice_changed(self, event: Select.Changed | Checkbox.Changed) -> None:
        event.stop()
        self.post_message(FieldEdited(None))

    def on_copy_row_activated(self, event: CopyRow.Activated) -> None:
        event.stop()
        actions = {
            "self_url": self.action_copy_self_url,
            "self_certificate": self.action_export_certificate,
            "partner_certificate": self.action_import_certificate,
        }
        action = actions.get(event.row.field_name)
        if action is not None:
            action()

    @guarded
    def action_copy_self_url(self) -> None:
        if self.state is None:
            return
        copy_text(self.app, self.state.as2_self_url)
        say(
            self.app,
            "Self URL copied (it stays visible here if your terminal ignores OSC 52).",
            title="Copied",
        )

    @guarded
    def action_export_certificate(self) -> None:
        state = self.state
        if state is None:
            return
        identity = state.as2_identity
        if identity is None:
            save = key_label(self.app, "page.save")
            say(
                self.app,
                f"No certificate yet: Save ({save}) or 'as2 certificate --create' makes it.",
                severity="warning",
            )
            return
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in state.mailbox.name)
        suggested = f"~/{safe or 'mailbox'}-as2-certificate.pem"

        def done(path: object) -> None:
            if path is not None:
                say(self.app, f"Certificate written to {path}.", title="Exported")

        self.app.push_screen(
            ExportCertificateModal(self.service, identity.certificate_pem, suggested), done
        )

    @guarded
    def action_import_certificate(self) -> None:
        def done(imported: ImportedCertificate | None) -> None:
            if imported is None:
                return
            self.partner_certificate = imported.pem
            self._render_partner_certificate()
            self.post_message(FieldEdited("as2.partner_certificate"))
            say(self.app, "Recipient certificate loaded; Save to keep it.", title="Certificate")

        self.app.push_screen(ImportCertificateModal(self.service), done)

    def identity_created(self, identity: As2Identity) -> None:
        if self.state is not None:
            self.state = replace(self.state, as2_identity=identity)
        if self.filled:
            self.show_identity(identity)

    def commands(self) -> list[Command]:
        key = lambda binding_id: key_label(self.app, binding_id)  # noqa: E731
        commands: list[Command] = [
            ("Copy Self URL", f"AS2 Self URL ({key('as2.copy_url')})", self.action_copy_self_url),
            (
                "Load recipient certificate",
                f"AS2, from a file or pasted PEM ({key('as2.import_certificate')})",
                self.action_import_certificate,
            ),
        ]
        if self.state is not None and self.state.as2_identity is not None:
            commands.append(
                (
                    "Export self certificate",
                    f"AS2, as PEM ({key('as2.export_certificate')})",
                    self.action_export_certificate,
                )
            )
            commands.append(
                (
                    "Renew self certificate",
                    "AS2: a new key pair; the old key still decrypts until partners switch",
                    self.action_renew_certificate,
                )
            )
        return commands

    @guarded
    def action_renew_certificate(self) -> None:
        state = self.state
        if state is None or state.as2_identity is None:
            return
        mailbox_uuid = state.mailbox.uuid

        async def renew() -> None:
            identity = await self.service.as2.renew_identity(mailbox_uuid)
            if self.state is None or self.state.mailbox.uuid != mailbox_uuid:
                return
            self.identity_created(identity)
            self.post_message(PageStateChanged(lambda s: replace(s, as2_identity=identity)))
            say(
                self.app,
                "New self certificate made: export it and send it to the partner. It signs from "
                "now on; messages encrypted to the old one are still read.",
                title="Certificate renewed",
            )

        def answered(yes: bool | None) -> None:
            if yes:
                run_guarded(self, renew(), group="as2-renew")

        question = ConfirmModal(
            "Make a new self certificate?",
            "The partner needs the new certificate to check our signatures and MDNs from now "
            "on; the old key keeps decrypting what the partner still encrypts to the old one.",
            "Renew",
        )
        self.app.push_screen(question, answered)
