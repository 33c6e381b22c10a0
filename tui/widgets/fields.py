"""Form building blocks shared by the Integrations page and the rule form.

Fields carry the key of the form field they edit; the form (``tui.forms.FormScreen``) validates
the whole form once per change and tells each field and its ``FieldError`` what to show. Textual's
own per-input validators are not used: they validate on blur, which flagged fields the user had
not typed in yet.
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.containers import Horizontal
from textual.geometry import Size
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Static, TextArea

from tui.keys import bindings

LABEL_WIDTH = 18


async def handle_own_binding(widget: Widget, event: events.Key) -> bool:
    """Run the widget's own editing binding (backspace, left, ctrl+u, ...) where it stands in
    the key queue. Textual runs bindings when the key has bubbled up to the app, after the
    characters typed behind it were already inserted, so bunched keys were applied out of
    order (Textualize/textual#6605)."""
    if event.is_printable:
        return False
    for binding in widget._bindings.key_to_bindings.get(event.key, ()):
        if binding.priority:
            continue
        if await widget.app.run_action(binding.action, widget):
            event.stop()
            event.prevent_default()
            return True
    return False


class FormField:
    """What every form field does: blink as the app says, and keep bunched keys in order."""

    app: Any
    cursor_blink: Any

    def on_mount(self) -> None:
        self.cursor_blink = getattr(self.app, "cursor_blink", True)

    async def _on_key(self, event: events.Key) -> None:
        # Handled here, the event's default is prevented and the widget's own key handler
        # (next in Textual's dispatch along the class hierarchy) does not run.
        await handle_own_binding(self, event)  # type: ignore[arg-type]


class FormInput(FormField, Input):
    """A one-line input tied to a form field key."""

    def __init__(
        self,
        key: str,
        value: str = "",
        *,
        placeholder: str = "",
        id: str | None = None,
        tooltip: str | None = None,
    ) -> None:
        super().__init__(value, placeholder=placeholder, id=id, tooltip=tooltip, compact=True)
        self.field_key = key


class FormTextArea(FormField, TextArea):
    """A multi-line field tied to a form field key (long texts such as a reject reason)."""

    def __init__(
        self, key: str, text: str = "", *, placeholder: str = "", id: str | None = None
    ) -> None:
        super().__init__(
            text,
            id=id,
            soft_wrap=True,
            show_line_numbers=False,
            compact=True,
            placeholder=placeholder,
        )
        self.field_key = key

    @property
    def value(self) -> str:
        return self.text


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
        message = message or ""
        if message == self.message:
            return  # typing must not re-lay out the page when nothing changed
        self.message = message
        self.update(Text(f"✗ {message}") if message else "")
        self.set_class(bool(message), "-shown")


class FieldRow(Horizontal):
    """``Label  widget`` on one line."""

    DEFAULT_CSS = f"""
    FieldRow {{ height: auto; }}
    FieldRow > Label.field-label {{ width: {LABEL_WIDTH}; padding-right: 1; }}
    FieldRow > * {{ width: 1fr; }}
    """

    def __init__(self, label: str, *children: Widget, id: str | None = None) -> None:
        super().__init__(Label(label, classes="field-label"), *children, id=id)


class CopyRow(Widget, can_focus=True):
    """A read-only value the user can copy with enter; it stays visible and selectable.

    One widget that renders its own lines (a page has many of these, and each child widget
    costs start-up time). A value too long for the space beside its label moves to its own
    lines under it, so a URL or a fingerprint is never broken into the label column.
    """

    DEFAULT_CSS = """
    CopyRow { height: auto; width: 1fr; }
    CopyRow:focus { background: $accent 25%; }
    """

    BINDINGS = bindings("field.copy")

    class Activated(Message):
        """Enter on the row (copy it, or the row's own action such as export)."""

        def __init__(self, row: CopyRow) -> None:
            super().__init__()
            self.row = row

        @property
        def control(self) -> CopyRow:
            return self.row

    def __init__(self, label: str, name: str, hint: str = "", id: str | None = None):
        super().__init__(id=id)
        self.label_text = label
        self.field_name = name
        self.hint = hint
        self.value_text: Text = Text("")

    def set_value(self, value: str | Text, hint: str | None = None) -> None:
        self.value_text = value if isinstance(value, Text) else Text(value)
        if hint is not None:
            self.hint = hint
        self.refresh(layout=True)

    def stacked(self, width: int) -> bool:
        """Whether the value goes under the label at this width."""
        longest = max((cell_len(line.plain) for line in self.value_text.split("\n")), default=0)
        hint = cell_len(self.hint) + 1 if self.hint else 0
        return LABEL_WIDTH + longest + hint > width

    def lines(self, width: int) -> list[Text]:
        width = max(width, LABEL_WIDTH + 4)
        label = Text(self.label_text.ljust(LABEL_WIDTH)[:LABEL_WIDTH])
        if self.has_focus:
            label.stylize("bold reverse", 0, len(self.label_text))
        hint = Text(self.hint, style="bold" if self.has_focus else "dim")
        values = self.value_text.split("\n")
        if not self.stacked(width):
            first = label + values[0]
            first.pad_right(width - first.cell_len - hint.cell_len)
            return [first + hint] + [Text(" " * LABEL_WIDTH) + line for line in values[1:]]
        head = label.copy()
        head.pad_right(width - head.cell_len - hint.cell_len)
        folded = [
            Text("  ") + part
            for line in values
            for part in line.divide(range(width - 2, max(line.cell_len, 1), width - 2))
        ]
        return [head + hint, *folded]

    def render(self) -> Text:
        return Text("\n").join(self.lines(self.size.width))

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.lines(width))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def action_activate(self) -> None:
        self.post_message(self.Activated(self))
