"""The conversion rule form (SPEC §7): every field, validated, with Save / Clone / Delete / Back.

Run and Result come with the conversion engine; until then Save validates the fields only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Footer, Input, Select, Static, TextArea

from core.errors import DocbridgeError, FieldErrors, InvalidInput
from core.models import ConversionRule, Direction, Mailbox, MatchTarget, RuleForm, Template
from core.rules import validate_rule_form
from tui.modals.choice import SaveDiscardCancelModal
from tui.modals.confirm import ConfirmModal
from tui.modals.error import ErrorModal
from tui.widgets.fields import FieldError, FieldRow, FormInput
from tui.widgets.marks import MarkedCheckbox

if TYPE_CHECKING:
    from core.service import Service

LATEST = "latest"
MAX_EXAMPLE_BYTES = 10 * 1024 * 1024
FIELD_LABELS = {
    "name": "Name",
    "template_uuid": "Template",
    "template_version": "Version",
    "match_pattern": "Matching pattern",
    "naming_pattern": "Naming pattern",
    "conversion_map": "Conversion map",
    "example_source": "Example source file",
}
NAMING_HELP = (
    "Variables: {mailboxUuid} {envelopeUuid} {randomNumber} {templateUuid} {date yyyy-MM-dd} "
    '{"documentId":"fieldName"}.  Not allowed: \\ / : ? * < > |'
)


@dataclass(frozen=True)
class RuleFormResult:
    """How the form was left: the rule to select afterwards, or a clone to open next."""

    rule_uuid: str | None = None
    clone: RuleForm | None = None


def read_example(name: str) -> bytes:
    path = Path(name).expanduser()
    try:
        size = path.stat().st_size
        if size > MAX_EXAMPLE_BYTES:
            raise InvalidInput(
                f"{path} is larger than {MAX_EXAMPLE_BYTES // (1024 * 1024)} MB.",
                "Use a smaller, typical example file.",
            )
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InvalidInput(f"There is no file at {path}.", "Check the path.") from exc
    except IsADirectoryError as exc:
        raise InvalidInput(f"{path} is a directory.", "Give the path of a file.") from exc
    except OSError as exc:
        raise InvalidInput(
            f"{path} cannot be read ({exc.strerror or exc}).", "Check the path and permissions."
        ) from exc


class RuleFormScreen(Screen[RuleFormResult | None]):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="rule.save", tooltip="Validate and save the rule"),
        Binding("f5", "clone", "Clone", id="rule.clone", tooltip="Open an unsaved copy"),
        Binding("f8", "delete", "Delete", id="rule.delete", tooltip="Delete the rule (asks)"),
        Binding("escape", "back", "Back", id="rule.back", tooltip="Back to the page (asks)"),
    ]

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
        self.touched: set[str] = set()
        self.show_all_errors = False
        self.loaded = False

    def say(self, message: str, *, title: str = "", severity: Any = "information") -> None:
        self.app.notify(message, title=title, severity=severity, markup=False)

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        lookup = self.field_error
        form = self.initial
        template_options: list[tuple[Text, str]] = [
            (Text(t.name), t.uuid) for t in self.templates.values()
        ]
        if form.template_uuid and form.template_uuid not in self.templates:
            unknown = Text(f"unknown template {form.template_uuid}")
            template_options.append((unknown, form.template_uuid))
        yield Static(id="rule-header")
        with VerticalScroll(id="rule-page"):
            with Vertical(classes="block", id="rule-fields") as block:
                block.border_title = "Conversion rule"
                yield FieldRow("Name", FormInput("name", lookup, form.name, id="rule-name"))
                yield FieldError("name", id="err-name")
                yield FieldRow(
                    "State",
                    MarkedCheckbox("Rule is on", form.enabled, id="rule-enabled", compact=True),
                )
                yield FieldRow(
                    "Direction",
                    Select[str](
                        [
                            ("IN  - In (My incoming envelopes)", Direction.IN.value),
                            ("OUT - Out (Envelopes I sent)", Direction.OUT.value),
                        ],
                        value=form.direction.value,
                        allow_blank=False,
                        id="rule-direction",
                        compact=True,
                    ),
                )
                yield FieldRow(
                    "Template",
                    Select[str](
                        template_options,
                        value=form.template_uuid if form.template_uuid else Select.NULL,
                        allow_blank=True,
                        prompt="choose a template",
                        id="rule-template",
                        compact=True,
                    ),
                )
                yield FieldError("template_uuid", id="err-template_uuid")
                yield FieldRow(
                    "Version",
                    Select[str](
                        self._version_options(form.template_uuid, form.template_version),
                        value=str(form.template_version) if form.template_version else LATEST,
                        allow_blank=False,
                        id="rule-version",
                        compact=True,
                    ),
                )
                yield FieldError("template_version", id="err-template_version")
                with Vertical(id="rule-in"):
                    yield FieldRow(
                        "Naming pattern",
                        FormInput(
                            "naming_pattern",
                            lookup,
                            form.naming_pattern,
                            id="rule-naming_pattern",
                            placeholder="e.g. {date yyyy-MM-dd}_{envelopeUuid}.xml",
                        ),
                    )
                    yield Static(Text(NAMING_HELP, style="dim"), classes="under-field")
                    yield FieldError("naming_pattern", id="err-naming_pattern")
                with Vertical(id="rule-out"):
                    yield FieldRow(
                        "Matching pattern",
                        FormInput(
                            "match_pattern",
                            lookup,
                            form.match_pattern,
                            id="rule-match_pattern",
                            placeholder=r"regular expression, e.g. ^orders_.*\.csv$",
                        ),
                    )
                    yield FieldError("match_pattern", id="err-match_pattern")
                    yield FieldRow(
                        "Match in",
                        Select[str](
                            [
                                ("file name", MatchTarget.NAME.value),
                                ("file content", MatchTarget.CONTENT.value),
                            ],
                            value=form.match_target.value,
                            allow_blank=False,
                            id="rule-match_target",
                            compact=True,
                        ),
                    )
                    yield FieldRow(
                        "Example source",
                        FormInput(
                            "example_source",
                            lookup,
                            form.example_source_name,
                            id="rule-example_source",
                            placeholder="path of an example file (optional)",
                        ),
                    )
                    yield FieldError("example_source", id="err-example_source")
                    yield FieldRow(
                        "Envelopes",
                        MarkedCheckbox(
                            "Rule can produce multiple envelopes",
                            form.multiple_envelopes,
                            id="rule-multiple",
                            compact=True,
                        ),
                    )
                yield Static(Text("Conversion map (XSLT)"), classes="field-title")
                yield TextArea(
                    form.conversion_map, id="rule-conversion_map", language=None, soft_wrap=False
                )
                yield FieldError("conversion_map", id="err-conversion_map")
                yield Static(
                    Text(
                        "Run and Result arrive with the conversion engine; Save checks the "
                        "fields only.",
                        style="dim",
                    ),
                    classes="under-field",
                )
            yield Static(id="rule-summary")
            with Horizontal(classes="form-buttons"):
                yield Button("Save (ctrl+s)", id="rule-save", variant="primary", compact=True)
                yield Button("Clone (F5)", id="rule-clone", compact=True)
                yield Button("Delete (F8)", id="rule-delete", variant="error", compact=True)
                yield Button("Back (esc)", id="rule-back", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TextArea).cursor_blink = getattr(self.app, "cursor_blink", True)
        self.loaded = True
        if not self.is_clone:
            self.baseline = self.current_form()
        self._render_direction()
        self._refresh()
        self.query_one("#rule-name", Input).focus()

    def _version_options(self, template_uuid: str, current: int | None) -> list[tuple[str, str]]:
        template = self.templates.get(template_uuid)
        versions = list(template.versions) if template else []
        if current is not None and current not in versions:
            versions.append(current)  # shown so the error next to it makes sense
        latest = f"latest ({template.latest_version})" if template else "latest"
        return [(latest, LATEST)] + [(f"version {v}", str(v)) for v in sorted(versions)]

    # -- reading the form -----------------------------------------------------------------------

    def _value(self, widget_id: str) -> str:
        value = self.query_one(f"#{widget_id}", Select).value
        return value if isinstance(value, str) else ""

    def current_form(self, override: tuple[str, str] | None = None) -> RuleForm:
        values = {
            key: self.query_one(f"#rule-{key}", Input).value
            for key in ("name", "naming_pattern", "match_pattern", "example_source")
        }
        if override is not None:
            values[override[0]] = override[1]
        version = self._value("rule-version")
        example_name = values["example_source"].strip()
        return replace(
            self.initial,
            name=values["name"],
            enabled=self.query_one("#rule-enabled", Checkbox).value,
            direction=Direction(self._value("rule-direction") or Direction.IN.value),
            template_uuid=self._value("rule-template"),
            template_version=int(version) if version and version != LATEST else None,
            naming_pattern=values["naming_pattern"],
            match_pattern=values["match_pattern"],
            match_target=MatchTarget(self._value("rule-match_target") or MatchTarget.NAME.value),
            example_source_name=example_name,
            example_source=self.example_source,
            multiple_envelopes=self.query_one("#rule-multiple", Checkbox).value,
            conversion_map=self.query_one("#rule-conversion_map", TextArea).text,
        )

    def errors_of(self, form: RuleForm) -> dict[str, str]:
        errors = validate_rule_form(form, self.templates.get(form.template_uuid))
        # Only the fields of the chosen direction are saved and checked.
        if form.direction is Direction.IN:
            errors.pop("match_pattern", None)
        else:
            errors.pop("naming_pattern", None)
        return errors

    def field_error(self, key: str, value: str) -> str | None:
        if not self.loaded:
            return None
        return self.errors_of(self.current_form(override=(key, value))).get(key)

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
        if isinstance(event.input, FormInput):
            self.touched.add(event.input.field_key)
        self._refresh()

    @on(TextArea.Changed)
    def _map_changed(self) -> None:
        self.touched.add("conversion_map")
        self._refresh()

    @on(Checkbox.Changed)
    def _checkbox_changed(self) -> None:
        self._refresh()

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "rule-template":
            self.touched.add("template_uuid")
            version = self.query_one("#rule-version", Select)
            with self.prevent(Select.Changed):
                version.set_options(self._version_options(self._value("rule-template"), None))
                version.value = LATEST
        if event.select.id == "rule-direction":
            self._render_direction()
        self._refresh()

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
        self.query_one("#rule-in").display = is_in
        self.query_one("#rule-out").display = not is_in

    def _refresh(self) -> None:
        if not self.loaded:
            return
        errors = self.errors_of(self.current_form())
        for widget in self.query(FieldError):
            key = widget.field_key
            if key == "example_source":
                continue  # checked when the file is read at Save
            shown = self.show_all_errors or key in self.touched
            widget.show(errors.get(key) if shown else None)
        if self.show_all_errors:
            self._render_summary(errors)
        header = Text()
        header.append("docbridge", style="bold")
        header.append("  mailbox: ")
        header.append(self.mailbox.name, style="bold")
        header.append("  rule: ")
        if self.rule is None:
            header.append("new (not saved yet)")
        else:
            header.append(self.rule.name)
        if self.dirty:
            header.append("  * unsaved changes", style="bold reverse")
        self.query_one("#rule-header", Static).update(header)

    def _render_summary(self, errors: dict[str, str]) -> None:
        summary = self.query_one("#rule-summary", Static)
        if not errors:
            summary.update("")
            return
        names = ", ".join(FIELD_LABELS.get(k, k) for k in errors)
        summary.update(Text(f"✗ {len(errors)} field(s) need attention: {names}. Nothing saved."))

    def _show_errors(self, errors: dict[str, str]) -> None:
        for widget in self.query(FieldError):
            widget.show(errors.get(widget.field_key))
        for widget in self.query(FormInput):
            widget.set_class(widget.field_key in errors, "-invalid")
        self._render_summary(errors)
        names = ", ".join(FIELD_LABELS.get(k, k) for k in errors)
        self.say(f"Fix: {names}.", title="Rule not saved", severity="error")
        targets = {
            "name": "#rule-name",
            "template_uuid": "#rule-template",
            "template_version": "#rule-version",
            "naming_pattern": "#rule-naming_pattern",
            "match_pattern": "#rule-match_pattern",
            "example_source": "#rule-example_source",
            "conversion_map": "#rule-conversion_map",
        }
        for key in targets:
            if key in errors:
                self.query_one(targets[key]).focus()
                break

    # -- actions --------------------------------------------------------------------------------

    def action_save(self) -> None:
        self.run_worker(self.save(), group="rule-save", exclusive=True, exit_on_error=False)

    async def save(self) -> bool:
        self.show_all_errors = True
        form = self.current_form()
        for widget in self.query(FormInput):
            if (
                widget.field_key not in ("naming_pattern", "match_pattern", "example_source")
                or (widget.field_key == "naming_pattern" and form.direction is Direction.IN)
                or (widget.field_key == "match_pattern" and form.direction is Direction.OUT)
            ):
                widget.validate(widget.value)
        errors = self.errors_of(form)
        new_example = form.example_source_name != self.initial.example_source_name
        if form.direction is Direction.OUT and new_example:
            if form.example_source_name:
                try:
                    data = await asyncio.to_thread(read_example, form.example_source_name)
                except DocbridgeError as exc:
                    errors["example_source"] = str(exc)
                else:
                    self.example_source = data
                    form = replace(form, example_source=data)
            else:
                self.example_source = b""
                form = replace(form, example_source=b"")
        if not errors:
            try:
                if self.rule is None:
                    saved = await self.service.create_rule(self.mailbox.uuid, form)
                else:
                    saved = await self.service.update_rule(self.rule.uuid, form)
            except FieldErrors as exc:
                errors = exc.errors
            except DocbridgeError as exc:
                self.app.push_screen(ErrorModal(exc.title, exc.hint))
                return False
            else:
                self.rule = saved
                self.initial = saved.form
                self.baseline = saved.form
                self.say(f"Rule '{saved.name}' saved.", title="Saved")
                self.dismiss(RuleFormResult(rule_uuid=saved.uuid))
                return True
        self._show_errors(errors)
        return False

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

    def action_clone(self) -> None:
        rule = self.rule
        if rule is None:
            self.say("Save the rule first; a clone is made from a saved rule.", severity="warning")
            return

        async def work() -> None:
            try:
                clone = await self.service.clone_rule(rule.uuid)
            except DocbridgeError as exc:
                self.app.push_screen(ErrorModal(exc.title, exc.hint))
                return
            if self.dirty:
                self.say("The clone copies the saved rule; unsaved edits here were left out.")
            self.dismiss(RuleFormResult(rule_uuid=rule.uuid, clone=clone))

        self.run_worker(work(), group="rule-clone", exclusive=True, exit_on_error=False)

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

        async def work() -> None:
            try:
                await self.service.delete_rule(rule.uuid)
            except DocbridgeError as exc:
                self.app.push_screen(ErrorModal(exc.title, exc.hint))
                return
            self.say(f"Rule '{rule.name}' deleted.", title="Deleted")
            self.dismiss(RuleFormResult())

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(work(), group="rule-delete", exclusive=True, exit_on_error=False)

        self.app.push_screen(
            ConfirmModal(f"Delete the rule '{rule.name}'?", "This cannot be undone.", "Delete"),
            answered,
        )

    def palette_commands(self) -> list[SystemCommand]:
        return [
            SystemCommand("Save rule", "Validate and save (ctrl+s)", self.action_save),
            SystemCommand("Clone rule", "Open an unsaved copy (F5)", self.action_clone),
            SystemCommand("Delete rule", "Asks first (F8)", self.action_delete),
            SystemCommand("Back", "To the Integrations page (escape)", self.action_back),
        ]

    def on_worker_state_changed(self, event: Any) -> None:
        from tui.app import report_worker_failure

        report_worker_failure(self.app, event)
