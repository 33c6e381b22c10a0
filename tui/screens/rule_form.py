"""The conversion rule form (SPEC §7): every field, validated, Run on an example with its Result,
and Save / Clone / Delete / Back.

Save is gated by Run: it is enabled only while the form's *run key* (every field but the name and
the on/off switch) equals the key of the last successful Run. An opened saved rule starts with
its stored key trusted (nothing changed, nothing to prove) until a Run of that state fails; a new
rule and a clone start with none. A second ctrl+r while a Run is in progress is ignored (with a
notice): the Run in flight finishes and its result applies to the state it ran on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Footer, Input, Select, Static, TextArea

from core.models import (
    ConversionRule,
    Direction,
    Mailbox,
    MatchTarget,
    RuleForm,
    Template,
)
from tui.errors import guarded
from tui.forms import FormScreen
from tui.keys import bindings, key_label
from tui.screens.rule_form_actions import RuleFormActions, RuleFormResult, run_key
from tui.widgets.example_source import ExampleSource
from tui.widgets.header import FormHeader
from tui.widgets.rule_fields import (
    LATEST,
    form_buttons,
    in_fields,
    out_fields,
    rule_fields,
    version_options,
)
from tui.widgets.rule_result import RuleResult
from tui.widgets.rule_texts import ExampleEnvelope

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


class RuleFormScreen(RuleFormActions, FormScreen[RuleFormResult | None]):
    FIELD_LABELS = FIELD_LABELS
    SUMMARY_ID = "rule-summary"
    BINDINGS = bindings("rule.save", "rule.run", "rule.clone", "rule.delete", "rule.back")

    def __init__(
        self,
        service: Service,
        mailbox: Mailbox,
        templates: Sequence[Template],
        rule: ConversionRule | None,
        initial: RuleForm | None = None,
    ) -> None:
        super().__init__()  # no fixed id: a clone opens while this form is still closing
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
        self.template_shown = self.initial.template_uuid
        # Save gating: the run key of the last successful Run, and the stored rule's own key.
        self.ran_key: RuleForm | None = None
        self.trusted_key: RuleForm | None = None
        self.shown_key: RuleForm | None = None  # the state whose Run the Result shows
        self.running = False

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield FormHeader(id="rule-header")
        with VerticalScroll(id="rule-page"):
            with Vertical(classes="block", id="rule-fields") as block:
                block.border_title = "Conversion rule"
                yield from rule_fields(
                    self.initial, self.templates, self.service, self.mailbox.uuid
                )
            yield RuleResult(self.service)
            yield Static(id="rule-summary")
            yield Static(id="rule-save-hint")
            yield form_buttons(lambda binding_id: key_label(self.app, binding_id))
        yield Footer()

    def on_mount(self) -> None:
        self._render_direction()
        # Selects report their first value after mounting: start once they have settled.
        self.call_after_refresh(self._start)

    def _start(self) -> None:
        self.loaded = True
        if not self.is_clone:
            self.baseline = self.current_form()
            if self.rule is not None:
                self.trusted_key = run_key(self.baseline)
        self.refresh_form()
        self.set_focus(self.query_one("#rule-name", Input))
        self._example_envelope(initial=True)

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
        direction = Direction(self._value("rule-direction") or Direction.IN.value)
        name, example = self._example(direction)
        multiple = next(
            (box.value for box in self.query("#rule-multiple").results(Checkbox)),
            initial.multiple_envelopes,
        )
        return replace(
            initial,
            name=text("name", initial.name),
            enabled=self.query_one("#rule-enabled", Checkbox).value,
            direction=direction,
            template_uuid=self._value("rule-template"),
            template_version=int(version) if version and version != LATEST else None,
            naming_pattern=text("naming_pattern", initial.naming_pattern),
            match_pattern=text("match_pattern", initial.match_pattern),
            match_target=MatchTarget(target) if target else initial.match_target,
            example_source_name=name,
            example_source=example,
            multiple_envelopes=multiple,
            conversion_map=self.query_one("#rule-conversion_map", TextArea).text,
        )

    def _example(self, direction: Direction) -> tuple[str, bytes]:
        """The example of the chosen direction: the OUT source as loaded (with the path typed,
        so a path not loaded yet differs from the last Run), or the IN envelope as edited."""
        initial = self.initial
        same = initial.direction is direction
        if direction is Direction.OUT:
            source = next(iter(self.query(ExampleSource)), None)
            if source is None:
                return (initial.example_source_name, initial.example_source) if same else ("", b"")
            return source.typed_name, source.example.data
        example = next(iter(self.query(ExampleEnvelope)), None)
        name = initial.example_source_name if same else ""
        if example is None:
            return name, initial.example_source if same else b""
        return name, example.area.text.encode("utf-8")

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
        errors.pop("example_source", None)  # an example is Run's business, not a field's
        return errors

    @property
    def can_save(self) -> bool:
        """A successful Run of the current state (or the stored rule, unchanged) is shown."""
        key = run_key(self.current_form())
        return key in (self.ran_key, self.trusted_key)

    def refresh_form(self) -> None:
        super().refresh_form()
        if self.loaded:
            self._render_save_state()

    def _render_save_state(self) -> None:
        allowed = self.can_save
        self.query_one("#rule-save", Button).disabled = not allowed
        hint = self.query_one("#rule-save-hint", Static)
        run = key_label(self.app, "rule.run")
        hint.update("" if allowed else Text(f"Run the rule ({run}) to enable Save.", "bold"))
        hint.display = not allowed
        if not self.running:
            # The Result is of the state that ran: stale once the form is another state.
            shown = self.shown_key
            self.query_one(RuleResult).mark_stale(
                shown is not None and run_key(self.current_form()) != shown
            )

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
    def _text_changed(self, event: TextArea.Changed) -> None:
        keys = {"rule-conversion_map": "conversion_map", "rule-example_envelope": None}
        if self.loaded and event.text_area.id in keys:
            self.field_edited(keys[event.text_area.id])

    @on(ExampleSource.Loaded)
    def _example_loaded(self) -> None:
        if self.loaded:
            self.field_edited("example_source")

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
            if event.select.id in ("rule-template", "rule-version", "rule-direction"):
                self.call_after_refresh(self._example_envelope)

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        event.stop()
        actions = {
            "rule-save": self.action_save,
            "rule-run": self.action_run,
            "rule-skeleton": self.action_skeleton,
            "rule-new-example": lambda: self._example_envelope(ask=True),
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
        for button in self.query("#rule-skeleton"):
            button.display = not is_in  # a skeleton is an OUT map
        shown = group_in if is_in else group_out
        if not shown.children:  # first time this direction is chosen: build its fields
            service, mailbox_uuid = self.service, self.mailbox.uuid
            shown.mount_all(
                in_fields(self.initial, service, mailbox_uuid, self.templates)
                if is_in
                else out_fields(self.initial, service, mailbox_uuid)
            )

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
        """Validate every field of the chosen direction; store only what a Run proved.

        ``leaving`` (quit): stay on the screen after saving instead of going back to the page.
        """
        form = self.current_form()
        errors = self.errors_of(form)
        if errors:
            self.show_save_errors(errors)
            return False
        if not self.can_save:
            self._render_save_state()
            self.say(
                f"Run the rule ({key_label(self.app, 'rule.run')}) first: Save is enabled once "
                "a run of the form as it is now succeeded.",
                title="Nothing saved",
                severity="warning",
            )
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
        self.trusted_key = run_key(saved.form)
        self.say(f"Rule '{saved.name}' saved.", title="Saved")
        if not leaving:
            self.dismiss(RuleFormResult(rule_uuid=saved.uuid))
        return True

    # -- Run, examples, skeleton ----------------------------------------------------------------

    def _example_envelope(self, initial: bool = False, ask: bool = False) -> None:
        """IN: the example envelope follows the template version (see ExampleEnvelope)."""
        form = self.current_form()
        example = next(iter(self.query(ExampleEnvelope)), None)
        if example is not None and form.direction is Direction.IN:
            example.fill(form.template_uuid, form.template_version, initial=initial, ask=ask)

    @on(ExampleEnvelope.Generated)
    def _example_generated(self, event: ExampleEnvelope.Generated) -> None:
        if event.initial and self.baseline is not None and not self.baseline.example_source:
            # A stored rule without an example: the generated one is how it opens.
            self.baseline = replace(self.baseline, example_source=event.text.encode("utf-8"))
            if self.trusted_key is not None:
                self.trusted_key = run_key(self.baseline)
            self.refresh_form()
