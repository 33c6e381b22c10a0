"""The example an OUT rule runs on: a file loaded by path (with completion) or picked from the
mailbox's coutbox/, error/ or recent conversions, and its XML view (what the map reads).

The widget holds the loaded bytes and tells the form with ``Loaded``; reading files and listing
folders happen in threads through the core service, never on the event loop.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Select, Static, TextArea

from core.errors import DocbridgeError
from core.models import ConversionFilter, Direction
from tui.errors import guarded
from tui.widgets.fields import FieldRow, FormInput

if TYPE_CHECKING:
    from core.service import Service

PICK_PROMPT = "pick from coutbox/, error/ or recent conversions"
RECENT_LIMIT = 20


def xml_language() -> str | None:
    """ "xml" when Textual's tree-sitter and its XML grammar are installed, else plain text
    (Textual raises for a language it cannot load, so ask first)."""
    from textual._tree_sitter import TREE_SITTER, get_language

    return "xml" if TREE_SITTER and get_language("xml") is not None else None


def indent_xml(text: str) -> str:
    """XML shown indented, one element a line (views and outputs are often one long line);
    the text as it is when it does not parse. Blocking for large texts: call it in a thread."""
    from lxml import etree

    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=True
    )
    try:
        root = etree.fromstring(text.encode("utf-8"), parser)
    except (etree.XMLSyntaxError, ValueError):
        return text
    etree.indent(root, space="  ")
    return str(etree.tostring(root, encoding="unicode"))


def _complete(value: str) -> str | None:
    """The first entry of the folder ``value`` points into that starts with what follows the
    last ``/`` (blocking: runs in a thread)."""
    folder, _, prefix = value.rpartition("/")
    base = Path(os.path.expanduser(folder + "/" if folder or value.startswith("/") else "."))
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return None
    for name in names:
        if name.startswith(prefix) and name != prefix and (prefix or not name.startswith(".")):
            slash = "/" if (base / name).is_dir() else ""
            return f"{folder}/{name}{slash}" if folder or value.startswith("/") else name + slash
    return None


class PathSuggester(Suggester):
    """Completes a path from the directory listing (→ or end accepts the suggestion)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        return await asyncio.to_thread(_complete, value)


def _folder_files(mailboxes_dir: Path, mailbox_uuid: str) -> list[tuple[str, str]]:
    """(label, path) of the files in coutbox/ and error/ (not the .error.txt notes)."""
    found: list[tuple[str, str]] = []
    for folder in ("coutbox", "error"):
        directory = mailboxes_dir / mailbox_uuid / folder
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith(".error.txt") or entry.name.startswith("."):
                continue
            if entry.is_file():
                found.append((f"{folder}/{entry.name}", str(entry)))
    return found


@dataclass
class Example:
    name: str
    data: bytes


class ExampleSource(Vertical):
    """Path input with completion, a picker, and the read-only XML view of what was loaded."""

    DEFAULT_CSS = """
    ExampleSource { height: auto; }
    ExampleSource #rule-source_view { height: 8; }
    ExampleSource #rule-source_details { height: auto; color: $text-muted; }
    ExampleSource #rule-example-error { height: auto; display: none; }
    """

    class Loaded(Message):
        """A new example was loaded (the form re-checks whether Save still holds)."""

    def __init__(self, service: Service, mailbox_uuid: str, name: str, data: bytes) -> None:
        super().__init__(id="rule-example")
        self.service = service
        self.mailbox_uuid = mailbox_uuid
        self.example = Example(name, data)
        # Built now, not in compose: the form reads the typed path before this is mounted.
        self.path_input = FormInput(
            "example_source",
            name,
            id="rule-example_source",
            placeholder="path of an example file (→ completes, enter loads)",
        )
        self.path_input.suggester = PathSuggester()

    def compose(self) -> ComposeResult:
        yield FieldRow("Example source", self.path_input)
        # Not a FieldError: the form clears those from its own field checks on every edit.
        yield Static(id="rule-example-error", classes="field-error")
        yield FieldRow(
            "",
            Select[str]([], prompt=PICK_PROMPT, id="rule-example_pick", compact=True),
        )
        yield Static(id="rule-source_details")
        yield TextArea(
            "",
            id="rule-source_view",
            read_only=True,
            soft_wrap=False,
            language=xml_language(),
            compact=True,
        )

    def on_mount(self) -> None:
        self.query_one("#rule-source_view", TextArea).cursor_blink = False
        self.refresh_choices()
        self.show_view()

    # -- what the form reads -------------------------------------------------------------------

    @property
    def typed_name(self) -> str:
        return self.path_input.value.strip()

    @property
    def needs_loading(self) -> bool:
        """The path typed is not the example held (Run loads it first)."""
        return self.typed_name != self.example.name

    # -- loading -------------------------------------------------------------------------------

    @on(FormInput.Submitted, "#rule-example_source")
    def _submitted(self, event: FormInput.Submitted) -> None:
        event.stop()
        self.load_typed()

    def load_typed(self) -> None:
        self._load_worker()

    @work(group="example-load", exclusive=True, exit_on_error=False)
    @guarded
    async def _load_worker(self) -> None:
        await self.load_path()

    async def load_path(self) -> str | None:
        """Read the typed path: None when loaded, else why not (shown under the field; the
        old example stays)."""
        name = self.typed_name
        if not name:
            self.example = Example("", b"")
            self._show_error(None)
            await self._loaded()
            return None
        try:
            data = await self.service.read_example_source(name)
        except DocbridgeError as exc:
            self._show_error(str(exc))
            return str(exc)
        self._show_error(None)
        self.example = Example(name, data)
        await self._loaded()
        return None

    def _show_error(self, message: str | None) -> None:
        error = self.query_one("#rule-example-error", Static)
        error.update(Text(f"✗ {message}") if message else "")
        error.display = bool(message)

    @on(Select.Changed, "#rule-example_pick")
    def _picked(self, event: Select.Changed) -> None:
        event.stop()
        value = event.value
        if isinstance(value, str):
            self._pick_worker(value)

    @work(group="example-load", exclusive=True, exit_on_error=False)
    @guarded
    async def _pick_worker(self, value: str) -> None:
        kind, _, ref = value.partition(":")
        if kind == "file":
            self.path_input.value = ref
            await self.load_path()
            return
        payload = await self.service.conversions.payload(int(ref))
        if payload is None or not payload.input:
            self.app.notify(
                "That conversion's input was not kept.", title="Example", severity="warning"
            )
            return
        self.example = Example(payload.input_name, payload.input)
        self.path_input.value = payload.input_name
        self._show_error(None)
        await self._loaded()

    async def _loaded(self) -> None:
        self.post_message(self.Loaded())
        await self._show_view()

    def show_view(self) -> None:
        self._view_worker()

    @work(group="example-view", exclusive=True, exit_on_error=False)
    @guarded
    async def _view_worker(self) -> None:
        await self._show_view()

    async def _show_view(self) -> None:
        details = self.query_one("#rule-source_details", Static)
        view = self.query_one("#rule-source_view", TextArea)
        example = self.example
        if not example.data:
            details.update(Text("No example loaded yet: Run needs one.", style="dim"))
            view.load_text("")
            view.display = False
            return
        try:
            shown = await self.service.conversions.view_source(example.data, example.name)
        except DocbridgeError as exc:
            details.update(Text(f"✗ {exc}", style="bold red"))
            view.display = False
            return
        details.update(Text(f"XML view the map reads: {shown.details}"))
        text = shown.xml.decode("utf-8", errors="replace")
        view.load_text(await asyncio.to_thread(indent_xml, text))
        view.display = True

    # -- the picker ----------------------------------------------------------------------------

    def refresh_choices(self) -> None:
        self._choices_worker()

    @on(events.DescendantFocus)
    def _focused(self, event: events.DescendantFocus) -> None:
        if event.widget.id == "rule-example_pick":
            self.refresh_choices()  # files come and go while the form is open

    @work(group="example-choices", exclusive=True, exit_on_error=False)
    @guarded
    async def _choices_worker(self) -> None:
        files = await asyncio.to_thread(
            _folder_files, self.service.config.mailboxes_dir, self.mailbox_uuid
        )
        options: list[tuple[Text, str]] = [(Text(label), f"file:{path}") for label, path in files]
        try:
            records = await self.service.conversions.records(
                ConversionFilter(mailbox_uuid=self.mailbox_uuid, limit=RECENT_LIMIT)
            )
        except DocbridgeError:
            records = []
        for record in records:
            if record.direction is Direction.OUT and record.input_size:
                label = f"recent: {record.file_name.rpartition('/')[2]} ({record.at[:16]})"
                options.append((Text(label), f"conversion:{record.id}"))
        picker = self.query_one("#rule-example_pick", Select)
        with self.prevent(Select.Changed):
            picker.set_options(options)
