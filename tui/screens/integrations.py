"""The Integrations page (SPEC §3): composes blocks (1)-(5) and (7) and runs Save.

Each block owns its fields, keys and actions (``tui/page/``); this screen gives them the stored
state, reads the form back from them, keeps the one answer to "is anything unsaved?", and saves
the whole form at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Checkbox, Footer, Input, RadioSet, Select, Static, Switch, TextArea

from core.models import DefaultRule, EngineStatus, IntegrationForm, PageState
from tui.errors import guarded
from tui.forms import FormScreen
from tui.keys import bindings, key_label
from tui.modals.choice import SaveDiscardCancelModal
from tui.modals.password import PasswordModal
from tui.page.block import FieldEdited, MailboxRequested, PageBlock, PageStateChanged
from tui.page.connection import ConnectionBlock
from tui.page.default_rule import DefaultRuleBlock
from tui.page.manage import ManageBlock
from tui.page.rules import RulesBlock
from tui.page.save_bar import SaveBar
from tui.page.toggle import ToggleBlock
from tui.widgets.header import FormHeader

if TYPE_CHECKING:
    from core.service import Service

BLOCK_IDS = {
    1: "block-toggle",
    2: "block-manage",
    3: "block-connection",
    4: "block-default",
    5: "block-rules",
}


def engine_text(status: EngineStatus | None) -> str:
    if status is None:
        return "engine: ?"
    if status.running:
        return f"engine: running (pid {status.pid})" if status.pid else "engine: running"
    return "engine: stopped"


class PageScroll(VerticalScroll):
    """The page's scroll area: up/down move between fields (the view follows the focus)
    instead of scrolling the focused field out of sight."""

    BINDINGS = bindings("page.next_field", "page.previous_field")


class IntegrationsScreen(FormScreen[None]):
    """One mailbox's integration: toggle, settings, connection, default rule, rules, Save."""

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
    BINDINGS = bindings(
        "page.save",
        "page.toggle",
        "page.switch_mailbox",
        "rules.add",
        "page.leave_field",
        "page.block1",
        "page.block2",
        "page.block3",
        "page.block4",
        "page.block5",
    )

    def __init__(self, service: Service, state: PageState) -> None:
        super().__init__(id="integrations")
        self.service = service
        self.state = state
        self.baseline: IntegrationForm = state.integration.form

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield FormHeader(id="page-header")
        with PageScroll(id="page"):
            yield ToggleBlock(self.service, id="block-toggle")
            yield ManageBlock(self.service, self.state, id="block-manage")
            yield ConnectionBlock(self.service, self.state, id="block-connection")
            yield DefaultRuleBlock(self.service, id="block-default")
            yield RulesBlock(self.service, id="block-rules")
            yield SaveBar(self.service, id="block-save")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "engine_status", lambda _: self.render_header(), init=False)
        self.fill(self.state)
        self.set_focus(self.query_one(ToggleBlock).first_field())

    @property
    def blocks(self) -> list[PageBlock]:
        return list(self.query(PageBlock))

    @property
    def connection(self) -> ConnectionBlock:
        return self.query_one(ConnectionBlock)

    @property
    def revealed_password(self) -> str | None:
        return self.connection.sftp.revealed_password

    # -- state in, form out ---------------------------------------------------------------------

    def fill(self, state: PageState) -> None:
        """Show a mailbox's stored state; nothing here marks the form as changed."""
        self.state = state
        self.baseline = state.integration.form
        self.touched.clear()
        self.show_all_errors = False
        with self.prevent(
            Input.Changed,
            Select.Changed,
            Switch.Changed,
            RadioSet.Changed,
            Checkbox.Changed,
            TextArea.Changed,
            FieldEdited,
        ):
            for block in self.blocks:
                block.fill(state)
        self.query_one("#form-summary", Static).update("")
        self.loaded = True
        self.refresh_form()

    def current_form(self) -> IntegrationForm:
        form = self.baseline
        for block in self.blocks:
            form = block.read(form)
        return form

    def form_errors(self) -> dict[str, str]:
        return self.service.validate_integration_form(self.current_form())

    @property
    def dirty(self) -> bool:
        if not self.loaded:
            return False
        return _comparable(self.current_form()) != _comparable(self.baseline)

    def header_text(self) -> Text:
        header = Text()
        header.append("docbridge  ", style="bold")
        header.append(self.state.mailbox.name, style="bold")
        header.append("  integration: ")
        header.append("ON" if self.state.integration.enabled else "OFF", style="bold")
        header.append(f"  {engine_text(getattr(self.app, 'engine_status', None))}")
        return header

    def dirty_changed(self, dirty: bool) -> None:
        self.query_one(SaveBar).show_dirty(dirty)

    def field_widget(self, key: str) -> Widget | None:
        for block in self.blocks:
            widget = block.field_widget(key)
            if widget is not None:
                return widget
        return None

    def show_host_key(self, fingerprint: str | None) -> None:
        """The engine started after the page loaded and may just have made the host key."""
        self.state = replace(
            self.state, sftp=replace(self.state.sftp, host_key_fingerprint=fingerprint)
        )
        self.connection.sftp.show_host_key(fingerprint)

    # -- messages from the blocks -----------------------------------------------------------------

    @on(FieldEdited)
    def _field_edited(self, event: FieldEdited) -> None:
        event.stop()
        if self.loaded:
            self.field_edited(event.key)

    @on(ManageBlock.ProtocolChosen)
    def _protocol_chosen(self, event: ManageBlock.ProtocolChosen) -> None:
        event.stop()
        if self.loaded:
            self.connection.show_protocol(event.protocol)

    @on(PageStateChanged)
    def _state_changed(self, event: PageStateChanged) -> None:
        event.stop()
        self.state = event.state_update(self.state)
        self.render_header()

    @on(MailboxRequested)
    def _mailbox_requested(self, event: MailboxRequested) -> None:
        event.stop()
        if self.loaded:
            self.request_mailbox(event.mailbox_uuid)

    # -- mailbox switch -------------------------------------------------------------------------

    def request_mailbox(self, target: str) -> None:
        """Switch mailbox, asking first when the form has unsaved changes."""
        if not self.dirty:
            self._switch_to(target, save_first=False)
            return

        def answered(choice: str | None) -> None:
            if choice in ("save", "discard"):
                self._switch_to(target, save_first=choice == "save")
            else:
                self.query_one(ManageBlock).show_stored_mailbox()

        self.app.push_screen(
            SaveDiscardCancelModal(
                "Save the changes before switching mailbox?",
                "This mailbox's form has unsaved changes.",
            ),
            answered,
        )

    @work(group="page-load", exclusive=True, exit_on_error=False)
    @guarded
    async def _switch_to(self, target: str, save_first: bool) -> None:
        if save_first and not await self.save(leaving=True):
            self.query_one(ManageBlock).show_stored_mailbox()
            return
        try:
            state = await self.service.page_state(target)
        except BaseException:
            self.query_one(ManageBlock).show_stored_mailbox()
            raise
        self.fill(state)

    # -- save -----------------------------------------------------------------------------------

    def action_save(self) -> None:
        self._save_worker()

    @work(group="save", exclusive=True, exit_on_error=False)
    @guarded
    async def _save_worker(self) -> None:
        await self.save()

    async def save(self, leaving: bool = False) -> bool:
        """Validate every field (untouched ones too), then persist the whole form at once.

        A password this Save generates is always shown once: in its row while the user stays,
        in a dialog before the page goes away (``leaving``: mailbox switch or quit).
        """
        mailbox_uuid = self.state.mailbox.uuid
        form = self.current_form()
        errors = self.service.validate_integration_form(form)
        if errors:
            self.show_save_errors(errors)
            return False
        baseline = self.baseline  # what the page loaded: a change made elsewhere is not undone
        result = await self.persist(
            lambda: self.service.save_integration(mailbox_uuid, form, baseline)
        )
        if result is None:
            return False
        if self.state.mailbox.uuid != mailbox_uuid:
            return True
        self.state = replace(self.state, integration=result.integration)
        self.baseline = result.integration.form
        self.show_all_errors = False
        connection = self.connection
        if result.as2_identity is not None and self.state.as2_identity is None:
            self.state = replace(self.state, as2_identity=result.as2_identity)
            connection.identity_created(result.as2_identity)
        if result.new_password is not None:
            connection.sftp.password_saved()
            if leaving:
                await self.app.push_screen_wait(
                    PasswordModal(self.state.mailbox.name, result.new_password)
                )
            else:
                connection.sftp.reveal_password(result.new_password)
        self.refresh_form()
        self.query_one("#form-summary", Static).update(Text("Saved."))
        self.say("Every field is saved.", title="Saved")
        return True

    # -- page keys ------------------------------------------------------------------------------

    def action_toggle_integration(self) -> None:
        self.query_one(ToggleBlock).toggle()

    def action_switch_mailbox(self) -> None:
        self.query_one(ManageBlock).open_mailbox_selector()

    def action_add_rule(self) -> None:
        self.query_one(RulesBlock).add_rule()

    @guarded
    def action_leave_field(self) -> None:
        if isinstance(self.focused, Input | TextArea):
            self.set_focus(self.query_one(PageScroll), scroll_visible=False)

    @guarded
    def action_focus_block(self, number: int) -> None:
        # set_focus at once: keys that arrive bunched after the digit start from the block.
        block = self.query_one(f"#{BLOCK_IDS[number]}", PageBlock)
        target = block.first_field()
        if target is not None:
            self.set_focus(target)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_field":  # escape elsewhere (a selector's list) keeps its meaning
            return isinstance(self.focused, Input | TextArea)
        return self.loaded or action not in ("save", "toggle_integration", "add_rule")

    def palette_commands(self) -> Iterable[SystemCommand]:
        """The page's actions for the command palette: only those that apply right now."""
        save = key_label(self.app, "page.save")
        yield SystemCommand("Save", f"Validate and save every field ({save})", self.action_save)
        for block in self.blocks:
            if not block.display:
                continue
            for title, help_text, callback in block.commands():
                yield SystemCommand(title, help_text, callback)
        for number, name in enumerate(
            ("integration", "manage integration", "connection details", "default rule", "rules"),
            start=1,
        ):
            yield SystemCommand(
                f"Go to block {number}: {name}",
                f"Its first field ({key_label(self.app, f'page.block{number}')})",
                lambda n=number: self.action_focus_block(n),  # type: ignore[misc]
            )


def _comparable(form: IntegrationForm) -> IntegrationForm:
    """Fields that Save ignores (the reject reason off rule 3) are no change."""
    if form.default_rule is not DefaultRule.REJECT:
        form = replace(form, reject_reason="")
    return form
