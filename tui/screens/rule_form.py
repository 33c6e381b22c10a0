"""The conversion rule form (SPEC §7): every field, validated, with Save / Clone / Delete / Back.

Run and Result come with the conversion engine; until then Save validates the fields only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Footer, Input, Select, Static, TextArea

from core.errors import DocbridgeError
from core.models import ConversionRule, Direction, Mailbox, MatchTarget, RuleForm, Template
from tui.errors import guarded, run_guarded
from tui.forms import FormScreen
from tui.keys import bindings, key_label
from tui.modals.choice import SaveDiscardCancelModal
from tui.modals.confirm import ConfirmModal
from tui.widgets.header import FormHeader
from tui.widgets.rule_fields import (
    LATEST,
    in_fields,
    out_fields,
    rule_fields,
    version_options,
)

if TYPE_CHECKING:
    from core.service import Service

FIELD_LABELS = {
    "name": "Name",
    "template_uuid": "Template",
    "template_version": "Version",
    "match_pattern": "Matching pattern",
    "naming_pattern": "Naming pattern",
    "conversion_map": "Conversion map",
    "example_source": "Example source file",
}


@dataclass(frozen=True)
class RuleFormResult:
    """How the form was left: the rule to select afterwards, or a clone to open next."""

    rule_uuid: str | None = None
    clone: RuleForm | None = None


class RuleFormScreen(FormScreen[RuleFormResult | None]):
    FIELD_LABELS = FIELD_LABELS
    SUMMARY_ID = "rule-summary"
    BINDINGS = bindings("rule.save", "rule.clone", "rule.delete", "rule.back")

    def __init__(
        self,
        service: Service,
        mailbox: Mailbox,
        templates: Sequence[Template],
        rule: ConversionRule | None,
        initial: RuleForm | None = None,
    ) -> None:
        super().__init__(id="rule-form")
        self.service = service
        self.mailbox = mailbox
        self.templates = {t.uuid: t for t in templates}
        self.rule = rule
        first_template = templates[0].uuid if templates else ""
        self.initial = initial or (
            rule.form
            if rule is not None
            else RuleForm(
                name="",
                direction=Direction.IN,
                template_uuid=first_template,
                naming_pattern="{envelopeUuid}.xml",  # a working default to start from
            )
        )
        # An unsaved clone counts as a change from the start; otherwise the form as first shown.
        self.is_clone = initial is not None
        self.baseline: RuleForm | None = None
        self.example_source = self.initial.example_source
        self.template_shown = self.initial.template_uuid

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield FormHeader(id="rule-header")
        with VerticalScroll(id="rule-page"):
            with Vertical(classes="block", id="rule-fields") as block:
                block.border_title = "Conversion rule"
                yield from rule_fields(self.initial, self.templates)
            yield Static(id="rule-summary")
            with Horizontal(classes="form-buttons"):
                key = lambda binding_id: key_label(self.app, binding_id)  # noqa: E731
                yield Button(
                    f"Save ({key('rule.save')})", id="rule-save", variant="primary", compact=True
                )
                yield Button(f"Clone ({key('rule.clone')})", id="rule-clone", compact=True)
                yield Button(
                    f"Delete ({key('rule.delete')})",
                    id="rule-delete",
                    variant="error",
                    compact=True,
                )
                yield Button(f"Back ({key('rule.back')})", id="rule-back", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TextArea).cursor_blink = getattr(self.app, "cursor_blink", True)
        self._render_direction()
        # Selects report their first value after mounting: start once they have settled.
        self.call_after_refresh(self._start)

    def _start(self) -> None:
        self.loaded = True
        if not self.is_clone:
            self.baseline = self.current_form()
        self.refresh_form()
        self.set_focus(self.query_one("#rule-name", Input))

    def _version_options(self, template_uuid: str, current: int | None) -> list[tuple[str, str]]:
        return version_options(self.templates.get(template_uuid), current)

    # -- reading the form -----------------------------------------------------------------------

    def _value(self, widget_id: str) -> str:
        """A selector's value; "" when it is not built (or shows none)."""
        value = next((s.value for s in self.query(f"#{widget_id}").results(Select)), None)
        return value if isinstance(value, str) else ""

    def current_form(self) -> RuleForm:
        """The form as shown; a direction's fields not built yet keep the rule's values."""
        initial = self.initial

        def text(key: str, default: str) -> str:
            found = self.query(f"#rule-{key}").results(Input)
            return next((widget.value for widget in found), default)

        version = self._value("rule-version")
        target = self._value("rule-match_target")
        multiple = next(
            (box.value for box in self.query("#rule-multiple").results(Checkbox)),
            initial.multiple_envelopes,
        )
        return replace(
            initial,
            name=text("name", initial.name),
            enabled=self.query_one("#rule-enabled", Checkbox).value,
            direction=Direction(self._value("rule-direction") or Direction.IN.value),
            template_uuid=self._value("rule-template"),
            template_version=int(version) if version and version != LATEST else None,
            naming_pattern=text("naming_pattern", initial.naming_pattern),
            match_pattern=text("match_pattern", initial.match_pattern),
            match_target=MatchTarget(target) if target else initial.match_target,
            example_source_name=text("example_source", initial.example_source_name).strip(),
            example_source=self.example_source,
            multiple_envelopes=multiple,
            conversion_map=self.query_one("#rule-conversion_map", TextArea).text,
        )

    def errors_of(self, form: RuleForm) -> dict[str, str]:
        errors = self.service.validate_rule_form(form, self.templates.get(form.template_uuid))
        # Only the fields of the chosen direction are saved and checked.
        if form.direction is Direction.IN:
            errors.pop("match_pattern", None)
        else:
            errors.pop("naming_pattern", None)
        return errors

    def form_errors(self) -> dict[str, str]:
        errors = self.errors_of(self.current_form())
        errors.pop("example_source", None)  # checked when the file is read at Save
        return errors

    @property
    def dirty(self) -> bool:
        if not self.loaded:
            return False
        if self.baseline is None:
            return True  # a new rule or an unsaved clone
        return self.current_form() != self.baseline

    # -- reacting -------------------------------------------------------------------------------

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        if self.loaded:
            self.field_edited(getattr(event.input, "field_key", None))

    @on(TextArea.Changed)
    def _map_changed(self) -> None:
        if self.loaded:
            self.field_edited("conversion_map")

    @on(Checkbox.Changed)
    def _checkbox_changed(self) -> None:
        if self.loaded:
            self.field_edited(None)

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "rule-template":
            template = self._value("rule-template")
            # Only a real change of template resets the version: a Select reporting the value
            # it was built with must not drop a pinned version.
            if template != self.template_shown:
                self.template_shown = template
                version = self.query_one("#rule-version", Select)
                with self.prevent(Select.Changed):
                    version.set_options(self._version_options(template, None))
                    version.value = LATEST
                if self.loaded:
                    self.touched.add("template_uuid")
        if event.select.id == "rule-direction":
            self._render_direction()
        if self.loaded:
            self.refresh_form()

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        event.stop()
        actions = {
            "rule-save": self.action_save,
            "rule-clone": self.action_clone,
            "rule-delete": self.action_delete,
            "rule-back": self.action_back,
        }
        action = actions.get(str(event.button.id))
        if action is not None:
            action()

    def _render_direction(self) -> None:
        is_in = self._value("rule-direction") == Direction.IN.value
        group_in, group_out = self.query_one("#rule-in"), self.query_one("#rule-out")
        group_in.display = is_in
        group_out.display = not is_in
        shown = group_in if is_in else group_out
        if not shown.children:  # first time this direction is chosen: build its fields
            shown.mount_all(in_fields(self.initial) if is_in else out_fields(self.initial))

    def header_text(self) -> Text:
        header = Text()
        header.append("docbridge", style="bold")
        header.append("  mailbox: ")
        header.append(self.mailbox.name, style="bold")
        header.append("  rule: ")
        header.append("new (not saved yet)" if self.rule is None else self.rule.name)
        return header

    def field_widget(self, key: str) -> Widget | None:
        targets = {
            "name": "#rule-name",
            "template_uuid": "#rule-template",
            "template_version": "#rule-version",
            "naming_pattern": "#rule-naming_pattern",
            "match_pattern": "#rule-match_pattern",
            "example_source": "#rule-example_source",
            "conversion_map": "#rule-conversion_map",
        }
        return next(iter(self.query(targets[key])), None) if key in targets else None

    # -- actions --------------------------------------------------------------------------------

    def action_save(self) -> None:
        self._save_worker()

    @work(group="rule-save", exclusive=True, exit_on_error=False)
    @guarded
    async def _save_worker(self) -> None:
        await self.save()

    async def save(self, leaving: bool = False) -> bool:
        """Validate every field of the chosen direction, read a new example file, then store.

        ``leaving`` (quit): stay on the screen after saving instead of going back to the page.
        """
        form = self.current_form()
        errors = self.errors_of(form)
        new_example = form.example_source_name != self.initial.example_source_name
        if form.direction is Direction.OUT and new_example:
            if form.example_source_name:
                try:
                    data = await self.service.read_example_source(form.example_source_name)
                except DocbridgeError as exc:
                    errors["example_source"] = str(exc)
                else:
                    self.example_source = data
                    form = replace(form, example_source=data)
            else:
                self.example_source = b""
                form = replace(form, example_source=b"")
        if errors:
            self.show_save_errors(errors)
            return False
        rule = self.rule
        saved = await self.persist(
            lambda: (
                self.service.create_rule(self.mailbox.uuid, form)
                if rule is None
                else self.service.update_rule(rule.uuid, form)
            )
        )
        if saved is None:
            return False
        self.rule = saved
        self.initial = saved.form
        self.baseline = saved.form
        self.say(f"Rule '{saved.name}' saved.", title="Saved")
        if not leaving:
            self.dismiss(RuleFormResult(rule_uuid=saved.uuid))
        return True

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
            SystemCommand("Save rule", f"Validate and save ({key('rule.save')})", self.action_save),
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
