"""Block (5): the conversion rules, top to bottom in the order they apply, and their actions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Button, Static

from core.models import ConversionRule, PageState, RuleForm
from tui.errors import guarded, run_guarded
from tui.keys import bindings, key_label
from tui.modals.confirm import ConfirmModal
from tui.page.block import Command, PageBlock, PageStateChanged
from tui.screens.rule_form import RuleFormResult, RuleFormScreen
from tui.widgets.rule_table import RuleTable

RULE_KEYS = ("rules.open", "rules.toggle", "rules.clone", "rules.delete", "rules.up", "rules.down")
COUNTER_SECONDS = 3.0  # how often the OK/Failed and no-rule counters are read again


class RulesBlock(PageBlock):
    NUMBER = 5
    TITLE = "Conversion rules"
    BINDINGS = bindings(*RULE_KEYS)

    def compose(self) -> ComposeResult:
        yield Static(id="rules-hint", classes="hint")
        yield RuleTable(id="rules")
        yield Static(id="rules-empty", classes="empty-state")
        yield Static(id="rules-counts", classes="hint")
        yield Button("Add new rule", id="add-rule", compact=True)

    no_rule_count: int | None = None  # attempts of this mailbox no rule took (the log's)

    def on_mount(self) -> None:
        self.set_interval(COUNTER_SECONDS, self._counters_tick)

    def fill(self, state: PageState) -> None:
        self.state = state
        self.no_rule_count = None
        self._render_rules(state.rules)
        self._show_counts()
        self.refresh_counters_soon()

    def first_field(self) -> Widget:
        table = self.query_one("#rules", RuleTable)
        return table if table.display else self.query_one("#add-rule")

    def template_names(self) -> dict[str, str]:
        return {t.uuid: t.name for t in self.state.templates}

    def _render_rules(self, rules: tuple[ConversionRule, ...]) -> None:
        table = self.query_one("#rules", RuleTable)
        table.fill(rules, self.template_names())
        empty = not rules
        table.display = not empty
        add = key_label(self.app, "rules.add")
        self.query_one("#add-rule", Button).label = f"Add new rule ({add})"
        empty_state = self.query_one("#rules-empty", Static)
        empty_state.display = empty
        empty_state.update(
            Text(
                f"No conversion rules yet. Press {add} (or the button below) to add the first "
                "rule; incoming envelopes that match no rule get the default rule above."
            )
        )
        key = lambda binding_id: key_label(self.app, binding_id)  # noqa: E731
        keys = (
            f"{key('rules.add')} add  {key('rules.open')} open  {key('rules.toggle')} on/off  "
            f"{key('rules.clone')} clone  {key('rules.delete')}: remove  "
            f"{key('rules.up')}/{key('rules.down')} move"
        )
        self.query_one("#rules-hint", Static).update(
            Text(f"Applied top to bottom; the first enabled match wins.  {keys}", style="dim")
        )

    # -- counters from the conversion log ------------------------------------------------------

    def _show_counts(self) -> None:
        log = key_label(self.app, "app.conversions")
        count = "…" if self.no_rule_count is None else f"{self.no_rule_count:,}"
        self.query_one("#rules-counts", Static).update(
            Text(
                f"No rule: {count} (default rule or error/).  {log}: conversion log",
                style="dim",
            )
        )

    def refresh_counters_soon(self) -> None:
        self.run_worker(
            self._refresh_counters_guarded,
            group="rule-counters",
            exclusive=True,
            exit_on_error=False,
        )

    @guarded
    async def _refresh_counters_guarded(self) -> None:
        await self.refresh_counters()

    def _counters_tick(self) -> None:
        if self.app.screen is self.screen and getattr(self, "state", None) is not None:
            self.refresh_counters_soon()

    async def refresh_counters(self) -> None:
        """Read the per-rule OK/Failed counters and the no-rule count again (the engine keeps
        them in step with the conversion log); only changed rows are repainted."""
        mailbox_uuid = self.state.mailbox.uuid
        no_rule = await self.service.conversions.no_rule_count(mailbox_uuid)
        fresh = {r.uuid: r for r in await self.service.list_rules(mailbox_uuid)}
        if self.state.mailbox.uuid != mailbox_uuid:
            return
        self.no_rule_count = no_rule
        self._show_counts()
        table = self.query_one("#rules", RuleTable)
        counted = []
        for rule in self.state.rules:
            new = fresh.get(rule.uuid)
            if new is not None and (new.success_count, new.failure_count) != (
                rule.success_count,
                rule.failure_count,
            ):
                rule = replace(
                    rule, success_count=new.success_count, failure_count=new.failure_count
                )
                table.update_rule(rule, self.template_names())
            counted.append(rule)
        rules = tuple(counted)
        if rules != self.state.rules:
            self.state = replace(self.state, rules=rules)
            self.post_message(PageStateChanged(lambda s: replace(s, rules=rules)))

    # -- the rule under the cursor ------------------------------------------------------------

    def selected(self) -> ConversionRule | None:
        uuid = self.query_one("#rules", RuleTable).selected_rule_uuid()
        return next((r for r in self.state.rules if r.uuid == uuid), None)

    def _need_rule(self) -> ConversionRule | None:
        rule = self.selected()
        if rule is None:
            add = key_label(self.app, "rules.add")
            self.say(f"There is no rule yet: press {add} to add one.", severity="warning")
        return rule

    def _run(self, work: Callable[[], Awaitable[None]]) -> None:
        run_guarded(self, work(), group="rules", exclusive=False)

    async def reload(self, select: str | None = None) -> None:
        mailbox_uuid = self.state.mailbox.uuid
        rules = tuple(await self.service.list_rules(mailbox_uuid))
        if self.state.mailbox.uuid != mailbox_uuid:
            return
        self.state = replace(self.state, rules=rules)
        self._render_rules(rules)
        if select is not None:
            self.query_one("#rules", RuleTable).select_rule(select)
        self.post_message(PageStateChanged(lambda s: replace(s, rules=rules)))

    # -- actions ------------------------------------------------------------------------------

    @guarded
    def open_form(self, rule: ConversionRule | None, form: RuleForm | None = None) -> None:
        state = self.state

        def done(result: RuleFormResult | None) -> None:
            if result is None:
                return
            self._run(lambda: self.reload(select=result.rule_uuid))
            if result.clone is not None:
                self.open_form(None, result.clone)

        self.app.push_screen(
            RuleFormScreen(self.service, state.mailbox, state.templates, rule, form), done
        )

    def add_rule(self) -> None:
        self.open_form(None)

    @guarded
    def action_open_rule(self) -> None:
        rule = self._need_rule()
        if rule is not None:
            self.open_form(rule)

    @on(RuleTable.RowSelected)
    def _row_clicked(self, event: RuleTable.RowSelected) -> None:
        event.stop()
        self.action_open_rule()

    @on(Button.Pressed, "#add-rule")
    def _add_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.add_rule()

    @guarded
    def action_toggle_rule(self) -> None:
        rule = self._need_rule()
        if rule is None:
            return

        async def work() -> None:
            updated = await self.service.set_rule_enabled(rule.uuid, not rule.enabled)
            rules = tuple(updated if r.uuid == updated.uuid else r for r in self.state.rules)
            self.state = replace(self.state, rules=rules)
            self.query_one("#rules", RuleTable).update_rule(updated, self.template_names())
            self.post_message(PageStateChanged(lambda s: replace(s, rules=rules)))
            self.say(
                f"Rule '{updated.name}' is {'on' if updated.enabled else 'off'}.", title="Rule"
            )

        self._run(work)

    @guarded
    def action_clone_rule(self) -> None:
        rule = self._need_rule()
        if rule is None:
            return

        async def work() -> None:
            form = await self.service.clone_rule(rule.uuid)
            self.open_form(None, form)

        self._run(work)

    @guarded
    def action_delete_rule(self) -> None:
        rule = self._need_rule()
        if rule is None:
            return

        async def work() -> None:
            await self.service.delete_rule(rule.uuid)
            await self.reload()
            self.say(f"Rule '{rule.name}' deleted.", title="Rule")

        def answered(yes: bool | None) -> None:
            if yes:
                self._run(work)

        self.app.push_screen(
            ConfirmModal(f"Delete the rule '{rule.name}'?", "This cannot be undone.", "Delete"),
            answered,
        )

    @guarded
    def action_move_rule(self, offset: int) -> None:
        rule = self._need_rule()
        if rule is None:
            return

        async def work() -> None:
            await self.service.move_rule(rule.uuid, 1 if offset > 0 else -1)
            await self.reload(select=rule.uuid)

        self._run(work)

    def commands(self) -> list[Command]:
        key = lambda binding_id: key_label(self.app, binding_id)  # noqa: E731
        commands: list[Command] = [
            ("Add rule", f"New conversion rule ({key('rules.add')})", self.add_rule)
        ]
        if self.selected() is not None:
            commands += [
                (
                    "Open rule",
                    f"The selected rule's form ({key('rules.open')})",
                    self.action_open_rule,
                ),
                (
                    "Enable/disable rule",
                    f"The selected rule ({key('rules.toggle')})",
                    self.action_toggle_rule,
                ),
                (
                    "Clone rule",
                    f"An unsaved copy of the selected rule ({key('rules.clone')})",
                    self.action_clone_rule,
                ),
                (
                    "Delete rule",
                    f"The selected rule, asks first ({key('rules.delete')})",
                    self.action_delete_rule,
                ),
                (
                    "Move rule up",
                    f"The selected rule ({key('rules.up')})",
                    lambda: self.action_move_rule(-1),
                ),
                (
                    "Move rule down",
                    f"The selected rule ({key('rules.down')})",
                    lambda: self.action_move_rule(1),
                ),
            ]
        return commands
