"""The rule form's actions: Run (and what it proves for Save), Generate skeleton, Back (asks
when changed), Clone, Delete, and the palette's commands.

A mixin of :class:`tui.screens.rule_form.RuleFormScreen`, which keeps the fields, their checks
and Save.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import SystemCommand
from textual.containers import VerticalScroll

from core.models import ConversionRule, Direction, Mailbox, RuleForm
from tui.errors import guarded, run_guarded
from tui.keys import key_label
from tui.modals.choice import SaveDiscardCancelModal
from tui.modals.confirm import ConfirmModal
from tui.widgets.example_source import ExampleSource
from tui.widgets.rule_result import RuleResult
from tui.widgets.rule_texts import MapEditor

if TYPE_CHECKING:
    from core.service import Service


def run_key(form: RuleForm) -> RuleForm:
    """What a Run proves: the form without its name and on/off switch (changing those keeps
    Save enabled; anything else needs a new Run)."""
    return replace(form, name="", enabled=False)


@dataclass(frozen=True)
class RuleFormResult:
    """How the form was left: the rule to select afterwards, or a clone to open next."""

    rule_uuid: str | None = None
    clone: RuleForm | None = None


class RuleFormActions:
    """Needs from the screen: ``rule``, ``dirty``, ``service``, ``say``, ``dismiss``, ``app``
    and the actions Save, Run and skeleton."""

    if TYPE_CHECKING:  # provided by the screen (stubs here would shadow its methods)
        rule: ConversionRule | None
        service: Service
        mailbox: Mailbox
        app: Any
        dirty: bool
        running: bool
        ran_key: RuleForm | None
        trusted_key: RuleForm | None
        shown_key: RuleForm | None

        def say(self, message: str, **kwargs: Any) -> None: ...
        def dismiss(self, result: RuleFormResult | None = None) -> Any: ...
        def action_save(self) -> None: ...
        def current_form(self) -> RuleForm: ...
        def refresh_form(self) -> None: ...
        def query_one(self, selector: Any, expect_type: Any = None) -> Any: ...
        def query(self, selector: Any) -> Any: ...
        def call_after_refresh(self, callback: Any, *args: Any, **kwargs: Any) -> Any: ...

    def action_run(self) -> None:
        if self.running:  # the Run in flight finishes; its result applies to what it ran on
            self.say("A run is in progress; its Result shows when it ends.", title="Run")
            return
        self.running = True
        self.query_one(RuleResult).running()
        self._run_worker()

    @work(group="rule-run", exclusive=True, exit_on_error=False)
    @guarded
    async def _run_worker(self) -> None:
        panel = self.query_one(RuleResult)
        source = next(iter(self.query(ExampleSource)), None)
        try:
            form, result = await panel.run(self.mailbox.uuid, self.current_form, source)
        finally:
            self.running = False
        key = run_key(form)
        self.shown_key = key
        if result.ok:
            self.ran_key = key
        else:  # a state that fails on its example needs a successful run again
            self.ran_key = None if self.ran_key == key else self.ran_key
            self.trusted_key = None if self.trusted_key == key else self.trusted_key
        if result.line:  # the map's cursor goes to the line the error names
            self.query_one(MapEditor).area.move_cursor((result.line - 1, 0), center=True)
        self.refresh_form()
        page = self.query_one("#rule-page", VerticalScroll)
        # Once the Result has its new size: at the top of the page, as much of it as fits.
        self.call_after_refresh(page.scroll_to_widget, panel, animate=False, top=True)

    def action_skeleton(self) -> None:
        form = self.current_form()
        if form.direction is not Direction.OUT:
            self.say("A skeleton map is for OUT rules (file to envelope).", severity="warning")
        elif not form.template_uuid:
            self.say("Choose a template first: the skeleton fills its fields.", severity="warning")
        else:
            self.query_one(MapEditor).write_skeleton(form.template_uuid, form.template_version)

    def action_back(self) -> None:
        if not self.dirty:
            self.dismiss(RuleFormResult(rule_uuid=self.rule.uuid if self.rule else None))
            return

        def answered(choice: str | None) -> None:
            if choice == "save":
                self.action_save()
            elif choice == "discard":
                self.dismiss(RuleFormResult(rule_uuid=self.rule.uuid if self.rule else None))

        self.app.push_screen(
            SaveDiscardCancelModal("Save this rule before going back?", "It has unsaved changes."),
            answered,
        )

    @guarded
    def action_clone(self) -> None:
        rule = self.rule
        if rule is None:
            self.say("Save the rule first; a clone is made from a saved rule.", severity="warning")
            return

        async def clone() -> None:
            copy = await self.service.clone_rule(rule.uuid)
            if self.dirty:
                self.say("The clone copies the saved rule; unsaved edits here were left out.")
            self.dismiss(RuleFormResult(rule_uuid=rule.uuid, clone=copy))

        run_guarded(self, clone(), group="rule-clone")

    @guarded
    def action_delete(self) -> None:
        rule = self.rule
        if rule is None:

            def discard(yes: bool | None) -> None:
                if yes:
                    self.dismiss(RuleFormResult())

            self.app.push_screen(
                ConfirmModal("Discard this unsaved rule?", "", yes_label="Discard"), discard
            )
            return

        async def delete() -> None:
            await self.service.delete_rule(rule.uuid)
            self.say(f"Rule '{rule.name}' deleted.", title="Deleted")
            self.dismiss(RuleFormResult())

        def answered(yes: bool | None) -> None:
            if yes:
                run_guarded(self, delete(), group="rule-delete")

        self.app.push_screen(
            ConfirmModal(f"Delete the rule '{rule.name}'?", "This cannot be undone.", "Delete"),
            answered,
        )

    def palette_commands(self) -> list[SystemCommand]:
        key = lambda binding_id: key_label(self.app, binding_id)  # noqa: E731
        commands = [
            SystemCommand("Run rule", f"Run on the example ({key('rule.run')})", self.action_run),
            SystemCommand("Save rule", f"Validate and save ({key('rule.save')})", self.action_save),
            SystemCommand(
                "Generate skeleton", "OUT: a map filling every field", self.action_skeleton
            ),
            SystemCommand(
                "Back", f"To the Integrations page ({key('rule.back')})", self.action_back
            ),
        ]
        if self.rule is not None:
            commands[1:1] = [
                SystemCommand(
                    "Clone rule", f"Open an unsaved copy ({key('rule.clone')})", self.action_clone
                ),
                SystemCommand(
                    "Delete rule", f"Asks first ({key('rule.delete')})", self.action_delete
                ),
            ]
        return commands
