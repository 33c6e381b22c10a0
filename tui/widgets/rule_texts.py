"""The rule form's two XML editors: the conversion map (with Generate skeleton for OUT rules)
and the IN rule's example envelope (generated from the template version, editable).

Both replace their text through the editor's own edit (ctrl+z brings the old text back) and ask
before replacing text the user wrote. The core builds skeletons and examples; these widgets only
show them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Static, TextArea

from core.models import Template
from tui.errors import run_guarded
from tui.modals.confirm import ConfirmModal
from tui.widgets.example_source import xml_language
from tui.widgets.fields import FieldError

if TYPE_CHECKING:
    from core.service import Service


def replace_all(area: TextArea, text: str) -> None:
    """Replace the editor's text as one edit the user can undo, shown from its first line."""
    area.replace(text, area.document.start, area.document.end)
    area.move_cursor((0, 0))
    area.scroll_home(animate=False)


class MapEditor(Vertical):
    """The conversion map (XSLT) with XML highlighting when Textual's tree-sitter has it."""

    DEFAULT_CSS = """
    MapEditor { height: auto; }
    """

    def __init__(self, service: Service, text: str) -> None:
        super().__init__(id="rule-map")
        self.service = service
        self.area = TextArea(
            text,
            id="rule-conversion_map",
            language=xml_language(),
            soft_wrap=False,
            show_line_numbers=True,
        )

    def on_mount(self) -> None:
        self.area.cursor_blink = getattr(self.app, "cursor_blink", True)

    def compose(self) -> ComposeResult:
        with Horizontal(classes="title-row"):
            yield Static(Text("Conversion map (XSLT)"), classes="field-title")
            yield Button("Generate skeleton", id="rule-skeleton", compact=True)
        yield self.area
        yield FieldError("conversion_map", id="err-conversion_map")

    def write_skeleton(self, template_uuid: str, version: int | None) -> None:
        """The platform's magic wand: a map filling every field of the template version;
        asks before replacing a map already written."""

        async def write() -> None:
            replace_all(self.area, await self.service.conversions.skeleton(template_uuid, version))

        def answered(yes: bool | None) -> None:
            if yes:
                run_guarded(self, write(), group="rule-skeleton")

        if not self.area.text.strip():
            answered(True)
            return
        self.app.push_screen(
            ConfirmModal(
                "Replace the conversion map with a skeleton?",
                "The map written so far is replaced (ctrl+z in the editor brings it back).",
                "Replace",
            ),
            answered,
        )


class ExampleEnvelope(Vertical):
    """IN: the envelope a Run converts. Generated from the template version when there is
    none, again when the template changes and it was not edited; "New example" asks first
    when it was."""

    DEFAULT_CSS = """
    ExampleEnvelope { height: auto; }
    ExampleEnvelope #rule-example_envelope { height: 10; }
    """

    class Generated(Message):
        def __init__(self, text: str, initial: bool) -> None:
            super().__init__()
            self.text = text
            self.initial = initial

    def __init__(
        self, service: Service, mailbox_uuid: str, templates: Mapping[str, Template], text: str
    ) -> None:
        super().__init__(id="rule-example-envelope")
        self.service = service
        self.mailbox_uuid = mailbox_uuid
        self.templates = templates
        self.generated: str | None = None  # the text as last generated
        self.area = TextArea(
            text, id="rule-example_envelope", language=xml_language(), soft_wrap=False
        )

    def compose(self) -> ComposeResult:
        with Horizontal(classes="title-row"):
            yield Static(
                Text("Example envelope (the Run's input; editable)"), classes="field-title"
            )
            yield Button("New example", id="rule-new-example", compact=True)
        yield self.area

    def on_mount(self) -> None:
        self.area.cursor_blink = getattr(self.app, "cursor_blink", True)

    @property
    def edited(self) -> bool:
        return bool(self.area.text.strip()) and self.area.text != self.generated

    def fill(
        self,
        template_uuid: str,
        version: int | None,
        *,
        initial: bool = False,
        ask: bool = False,
    ) -> None:
        """Generate unless the user wrote their own (``ask``: the New example button)."""
        if not template_uuid or (self.edited and not ask):
            return

        async def generate() -> None:
            text = await self._generate(template_uuid, version)
            if self.edited and not ask:
                return  # typed meanwhile
            self.generated = text
            replace_all(self.area, text)
            self.post_message(self.Generated(text, initial))

        def answered(yes: bool | None) -> None:
            if yes:
                run_guarded(self, generate(), group="rule-example")

        if not self.edited:
            answered(True)
            return
        question = "Replace the example envelope?"
        detail = "A new one is generated from the template version's fields."
        self.app.push_screen(ConfirmModal(question, detail, "Replace"), answered)

    async def _generate(self, template_uuid: str, version: int | None) -> str:
        return await self.service.conversions.example_envelope(
            self.mailbox_uuid, template_uuid, version
        )
