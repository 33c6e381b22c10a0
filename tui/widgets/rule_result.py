"""The Result of a Run in the rule form: the envelopes an OUT rule made, the file an IN rule
writes (with the name its naming pattern gives), or the error with its line."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static, TextArea

from core.models import Direction, RuleForm, RunResult
from tui.subprocesses import prepare_worker_processes
from tui.widgets.example_source import ExampleSource, indent_xml, xml_language

if TYPE_CHECKING:
    from core.service import Service


def readable_text(result: RunResult) -> str:
    """The result's text to show: each envelope indented (the map's output is often one long
    line). Blocking for large outputs: call it in a thread."""
    if result.direction is not Direction.OUT or not result.envelopes:
        return result.text
    return "\n\n".join(indent_xml(envelope) for envelope in result.envelopes)


class RuleResult(Vertical):
    """Hidden until the first Run; then "Running…", and what the run gave."""

    DEFAULT_CSS = """
    RuleResult { height: auto; display: none; }
    RuleResult.-shown { display: block; }
    RuleResult #rule-result-status { height: auto; }
    RuleResult #rule-result-status.-error { color: $text-error; }
    RuleResult #rule-result-text { height: auto; max-height: 14; }
    """

    def __init__(self, service: Service) -> None:
        super().__init__(id="rule-result", classes="block")
        self.border_title = "Result"
        self.service = service
        self.result: RunResult | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="rule-result-status")
        yield TextArea("", id="rule-result-text", read_only=True, soft_wrap=False, compact=True)

    def on_mount(self) -> None:
        self.query_one(TextArea).cursor_blink = False

    @property
    def status_text(self) -> str:
        return str(self.query_one("#rule-result-status", Static).render())

    @property
    def output_text(self) -> str:
        return self.query_one("#rule-result-text", TextArea).text

    async def run(
        self,
        mailbox_uuid: str,
        read_form: Callable[[], RuleForm],
        source: ExampleSource | None,
    ) -> tuple[RuleForm, RunResult]:
        """Run the form as it is (an OUT example path typed but not loaded yet is read first)
        and show what it gave; returns the form that ran and its result."""
        self.running()
        form = read_form()
        if form.direction is Direction.OUT and source is not None and source.needs_loading:
            problem = await source.load_path()
            if problem is not None:
                message = f"Could not read the example source: {problem}"
                result = RunResult(False, form.direction, error=message)
                self.show(result)
                return form, result
            form = read_form()
        await prepare_worker_processes()
        result = await self.service.conversions.run(mailbox_uuid, form)
        self.show(result, await asyncio.to_thread(readable_text, result))
        return form, result

    def running(self) -> None:
        self.add_class("-shown")
        status = self.query_one("#rule-result-status", Static)
        status.remove_class("-error")
        status.update(Text("Running…", style="bold"))

    def mark_stale(self, stale: bool) -> None:
        """Whether the form changed since this result (the result itself stays readable)."""
        if self.result is not None:
            heading = self._heading(self.result)
            if stale:
                heading.append("  (the form changed since: Run again)", style="dim")
            self.query_one("#rule-result-status", Static).update(heading)

    def show(self, result: RunResult, text: str | None = None) -> None:
        self.result = result
        self.add_class("-shown")
        status = self.query_one("#rule-result-status", Static)
        area = self.query_one("#rule-result-text", TextArea)
        status.set_class(not result.ok, "-error")
        status.update(self._heading(result))
        if not result.ok:
            area.display = False
            area.load_text("")
            return
        area.display = True
        area.language = xml_language() if result.direction is Direction.OUT else None
        area.load_text(result.text if text is None else text)
        area.scroll_home(animate=False)

    @staticmethod
    def _heading(result: RunResult) -> Text:
        if not result.ok:
            said = result.line is None or f"line {result.line}" in result.error
            where = "" if said else f" at line {result.line}"
            return Text(f"✗ Run failed{where}: {result.error}")
        heading = Text("✓ ", style="bold")
        if result.direction is Direction.IN:
            heading.append("File name: ", style="bold")
            heading.append(result.file_name)
            return heading
        count = len(result.envelopes)
        heading.append(f"{count} envelope{'s' if count != 1 else ''}", style="bold")
        if result.source_details:
            heading.append(f"  from {result.source_details}")
        return heading
