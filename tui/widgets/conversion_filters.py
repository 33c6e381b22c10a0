"""The conversion log's filter bar: mailbox, rule, status and a keyword, in one line.

It owns its fields and their choices; the screen hears ``ConversionFilterBar.Changed`` with the
whole set of filters after each change (loading the choices changes nothing)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Select

from core.models import ConversionRule, ConversionStatus, Mailbox

NO_RULE = "none"  # the rule filter's choice for attempts no rule took


@dataclass(frozen=True)
class Filters:
    mailbox_uuid: str | None = None
    rule_uuid: str | None = None
    status: ConversionStatus | None = None
    keyword: str = ""

    @property
    def narrowing(self) -> bool:
        """More than a mailbox is chosen (the log is otherwise the mailbox's whole log)."""
        return replace(self, mailbox_uuid=None) != Filters()


class ConversionFilterBar(Horizontal):
    class Changed(Message):
        def __init__(self, filters: Filters) -> None:
            super().__init__()
            self.filters = filters

    def __init__(self, filters: Filters, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.filters = filters
        self.mailboxes: list[Mailbox] = []
        self.rules: dict[str, list[ConversionRule]] = {}  # by mailbox uuid

    def compose(self) -> ComposeResult:
        yield Select[str]([], prompt="All mailboxes", id="filter-mailbox", compact=True)
        yield Select[str]([], prompt="All rules", id="filter-rule", compact=True)
        yield Select[str](
            [(s.value.capitalize(), s.value) for s in ConversionStatus],
            prompt="Any status",
            id="filter-status",
            compact=True,
        )
        yield Input(
            placeholder="Keyword", id="filter-keyword", compact=True, value=self.filters.keyword
        )

    @property
    def mailbox_names(self) -> dict[str, str]:
        return {m.uuid: m.name for m in self.mailboxes}

    def set_choices(self, mailboxes: list[Mailbox], rules: dict[str, list[ConversionRule]]) -> None:
        """The mailboxes and rules to choose from, showing the filters already set."""
        self.mailboxes, self.rules = mailboxes, rules
        with self.prevent(Select.Changed):
            mailbox_select = self.query_one("#filter-mailbox", Select)
            mailbox_select.set_options([(Text(m.name), m.uuid) for m in mailboxes])
            if self.filters.mailbox_uuid in rules:
                mailbox_select.value = self.filters.mailbox_uuid
            if self.filters.status is not None:
                self.query_one("#filter-status", Select).value = self.filters.status.value
            self._set_rule_options()

    def _set_rule_options(self) -> None:
        """The rules of the chosen mailbox (of every mailbox, named with it, when none is)."""
        names = self.mailbox_names
        chosen = self.filters.mailbox_uuid
        options: list[tuple[Text, str]] = [(Text("No rule (default rule, error/)"), NO_RULE)]
        for mailbox_uuid, rules in self.rules.items():
            if chosen not in (None, mailbox_uuid):
                continue
            for rule in rules:
                label = rule.name if chosen else f"{names.get(mailbox_uuid, '?')}: {rule.name}"
                options.append((Text(label), rule.uuid))
        select = self.query_one("#filter-rule", Select)
        with self.prevent(Select.Changed):
            select.set_options(options)
            if any(uuid == self.filters.rule_uuid for _, uuid in options):
                select.value = self.filters.rule_uuid
            else:
                self.filters = replace(self.filters, rule_uuid=None)

    def focus_keyword(self) -> None:
        self.query_one("#filter-keyword", Input).focus()

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        value = event.value if isinstance(event.value, str) else None
        if event.select.id == "filter-mailbox":
            self.filters = replace(self.filters, mailbox_uuid=value)
            self._set_rule_options()
        elif event.select.id == "filter-rule":
            self.filters = replace(self.filters, rule_uuid=value)
        elif event.select.id == "filter-status":
            status = ConversionStatus(value) if value else None
            self.filters = replace(self.filters, status=status)
        self.post_message(self.Changed(self.filters))

    @on(Input.Changed, "#filter-keyword")
    def _keyword_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.filters = replace(self.filters, keyword=event.value.strip())
        self.post_message(self.Changed(self.filters))
