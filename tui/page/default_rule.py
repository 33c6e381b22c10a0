"""Block (4): what happens to incoming envelopes that match no conversion rule."""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import RadioButton, RadioSet, TextArea

from core.models import DEFAULT_RULE_LABELS, DefaultRule, IntegrationForm, PageState
from tui.page.block import FieldEdited, PageBlock
from tui.widgets.fields import FieldError, FieldRow, FormTextArea
from tui.widgets.marks import MarkedRadioButton

DEFAULT_RULE_ORDER = (DefaultRule.COPY, DefaultRule.NOTIFY, DefaultRule.REJECT)


class DefaultRuleBlock(PageBlock):
    NUMBER = 4
    TITLE = "Default rule"

    def compose(self) -> ComposeResult:
        with RadioSet(id="default-rule"):
            for number, rule in enumerate(DEFAULT_RULE_ORDER, start=1):
                yield MarkedRadioButton(
                    Text(f"{number}. {DEFAULT_RULE_LABELS[rule]}"), id=f"rule-{rule.value}"
                )
        # Up to 5,000 characters: an area that wraps, not a one-line input.
        yield FieldRow(
            "Reject reason",
            FormTextArea(
                "reject_reason",
                placeholder="5-5000 characters, carried by every rejected envelope (rule 3)",
                id="reject_reason",
            ),
        )
        yield FieldError("reject_reason", id="err-reject_reason")

    def fill(self, state: PageState) -> None:
        self.state = state
        form = state.integration.form
        with self.prevent(RadioSet.Changed, TextArea.Changed):
            self.query_one(f"#rule-{form.default_rule.value}", RadioButton).value = True
            self.query_one("#reject_reason", FormTextArea).load_text(form.reject_reason)
        self._render_reject_reason()

    @property
    def chosen(self) -> DefaultRule:
        pressed = self.query_one("#default-rule", RadioSet).pressed_index
        return DEFAULT_RULE_ORDER[pressed] if pressed >= 0 else DefaultRule.COPY

    def read(self, form: IntegrationForm) -> IntegrationForm:
        rule = self.chosen
        reason = self.query_one("#reject_reason", FormTextArea).text
        # The reason is kept only for rule 3: off it, it is not part of what Save stores.
        return replace(
            form, default_rule=rule, reject_reason=reason if rule is DefaultRule.REJECT else ""
        )

    def first_field(self) -> Widget:
        return self.query_one("#default-rule")

    def field_widget(self, key: str) -> Widget | None:
        if key == "reject_reason":
            return self.query_one("#reject_reason")
        if key == "default_rule":
            return self.query_one("#default-rule")
        return None

    def _render_reject_reason(self) -> None:
        self.query_one("#reject_reason", FormTextArea).disabled = (
            self.chosen is not DefaultRule.REJECT
        )

    @on(RadioSet.Changed)
    def _rule_changed(self, event: RadioSet.Changed) -> None:
        event.stop()
        self._render_reject_reason()
        self.post_message(FieldEdited(None))

    @on(TextArea.Changed)
    def _reason_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        self.post_message(FieldEdited("reject_reason"))
