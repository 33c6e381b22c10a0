"""The Integrations page: blocks (1)-(5) and Save (7) of SPEC §3 for one mailbox at a time."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import (
    Button,
    Checkbox,
    Footer,
    Input,
    RadioButton,
    RadioSet,
    Select,
    Static,
    Switch,
)

from core.as2.certificates import CertificateInfo, inspect_certificate
from core.errors import DocbridgeError, FieldErrors
from core.integration import validate_integration_form
from core.models import (
    DEFAULT_RULE_LABELS,
    ENCRYPTION_ALGORITHMS,
    SIGNING_ALGORITHMS,
    As2Identity,
    As2Settings,
    ConversionRule,
    DefaultRule,
    EngineStatus,
    IntegrationForm,
    MdnMode,
    PageState,
    Protocol,
    RuleForm,
)
from tui.clipboard import copy_text
from tui.modals.certificate import ExportCertificateModal, ImportCertificateModal
from tui.modals.choice import SaveDiscardCancelModal
from tui.modals.confirm import ConfirmModal
from tui.modals.error import ErrorModal
from tui.widgets.fields import CopyRow, FieldError, FieldRow, FormInput
from tui.widgets.marks import MarkedCheckbox, MarkedRadioButton
from tui.widgets.rule_table import RuleTable

if TYPE_CHECKING:
    from core.service import Service

FIELD_LABELS = {
    "notify_email": "Notify by email",
    "reject_reason": "Reject reason",
    "as2.self_id": "Self ID",
    "as2.partner_url": "Recipient URL",
    "as2.partner_certificate": "Recipient certificate",
    "as2.partner_id": "Recipient ID",
    "as2.partner_email": "Recipient email",
    "as2.encryption": "Encryption",
    "as2.signing": "Signing",
    "protocol": "Protocol",
    "default_rule": "Default rule",
}
DEFAULT_RULE_ORDER = (DefaultRule.COPY, DefaultRule.NOTIFY, DefaultRule.REJECT)
PASSWORD_MASK = "•" * 12
PASSWORD_REVEAL_SECONDS = 300.0


def engine_text(status: EngineStatus | None) -> str:
    if status is None:
        return "engine: ?"
    if status.running:
        return f"engine: running (pid {status.pid})" if status.pid else "engine: running"
    return "engine: stopped"


def host_key_line(fingerprint: str | None) -> Text:
    """What customers pin: the SFTP host key, once the engine has generated it."""
    if fingerprint is None:
        return Text(
            "Host key fingerprint: not available yet (the SFTP server creates the host key "
            "on its first start).",
            style="dim",
        )
    return Text.assemble(("Host key fingerprint ", "dim"), fingerprint)


def certificate_lines(subject: str, fingerprint: str, not_after: str) -> Text:
    expiry = not_after
    with contextlib.suppress(ValueError):
        expiry = datetime.fromisoformat(not_after).strftime("%Y-%m-%d %H:%M UTC")
    text = Text()
    text.append("Subject ", style="dim")
    text.append(subject)
    text.append("\nSHA-256 ", style="dim")
    text.append(fingerprint)
    text.append("\nExpires ", style="dim")
    text.append(expiry)
    return text


def info_lines(info: CertificateInfo) -> Text:
    return certificate_lines(info.subject, info.fingerprint_sha256, info.not_after.isoformat())


class Block(Vertical):
    """One numbered block of the page, with its number and title in the border."""

    def __init__(self, title: str, *children: Any, id: str) -> None:
        super().__init__(*children, id=id, classes="block")
        self.border_title = title


class SftpDetailsBlock(Vertical):
    """Block (3) for SFTP: keys here act on the connection details."""

    BINDINGS = [
        Binding("h", "screen.copy('host')", "Host", id="sftp.copy_host", tooltip="Copy the host"),
        Binding("p", "screen.copy('port')", "Port", id="sftp.copy_port", tooltip="Copy the port"),
        Binding(
            "l", "screen.copy('login')", "Login", id="sftp.copy_login", tooltip="Copy the login"
        ),
        Binding(
            "w",
            "screen.copy('password')",
            "Password",
            id="sftp.copy_password",
            tooltip="Copy the password while it is shown",
        ),
        Binding(
            "r",
            "screen.reset_password",
            "Reset pw",
            id="sftp.reset_password",
            tooltip="Generate a new SFTP password (asks first)",
        ),
        Binding(
            "m",
            "screen.hide_password",
            "Hide pw",
            id="sftp.hide_password",
            tooltip="Mask the password now",
            show=False,
        ),
    ]


class As2DetailsBlock(Vertical):
    """Block (3) for AS2."""

    BINDINGS = [
        Binding(
            "u", "screen.copy('self_url')", "Copy URL", id="as2.copy_url", tooltip="Copy Self URL"
        ),
        Binding(
            "e",
            "screen.export_certificate",
            "Export cert",
            id="as2.export_certificate",
            tooltip="Write the self certificate to a PEM file",
        ),
        Binding(
            "i",
            "screen.import_certificate",
            "Recipient cert",
            id="as2.import_certificate",
            tooltip="Load the recipient certificate from a file or pasted PEM",
        ),
    ]


class IntegrationsScreen(Screen[None]):
    """One mailbox's integration: toggle, settings, connection, default rule, rules, Save."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="page.save", tooltip="Validate and save every field"),
        Binding(
            "f2",
            "toggle_integration",
            "On/off",
            id="page.toggle",
            tooltip="Turn the integration of this mailbox on or off (immediate)",
        ),
        Binding(
            "f3",
            "switch_mailbox",
            "Mailbox",
            id="page.switch_mailbox",
            tooltip="Choose another mailbox of the account",
            show=False,
        ),
        Binding(
            "a",
            "add_rule",
            "Add rule",
            id="rules.add",
            tooltip="Add a new conversion rule",
            show=False,
        ),
        Binding(
            "escape",
            "leave_field",
            "Leave field",
            id="page.leave_field",
            tooltip="Leave a text field so that letter and digit keys act on the page",
            show=False,
        ),
        Binding("1", "focus_block(1)", "Toggle", id="page.block1", show=False),
        Binding("2", "focus_block(2)", "Manage", id="page.block2", show=False),
        Binding("3", "focus_block(3)", "Connection", id="page.block3", show=False),
        Binding("4", "focus_block(4)", "Default rule", id="page.block4", show=False),
        Binding("5", "focus_block(5)", "Rules", id="page.block5", show=False),
    ]

    def __init__(self, service: Service) -> None:
        super().__init__(id="integrations")
        self.service = service
        self.state: PageState | None = None
        self.baseline: IntegrationForm | None = None
        self.partner_certificate = ""
        self.revealed_password: str | None = None
        self.touched: set[str] = set()
        self.show_all_errors = False
        self.loaded = False
        self._mask_timer: Any = None
        self._ensuring_identity = False
        self.known_host_key: str | None = None

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        lookup = self.field_error
        yield Static(id="page-header")
        with VerticalScroll(id="page"):
            with Block("(1) Integration", id="block-toggle"), Horizontal(classes="toggle-row"):
                yield Switch(id="enabled", tooltip="F2: turn on/off (immediate)")
                yield Static(id="enabled-label")
            with Block("(2) Manage integration", id="block-manage"):
                yield FieldRow(
                    "Mailbox", Select[str]([], id="mailbox", allow_blank=True, compact=True)
                )
                yield Static(id="mailbox-uuid", classes="under-field")
                yield FieldRow(
                    "Protocol",
                    Select[str](
                        [("SFTP", Protocol.SFTP.value), ("AS2", Protocol.AS2.value)],
                        id="protocol",
                        allow_blank=False,
                        value=Protocol.SFTP.value,
                        compact=True,
                    ),
                )
                yield FieldRow(
                    "Notify by email",
                    FormInput(
                        "notify_email",
                        lookup,
                        id="notify_email",
                        placeholder="e.g. ops@example.com",
                    ),
                )
                yield FieldError("notify_email", id="err-notify_email")
            with Block("(3) Connection details", id="block-connection"):
                with SftpDetailsBlock(id="sftp"):
                    yield CopyRow("Host", "host", "h: copy", id="sftp-host")
                    yield CopyRow("Port", "port", "p: copy", id="sftp-port")
                    yield CopyRow("Login", "login", "l: copy", id="sftp-login")
                    yield CopyRow("Password", "password", "r: reset", id="sftp-password")
                    yield Static(id="sftp-hostkey", classes="under-field")
                with As2DetailsBlock(id="as2"):
                    yield CopyRow("Self URL", "self_url", "u: copy", id="as2-self-url")
                    yield CopyRow(
                        "Self certificate", "self_certificate", "e: export", id="as2-self-cert"
                    )
                    yield FieldRow("Self ID", FormInput("as2.self_id", lookup, id="as2-self_id"))
                    yield FieldError("as2.self_id", id="err-as2-self_id")
                    yield FieldRow(
                        "Recipient URL",
                        FormInput(
                            "as2.partner_url",
                            lookup,
                            id="as2-partner_url",
                            placeholder="https://partner.example.com/as2",
                        ),
                    )
                    yield FieldError("as2.partner_url", id="err-as2-partner_url")
                    yield CopyRow(
                        "Recipient cert", "partner_certificate", "i: load", id="as2-partner-cert"
                    )
                    yield FieldError("as2.partner_certificate", id="err-as2-partner_certificate")
                    yield FieldRow(
                        "Recipient ID", FormInput("as2.partner_id", lookup, id="as2-partner_id")
                    )
                    yield FieldError("as2.partner_id", id="err-as2-partner_id")
                    yield FieldRow(
                        "Recipient email",
                        FormInput(
                            "as2.partner_email",
                            lookup,
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
                    with Horizontal(classes="checks"):
                        yield MarkedCheckbox("Signed MDN", id="as2-mdn_signed", compact=True)
                        yield MarkedCheckbox("Compression", id="as2-compression", compact=True)
            with Block("(4) Default rule", id="block-default"):
                with RadioSet(id="default-rule"):
                    for number, rule in enumerate(DEFAULT_RULE_ORDER, start=1):
                        yield MarkedRadioButton(
                            Text(f"{number}. {DEFAULT_RULE_LABELS[rule]}"), id=f"rule-{rule.value}"
                        )
                yield FieldRow(
                    "Reject reason",
                    FormInput(
                        "reject_reason",
                        lookup,
                        id="reject_reason",
                        placeholder="5-5000 characters (only for rule 3)",
                    ),
                )
                yield FieldError("reject_reason", id="err-reject_reason")
            with Block("(5) Conversion rules", id="block-rules"):
                yield Static(id="rules-hint", classes="hint")
                yield RuleTable(id="rules")
                yield Static(id="rules-empty", classes="empty-state")
                yield Button("Add new rule (a)", id="add-rule", compact=True)
            with Block("(7) Save", id="block-save"):
                yield Static(id="save-summary")
                yield Button("Save (ctrl+s)", id="save", variant="primary", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "engine_status", self._render_header, init=False)
        self._render_header()
        self.load(None)

    def say(self, message: str, *, title: str = "", severity: Any = "information") -> None:
        """A toast; never markup, since messages may carry names users typed."""
        self.app.notify(message, title=title, severity=severity, markup=False)

    # -- loading --------------------------------------------------------------------------------

    def load(self, mailbox_uuid: str | None) -> None:
        self.run_worker(
            self._load(mailbox_uuid), group="page-load", exclusive=True, exit_on_error=False
        )

    async def _load(self, mailbox_uuid: str | None) -> None:
        try:
            state = await self.service.page_state(mailbox_uuid)
        except DocbridgeError as exc:
            self.app.push_screen(ErrorModal(exc.title, exc.hint))
            return
        self.fill(state)

    def show_host_key(self, fingerprint: str | None) -> None:
        """Update the fingerprint alone (the engine started after the page loaded)."""
        self.known_host_key = fingerprint  # a load still under way must not blank it again
        if self.state is not None:
            sftp = replace(self.state.sftp, host_key_fingerprint=fingerprint)
            self.state = replace(self.state, sftp=sftp)
        self.query_one("#sftp-hostkey", Static).update(host_key_line(fingerprint))

    def fill(self, state: PageState) -> None:
        """Show a mailbox's stored state; nothing here marks the form as changed."""
        self.state = state
        self.baseline = state.integration.form
        self.touched.clear()
        self.show_all_errors = False
        self.mask_password()
        form = state.integration.form
        self.partner_certificate = form.as2.partner_certificate
        with self.prevent(
            Input.Changed,
            Select.Changed,
            Switch.Changed,
            RadioSet.Changed,
            Checkbox.Changed,
        ):
            self.query_one("#enabled", Switch).value = state.integration.enabled
            mailbox_select = self.query_one("#mailbox", Select)
            mailbox_select.set_options((Text(m.name), m.uuid) for m in state.mailboxes)
            mailbox_select.value = state.mailbox.uuid
            self.query_one("#protocol", Select).value = form.protocol.value
            self._input("notify_email").value = form.notify_email
            self._input("reject_reason").value = form.reject_reason
            self.query_one(f"#rule-{form.default_rule.value}", RadioButton).value = True
            as2 = form.as2
            self._input("as2-self_id").value = as2.self_id
            self._input("as2-partner_url").value = as2.partner_url
            self._input("as2-partner_id").value = as2.partner_id
            self._input("as2-partner_email").value = as2.partner_email
            self.query_one("#as2-encryption", Select).value = as2.encryption
            self.query_one("#as2-signing", Select).value = as2.signing
            self.query_one("#as2-mdn_mode", Select).value = as2.mdn_mode.value
            self.query_one("#as2-mdn_signed", Checkbox).value = as2.mdn_signed
            self.query_one("#as2-compression", Checkbox).value = as2.compression
        for widget in self.query(FormInput):
            widget.clear_validation()
        self.query_one("#mailbox-uuid", Static).update(
            Text.assemble(("UUID ", "dim"), state.mailbox.uuid)
        )
        sftp = state.sftp
        self.query_one("#sftp-host", CopyRow).set_value(sftp.host)
        self.query_one("#sftp-port", CopyRow).set_value(str(sftp.port))
        self.query_one("#sftp-login", CopyRow).set_value(sftp.login)
        fingerprint = sftp.host_key_fingerprint or self.known_host_key
        self.query_one("#sftp-hostkey", Static).update(host_key_line(fingerprint))
        self.query_one("#as2-self-url", CopyRow).set_value(state.as2_self_url)
        self._render_enabled()
        self._render_password()
        self._render_identity(state.as2_identity)
        self._render_partner_certificate()
        self._render_protocol()
        self._render_default_rule()
        self._render_rules(state.rules)
        first_load = not self.loaded
        self.loaded = True
        self._refresh_form_state()
        if first_load:
            self.query_one("#enabled", Switch).focus()

    # -- reading the form -----------------------------------------------------------------------

    def _input(self, widget_id: str) -> Input:
        return self.query_one(f"#{widget_id}", Input)

    def _select_value(self, widget_id: str, default: str) -> str:
        value = self.query_one(f"#{widget_id}", Select).value
        return value if isinstance(value, str) else default

    def current_form(self, override: tuple[str, str] | None = None) -> IntegrationForm:
        """The form as the widgets show it (``override`` replaces one input's value)."""
        values = {
            "notify_email": self._input("notify_email").value,
            "reject_reason": self._input("reject_reason").value,
            "as2.self_id": self._input("as2-self_id").value,
            "as2.partner_url": self._input("as2-partner_url").value,
            "as2.partner_id": self._input("as2-partner_id").value,
            "as2.partner_email": self._input("as2-partner_email").value,
        }
        if override is not None:
            values[override[0]] = override[1]
        pressed = self.query_one("#default-rule", RadioSet).pressed_index
        default_rule = DEFAULT_RULE_ORDER[pressed] if pressed >= 0 else DefaultRule.COPY
        return IntegrationForm(
            protocol=Protocol(self._select_value("protocol", Protocol.SFTP.value)),
            notify_email=values["notify_email"].strip(),
            default_rule=default_rule,
            reject_reason=values["reject_reason"] if default_rule is DefaultRule.REJECT else "",
            as2=As2Settings(
                self_id=values["as2.self_id"].strip(),
                partner_url=values["as2.partner_url"].strip(),
                partner_certificate=self.partner_certificate,
                partner_id=values["as2.partner_id"].strip(),
                partner_email=values["as2.partner_email"].strip(),
                encryption=self._select_value("as2-encryption", "aes_256_cbc"),
                signing=self._select_value("as2-signing", "sha256"),
                mdn_mode=MdnMode(self._select_value("as2-mdn_mode", MdnMode.SYNC.value)),
                mdn_signed=self.query_one("#as2-mdn_signed", Checkbox).value,
                compression=self.query_one("#as2-compression", Checkbox).value,
            ),
        )

    def _comparable(self, form: IntegrationForm) -> IntegrationForm:
        """Fields that Save ignores (reject reason off rule 3) must not count as changes."""
        if form.default_rule is not DefaultRule.REJECT:
            form = replace(form, reject_reason="")
        return form

    @property
    def dirty(self) -> bool:
        if not self.loaded or self.baseline is None:
            return False
        return self._comparable(self.current_form()) != self._comparable(self.baseline)

    def field_error(self, key: str, value: str) -> str | None:
        """The validator of every input: the form's rules, with this input's new value."""
        if not self.loaded:
            return None
        return validate_integration_form(self.current_form(override=(key, value))).get(key)

    # -- reacting to edits ----------------------------------------------------------------------

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        if isinstance(event.input, FormInput):
            self.touched.add(event.input.field_key)
        self._refresh_form_state()

    @on(Input.Blurred)
    def _input_blurred(self, event: Input.Blurred) -> None:
        if isinstance(event.input, FormInput) and event.input.value:
            self.touched.add(event.input.field_key)
            self._refresh_form_state()

    @on(Checkbox.Changed)
    def _checkbox_changed(self) -> None:
        self._refresh_form_state()

    @on(RadioSet.Changed, "#default-rule")
    def _default_rule_changed(self) -> None:
        self.touched.add("reject_reason")
        self._render_default_rule()
        self._refresh_form_state()

    @on(Select.Changed, "#protocol")
    def _protocol_changed(self) -> None:
        self._render_protocol()
        self._refresh_form_state()
        state = self.state
        if (
            state is not None
            and self.current_form().protocol is Protocol.AS2
            and state.as2_identity is None
        ):
            self.run_worker(
                self._ensure_identity(state.mailbox.uuid),
                group="as2-identity",
                exclusive=True,
                exit_on_error=False,
            )

    @on(Select.Changed, "#as2-encryption, #as2-signing, #as2-mdn_mode")
    def _as2_select_changed(self) -> None:
        self._refresh_form_state()

    @on(Select.Changed, "#mailbox")
    def _mailbox_changed(self, event: Select.Changed) -> None:
        event.stop()
        state = self.state
        target = event.value
        if state is None or not isinstance(target, str) or target == state.mailbox.uuid:
            return
        self.request_mailbox(target)

    @on(Switch.Changed, "#enabled")
    def _enabled_changed(self, event: Switch.Changed) -> None:
        if self.state is None:
            return
        if event.value:
            self._set_enabled(True)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._set_enabled(False)
            else:
                self._revert_switch()

        name = self.state.mailbox.name
        self.app.push_screen(
            ConfirmModal(
                f"Turn off the integration of {name}?",
                "SFTP logins and AS2 messages for this mailbox are refused at once and nothing "
                "is delivered. Incoming envelopes keep arriving and wait until it is on again.",
                yes_label="Turn off",
            ),
            answered,
        )

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#add-rule")
    def _add_pressed(self) -> None:
        self.action_add_rule()

    @on(CopyRow.CopyRequested)
    def _copy_requested(self, event: CopyRow.CopyRequested) -> None:
        name = event.row.field_name
        if name == "password" and self.revealed_password is None:
            self.action_reset_password()
        elif name == "self_certificate":
            self.action_export_certificate()
        elif name == "partner_certificate":
            self.action_import_certificate()
        else:
            self.action_copy(name)

    @on(RuleTable.RowSelected)
    def _row_selected(self, event: RuleTable.RowSelected) -> None:
        event.stop()  # enter is bound to open_rule; a mouse click lands here
        self.action_open_rule()

    # -- rendering ------------------------------------------------------------------------------

    def _render_header(self) -> None:
        header = Text()
        header.append("docbridge", style="bold")
        state = self.state
        if state is not None:
            header.append("  mailbox: ")
            header.append(state.mailbox.name, style="bold")
            header.append("  integration: ")
            header.append("ON" if state.integration.enabled else "OFF", style="bold")
        header.append(f"  {engine_text(getattr(self.app, 'engine_status', None))}")
        if self.dirty:
            header.append("  * unsaved changes", style="bold reverse")
        self.query_one("#page-header", Static).update(header)

    def _render_enabled(self) -> None:
        state = self.state
        if state is None:
            return
        on_ = state.integration.enabled
        text = Text()
        text.append("ON" if on_ else "OFF", style="bold")
        text.append(
            " - files and messages flow (F2 turns it off)"
            if on_
            else " - nothing is delivered; envelopes wait (F2 turns it on)"
        )
        self.query_one("#enabled-label", Static).update(text)
        self._render_header()

    def _render_protocol(self) -> None:
        protocol = self._select_value("protocol", Protocol.SFTP.value)
        self.query_one("#sftp").display = protocol == Protocol.SFTP.value
        self.query_one("#as2").display = protocol == Protocol.AS2.value

    def _render_default_rule(self) -> None:
        pressed = self.query_one("#default-rule", RadioSet).pressed_index
        reject = pressed == DEFAULT_RULE_ORDER.index(DefaultRule.REJECT)
        self._input("reject_reason").disabled = not reject

    def _render_password(self) -> None:
        row = self.query_one("#sftp-password", CopyRow)
        state = self.state
        if self.revealed_password is not None:
            value = Text(self.revealed_password, style="bold")
            value.append("  shown once: copy it now", style="reverse")
            row.set_value(value, "w: copy  m: hide")
        elif state is not None and state.integration.password_set:
            row.set_value(Text(PASSWORD_MASK), "r: reset")
        else:
            row.set_value(Text("generated on first Save (ctrl+s)", style="italic"), "")

    def _render_identity(self, identity: As2Identity | None) -> None:
        row = self.query_one("#as2-self-cert", CopyRow)
        if identity is None:
            row.set_value(Text("generated when AS2 is chosen", style="italic"))
        else:
            row.set_value(
                certificate_lines(identity.subject, identity.fingerprint_sha256, identity.not_after)
            )

    def _render_partner_certificate(self) -> None:
        row = self.query_one("#as2-partner-cert", CopyRow)
        if not self.partner_certificate.strip():
            row.set_value(Text("none yet: press i to load a PEM file or paste it", style="italic"))
            return
        try:
            info = inspect_certificate(self.partner_certificate)
        except DocbridgeError:
            row.set_value(Text("stored certificate cannot be used (see below)", style="italic"))
            return
        row.set_value(info_lines(info))

    def _render_rules(self, rules: Iterable[ConversionRule]) -> None:
        rules = tuple(rules)
        table = self.query_one("#rules", RuleTable)
        table.fill(rules, self.template_names())
        empty = not rules
        table.display = not empty
        self.query_one("#rules-empty", Static).display = empty
        self.query_one("#rules-empty", Static).update(
            Text(
                "No conversion rules yet. Press a (or the button below) to add the first rule; "
                "incoming envelopes that match no rule get the default rule above."
            )
        )
        self.query_one("#rules-hint", Static).update(
            Text(
                "Applied top to bottom; the first enabled match wins.  a add  enter open  "
                "space on/off  c clone  x delete  K/J move up/down",
                style="dim",
            )
        )

    def template_names(self) -> dict[str, str]:
        if self.state is None:
            return {}
        return {t.uuid: t.name for t in self.state.templates}

    def _refresh_form_state(self) -> None:
        """Errors next to fields (touched ones, or all after Save) and the unsaved marker."""
        if not self.loaded:
            return
        errors = validate_integration_form(self.current_form())
        for widget in self.query(FieldError):
            key = widget.field_key
            shown = self.show_all_errors or key in self.touched
            widget.show(errors.get(key) if shown else None)
        if self.show_all_errors:
            self._render_summary(errors)
        self._render_header()
        self.query_one("#save", Button).label = (
            "Save (ctrl+s)  * unsaved changes" if self.dirty else "Save (ctrl+s)"
        )

    def _render_summary(self, errors: dict[str, str]) -> None:
        summary = self.query_one("#save-summary", Static)
        if not errors:
            summary.update(Text("All fields are valid.") if self.dirty else "")
            return
        names = ", ".join(FIELD_LABELS.get(key, key) for key in errors)
        summary.update(
            Text(f"✗ {len(errors)} field(s) need attention: {names}. Nothing was saved.")
        )

    # -- actions: toggle, mailbox, save ---------------------------------------------------------

    def action_toggle_integration(self) -> None:
        switch = self.query_one("#enabled", Switch)
        switch.focus()
        switch.toggle()

    def _revert_switch(self) -> None:
        if self.state is None:
            return
        with self.prevent(Switch.Changed):
            self.query_one("#enabled", Switch).value = self.state.integration.enabled

    def _set_enabled(self, enabled: bool) -> None:
        if self.state is None:
            return
        mailbox_uuid = self.state.mailbox.uuid

        async def work() -> None:
            try:
                integration = await self.service.set_enabled(mailbox_uuid, enabled)
            except DocbridgeError as exc:
                self._revert_switch()
                self.app.push_screen(ErrorModal(exc.title, exc.hint))
                return
            if self.state is not None and self.state.mailbox.uuid == mailbox_uuid:
                self.state = replace(
                    self.state,
                    integration=replace(self.state.integration, enabled=integration.enabled),
                )
            self._render_enabled()
            self.say(
                f"Integration {'on' if enabled else 'off'}: it takes effect now.",
                title="Integration",
            )

        self.run_worker(work(), group="toggle", exclusive=True, exit_on_error=False)

    def action_switch_mailbox(self) -> None:
        select = self.query_one("#mailbox", Select)
        select.focus()
        select.action_show_overlay()

    def request_mailbox(self, target: str) -> None:
        """Switch mailbox, asking first when the form has unsaved changes."""
        if not self.dirty:
            self.load(target)
            return

        def answered(choice: str | None) -> None:
            if choice == "save":
                self.run_worker(
                    self._save_then_load(target), group="save", exclusive=True, exit_on_error=False
                )
            elif choice == "discard":
                self.load(target)
            else:
                self._revert_mailbox_select()

        self.app.push_screen(
            SaveDiscardCancelModal(
                "Save the changes before switching mailbox?",
                "This mailbox's form has unsaved changes.",
            ),
            answered,
        )

    def _revert_mailbox_select(self) -> None:
        if self.state is None:
            return
        with self.prevent(Select.Changed):
            self.query_one("#mailbox", Select).value = self.state.mailbox.uuid

    async def _save_then_load(self, target: str) -> None:
        if await self.save():
            await self._load(target)
        else:
            self._revert_mailbox_select()

    def action_save(self) -> None:
        self.run_worker(self.save(), group="save", exclusive=True, exit_on_error=False)

    async def save(self) -> bool:
        """Validate every field (untouched ones too), then persist the whole form at once."""
        state = self.state
        if state is None:
            return False
        self.show_all_errors = True
        for widget in self.query(FormInput):
            if not widget.disabled and widget.display and self._shown(widget):
                widget.validate(widget.value)
        form = self.current_form()
        errors = validate_integration_form(form)
        if not errors:
            try:
                result = await self.service.save_integration(state.mailbox.uuid, form)
            except FieldErrors as exc:
                errors = exc.errors
            except DocbridgeError as exc:
                self.app.push_screen(ErrorModal(exc.title, exc.hint))
                return False
            else:
                if self.state is None or self.state.mailbox.uuid != state.mailbox.uuid:
                    return True
                self.state = replace(
                    self.state,
                    integration=result.integration,
                    sftp=replace(self.state.sftp, password_set=result.integration.password_set),
                )
                self.baseline = result.integration.form
                if form.protocol is Protocol.AS2 and self.state.as2_identity is None:
                    await self._ensure_identity(state.mailbox.uuid)
                if result.new_password is not None:
                    self.reveal_password(result.new_password)
                self._refresh_form_state()
                self.query_one("#save-summary", Static).update(Text("Saved."))
                self.say("Every field is saved.", title="Saved")
                return True
        self._show_errors(errors)
        return False

    def _shown(self, widget: FormInput) -> bool:
        """Inputs of the protocol not chosen are neither shown nor saved."""
        return not (widget.field_key.startswith("as2.") and not self.query_one("#as2").display)

    def _show_errors(self, errors: dict[str, str]) -> None:
        for widget in self.query(FieldError):
            widget.show(errors.get(widget.field_key))
        for widget in self.query(FormInput):
            widget.set_class(widget.field_key in errors, "-invalid")
        self._render_summary(errors)
        self._render_header()
        names = ", ".join(FIELD_LABELS.get(key, key) for key in errors)
        self.say(f"Fix: {names}.", title="Nothing saved", severity="error")
        first = next(
            (w for w in self.query(FormInput) if w.field_key in errors and self._shown(w)), None
        )
        if first is not None:
            first.focus()
        elif "as2.partner_certificate" in errors:
            self.query_one("#as2-partner-cert").focus()

    # -- actions: connection details ------------------------------------------------------------

    def action_copy(self, name: str) -> None:
        state = self.state
        if state is None:
            return
        values = {
            "host": ("Host", state.sftp.host),
            "port": ("Port", str(state.sftp.port)),
            "login": ("Login", state.sftp.login),
            "self_url": ("Self URL", state.as2_self_url),
        }
        if name == "password":
            if self.revealed_password is None:
                hint = (
                    "It is stored only as a hash. Press r to reset it and get a new one."
                    if state.integration.password_set
                    else "There is none yet: Save (ctrl+s) generates it."
                )
                self.say(hint, title="Password not shown", severity="warning")
                return
            label, value = "Password", self.revealed_password
        elif name in values:
            label, value = values[name]
        else:
            return
        copy_text(self.app, value)
        self.say(
            f"{label} copied (it stays visible here if your terminal ignores OSC 52).",
            title="Copied",
        )

    def reveal_password(self, password: str) -> None:
        self.revealed_password = password
        if self._mask_timer is not None:
            self._mask_timer.stop()
        self._mask_timer = self.set_timer(PASSWORD_REVEAL_SECONDS, self.mask_password)
        self._render_password()
        self.query_one("#sftp-password", CopyRow).focus()

    def mask_password(self) -> None:
        self.revealed_password = None
        if self._mask_timer is not None:
            self._mask_timer.stop()
            self._mask_timer = None
        if self.is_mounted and self.state is not None:
            self._render_password()

    def action_hide_password(self) -> None:
        self.mask_password()

    def action_reset_password(self) -> None:
        state = self.state
        if state is None:
            return
        if not state.integration.password_set:
            self.say(
                "There is no password yet: Save (ctrl+s) generates the first one.",
                title="Reset password",
                severity="warning",
            )
            return
        mailbox_uuid = state.mailbox.uuid

        async def work() -> None:
            try:
                password = await self.service.reset_password(mailbox_uuid)
            except DocbridgeError as exc:
                self.app.push_screen(ErrorModal(exc.title, exc.hint))
                return
            if self.state is not None and self.state.mailbox.uuid == mailbox_uuid:
                self.reveal_password(password)
                self.say("New password generated: copy it now (w).", title="Password reset")

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(work(), group="password", exclusive=True, exit_on_error=False)

        self.app.push_screen(
            ConfirmModal(
                f"Reset the SFTP password of {state.mailbox.name}?",
                "The old password stops working at once and open SFTP sessions of this mailbox "
                "are closed. The new one is shown once.",
                yes_label="Reset",
            ),
            answered,
        )

    async def _ensure_identity(self, mailbox_uuid: str) -> None:
        try:
            identity = await self.service.ensure_as2_identity(mailbox_uuid)
        except DocbridgeError as exc:
            self.app.push_screen(ErrorModal(exc.title, exc.hint))
            return
        if self.state is not None and self.state.mailbox.uuid == mailbox_uuid:
            self.state = replace(self.state, as2_identity=identity)
            self._render_identity(identity)

    def action_export_certificate(self) -> None:
        state = self.state
        if state is None:
            return
        identity = state.as2_identity
        if identity is None:
            self.say("Choose AS2 first: that generates the certificate.", severity="warning")
            return
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in state.mailbox.name)
        suggested = f"~/{safe or 'mailbox'}-as2-certificate.pem"

        def done(path: object) -> None:
            if path is not None:
                self.say(f"Certificate written to {path}.", title="Exported")

        self.app.push_screen(ExportCertificateModal(identity.certificate_pem, suggested), done)

    def action_import_certificate(self) -> None:
        def done(result: object) -> None:
            pem = getattr(result, "pem", None)
            if isinstance(pem, str):
                self.partner_certificate = pem
                self.touched.add("as2.partner_certificate")
                self._render_partner_certificate()
                self._refresh_form_state()
                self.say("Recipient certificate loaded; Save to keep it.", title="Certificate")

        self.app.push_screen(ImportCertificateModal(), done)

    # -- actions: rules -------------------------------------------------------------------------

    def _selected_rule(self) -> ConversionRule | None:
        if self.state is None:
            return None
        uuid = self.query_one("#rules", RuleTable).selected_rule_uuid()
        return next((r for r in self.state.rules if r.uuid == uuid), None)

    def _need_rule(self) -> ConversionRule | None:
        rule = self._selected_rule()
        if rule is None:
            self.say("There is no rule yet: press a to add one.", severity="warning")
        return rule

    def _rule_work(self, work: Callable[[], Awaitable[None]]) -> None:
        async def run() -> None:
            try:
                await work()
            except DocbridgeError as exc:
                self.app.push_screen(ErrorModal(exc.title, exc.hint))

        self.run_worker(run(), group="rules", exit_on_error=False)

    async def reload_rules(self, select: str | None = None) -> None:
        state = self.state
        if state is None:
            return
        rules = tuple(await self.service.list_rules(state.mailbox.uuid))
        if self.state is None or self.state.mailbox.uuid != state.mailbox.uuid:
            return
        self.state = replace(self.state, rules=rules)
        self._render_rules(rules)
        if select is not None:
            self.query_one("#rules", RuleTable).select_rule(select)

    def open_rule_form(self, rule: ConversionRule | None, form: RuleForm | None = None) -> None:
        from tui.screens.rule_form import RuleFormResult, RuleFormScreen

        state = self.state
        if state is None:
            return

        def done(result: RuleFormResult | None) -> None:
            if result is None:
                return
            self._rule_work(lambda: self.reload_rules(select=result.rule_uuid))
            if result.clone is not None:
                self.open_rule_form(None, result.clone)

        self.app.push_screen(
            RuleFormScreen(self.service, state.mailbox, state.templates, rule, form), done
        )

    def action_add_rule(self) -> None:
        self.open_rule_form(None)

    def action_open_rule(self) -> None:
        rule = self._need_rule()
        if rule is not None:
            self.open_rule_form(rule)

    def action_toggle_rule(self) -> None:
        rule = self._need_rule()
        if rule is None:
            return

        async def work() -> None:
            updated = await self.service.set_rule_enabled(rule.uuid, not rule.enabled)
            if self.state is not None:
                self.state = replace(
                    self.state,
                    rules=tuple(updated if r.uuid == updated.uuid else r for r in self.state.rules),
                )
            self.query_one("#rules", RuleTable).update_rule(updated, self.template_names())
            self.say(
                f"Rule '{updated.name}' is {'on' if updated.enabled else 'off'}.",
                title="Rule",
            )

        self._rule_work(work)

    def action_clone_rule(self) -> None:
        rule = self._need_rule()
        if rule is None:
            return

        async def work() -> None:
            form = await self.service.clone_rule(rule.uuid)
            self.open_rule_form(None, form)

        self._rule_work(work)

    def action_delete_rule(self) -> None:
        rule = self._need_rule()
        if rule is None:
            return

        async def work() -> None:
            await self.service.delete_rule(rule.uuid)
            await self.reload_rules()
            self.say(f"Rule '{rule.name}' deleted.", title="Rule")

        def answered(yes: bool | None) -> None:
            if yes:
                self._rule_work(work)

        self.app.push_screen(
            ConfirmModal(f"Delete the rule '{rule.name}'?", "This cannot be undone.", "Delete"),
            answered,
        )

    def action_move_rule(self, offset: int) -> None:
        rule = self._need_rule()
        if rule is None:
            return

        async def work() -> None:
            await self.service.move_rule(rule.uuid, 1 if offset > 0 else -1)
            await self.reload_rules(select=rule.uuid)

        self._rule_work(work)

    # -- navigation -----------------------------------------------------------------------------

    def action_leave_field(self) -> None:
        focused = self.focused
        if isinstance(focused, Input):
            block = next((a for a in focused.ancestors if isinstance(a, Block)), None)
            if block is not None and block.id == "block-connection":
                self.action_focus_block(3)
            else:
                self.query_one("#page").focus()

    def action_focus_block(self, number: int) -> None:
        targets = {
            1: "#enabled",
            2: "#mailbox",
            3: "#sftp-host" if self.query_one("#sftp").display else "#as2-self-url",
            4: "#default-rule",
            5: "#rules" if self.query_one("#rules").display else "#add-rule",
        }
        self.query_one(targets[number]).focus()

    def palette_commands(self) -> Iterable[SystemCommand]:
        """Every action of the page, for the command palette (ctrl+p)."""
        commands: list[tuple[str, str, Callable[[], Any]]] = [
            ("Save", "Validate and save every field (ctrl+s)", self.action_save),
            (
                "Toggle integration on/off",
                "Immediate kill switch for this mailbox (F2)",
                self.action_toggle_integration,
            ),
            ("Switch mailbox", "Choose another mailbox (F3)", self.action_switch_mailbox),
            ("Use SFTP", "Connection protocol SFTP", lambda: self._set_protocol(Protocol.SFTP)),
            ("Use AS2", "Connection protocol AS2", lambda: self._set_protocol(Protocol.AS2)),
            ("Copy host", "SFTP host (h)", lambda: self.action_copy("host")),
            ("Copy port", "SFTP port (p)", lambda: self.action_copy("port")),
            ("Copy login", "SFTP login (l)", lambda: self.action_copy("login")),
            ("Copy password", "While it is shown (w)", lambda: self.action_copy("password")),
            ("Reset password", "New SFTP password, asks first (r)", self.action_reset_password),
            ("Hide password", "Mask the password now (m)", self.action_hide_password),
            ("Copy Self URL", "AS2 Self URL (u)", lambda: self.action_copy("self_url")),
            ("Export self certificate", "AS2, as PEM (e)", self.action_export_certificate),
            (
                "Load recipient certificate",
                "AS2, from a file or pasted PEM (i)",
                self.action_import_certificate,
            ),
            ("Add rule", "New conversion rule (a)", self.action_add_rule),
            ("Open rule", "The selected rule's form (enter)", self.action_open_rule),
            ("Enable/disable rule", "The selected rule (space)", self.action_toggle_rule),
            ("Clone rule", "An unsaved copy of the selected rule (c)", self.action_clone_rule),
            ("Delete rule", "The selected rule, asks first (x)", self.action_delete_rule),
            ("Move rule up", "The selected rule (K)", lambda: self.action_move_rule(-1)),
            ("Move rule down", "The selected rule (J)", lambda: self.action_move_rule(1)),
        ]
        for number, name in enumerate(
            ("toggle", "manage integration", "connection details", "default rule", "rules"),
            start=1,
        ):
            commands.append(
                (
                    f"Go to block {number}: {name}",
                    f"Focus block ({number})",
                    lambda n=number: self.action_focus_block(n),  # type: ignore[misc]
                )
            )
        if self.state is not None:
            for mailbox in self.state.mailboxes:
                if mailbox.uuid != self.state.mailbox.uuid:
                    commands.append(
                        (
                            f"Mailbox: {mailbox.name}",
                            f"Switch to {mailbox.uuid}",
                            lambda uuid=mailbox.uuid: self.request_mailbox(uuid),  # type: ignore[misc]
                        )
                    )
        for title, help_text, callback in commands:
            yield SystemCommand(title, help_text, callback)

    def _set_protocol(self, protocol: Protocol) -> None:
        self.query_one("#protocol", Select).value = protocol.value

    def on_worker_state_changed(self, event: Any) -> None:
        from tui.app import report_worker_failure

        report_worker_failure(self.app, event)
