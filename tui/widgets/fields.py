"""Form building blocks shared by the Integrations page and the rule form."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.validation import ValidationResult, Validator
from textual.widget import Widget
from textual.widgets import Input, Label, Static

ErrorLookup = Callable[[str, str], str | None]
"""(field key, the input's value) -> the field's error message, or None."""


class FieldValidator(Validator):
    """Asks the form that owns the input; the form knows the rules across fields."""

    def __init__(self, key: str, lookup: ErrorLookup) -> None:
        super().__init__()
        self.key = key
        self.lookup = lookup

    def validate(self, value: str) -> ValidationResult:
        message = self.lookup(self.key, value)
        return self.failure(message) if message else self.success()


class FormInput(Input):
    """An input tied to a form field key, validated by the form's own rules."""

    def __init__(
        self,
        key: str,
        lookup: ErrorLookup,
        value: str = "",
        *,
        placeholder: str = "",
        password: bool = False,
        id: str | None = None,
        tooltip: str | None = None,
    ) -> None:
        super().__init__(
            value,
            placeholder=placeholder,
            password=password,
            validators=[FieldValidator(key, lookup)],
            id=id,
            tooltip=tooltip,
            compact=True,
        )
        self.field_key = key

    def on_mount(self) -> None:
        self.cursor_blink = getattr(self.app, "cursor_blink", True)

    def clear_validation(self) -> None:
        """Forget the look of a validation run (after the form was filled from the store)."""
        self.remove_class("-invalid", "-valid")


class FieldError(Static):
    """The message under a field; empty (and hidden) when the field is fine."""

    DEFAULT_CSS = """
    FieldError { display: none; height: auto; }
    FieldError.-shown { display: block; }
    """

    def __init__(self, key: str, id: str | None = None) -> None:
        super().__init__("", id=id, classes="field-error")
        self.field_key = key
        self.message = ""

    def show(self, message: str | None) -> None:
        self.message = message or ""
        self.update(Text(f"✗ {self.message}") if self.message else "")
        self.set_class(bool(self.message), "-shown")


class FieldRow(Horizontal):
    """``Label  widget`` on one line."""

    DEFAULT_CSS = """
    FieldRow { height: auto; }
    FieldRow > Label.field-label { width: 18; padding-right: 1; }
    FieldRow > * { width: 1fr; }
    """

    def __init__(self, label: str, *children: Widget, id: str | None = None) -> None:
        super().__init__(Label(label, classes="field-label"), *children, id=id)


class CopyRow(Widget, can_focus=True):
    """A read-only value the user can copy with enter (or ``c``); it stays visible."""

    DEFAULT_CSS = """
    CopyRow { height: auto; width: 1fr; layout: horizontal; }
    CopyRow > .copy-label { width: 18; padding-right: 1; }
    CopyRow > .copy-value { width: 1fr; }
    CopyRow > .copy-hint { width: auto; color: $text-muted; }
    CopyRow:focus > .copy-label { text-style: bold reverse; }
    """

    BINDINGS = [
        Binding(
            "enter,c",
            "copy",
            "Copy",
            id="field.copy",
            tooltip="Copy this value (OSC 52 and the local clipboard)",
        ),
        Binding("down", "app.focus_next", "Next", show=False, id="field.next"),
        Binding("up", "app.focus_previous", "Previous", show=False, id="field.previous"),
    ]

    class CopyRequested(Message):
        def __init__(self, row: CopyRow) -> None:
            super().__init__()
            self.row = row

    def __init__(self, label: str, name: str, hint: str = "enter: copy", id: str | None = None):
        super().__init__(id=id)
        self.label_text = label
        self.field_name = name
        self.hint = hint
        self.value_text: Text = Text("")

    def compose(self) -> ComposeResult:
        yield Static(Text(self.label_text), classes="copy-label")
        yield Static(self.value_text, classes="copy-value")
        yield Static(Text(self.hint), classes="copy-hint")

    def set_value(self, value: str | Text, hint: str | None = None) -> None:
        self.value_text = value if isinstance(value, Text) else Text(value)
        if self.is_mounted:
            self.query_one(".copy-value", Static).update(self.value_text)
        if hint is not None:
            self.hint = hint
            if self.is_mounted:
                self.query_one(".copy-hint", Static).update(Text(hint))

    def action_copy(self) -> None:
        self.post_message(self.CopyRequested(self))
