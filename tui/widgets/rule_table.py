"""Block (5): the conversion rules of a mailbox, top to bottom in the order they apply."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from core.models import ConversionRule, Direction

FIRST_BATCH = 100
BATCH = 250
BATCH_DELAY = 0.01

COLUMNS = (
    ("on", "On"),
    ("name", "Name"),
    ("dir", "Dir"),
    ("template", "Template"),
    ("pattern", "Naming / matching pattern"),
    ("ok", "OK"),
    ("failed", "Failed"),
)


def on_off(enabled: bool) -> Text:
    # A word as well as a mark: never information by colour alone.
    return Text("[x] on", style="bold") if enabled else Text("[ ] off", style="dim")


def row_cells(rule: ConversionRule, template_names: Mapping[str, str]) -> list[Text]:
    form = rule.form
    pattern = form.naming_pattern if form.direction is Direction.IN else form.match_pattern
    template = template_names.get(form.template_uuid, f"? {form.template_uuid[:8]}")
    if form.template_version is not None:
        template = f"{template} v{form.template_version}"
    return [
        on_off(rule.enabled),
        Text(rule.name),
        Text(form.direction.value),
        Text(template),
        Text(pattern),
        Text(str(rule.success_count), justify="right"),
        Text(str(rule.failure_count), justify="right"),
    ]


class RuleTable(DataTable[Text]):
    """The rule list; its keys act on the rule under the cursor (the screen does the work)."""

    BINDINGS = [
        Binding("a", "screen.add_rule", "Add", id="rules.add", tooltip="Add a new rule"),
        Binding("enter", "screen.open_rule", "Open", id="rules.open", tooltip="Open the rule form"),
        Binding(
            "space",
            "screen.toggle_rule",
            "On/off",
            id="rules.toggle",
            tooltip="Enable or disable the rule",
        ),
        Binding("c", "screen.clone_rule", "Clone", id="rules.clone", tooltip="Clone the rule"),
        Binding("x", "screen.delete_rule", "Delete", id="rules.delete", tooltip="Delete the rule"),
        Binding("K", "screen.move_rule(-1)", "Up", id="rules.up", tooltip="Move the rule up"),
        Binding("J", "screen.move_rule(1)", "Down", id="rules.down", tooltip="Move the rule down"),
    ]

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._generation = 0
        self.loading_rows = False
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def fill(self, rules: Iterable[ConversionRule], template_names: Mapping[str, str]) -> None:
        """Replace the rows, keeping the cursor on the same rule when it still exists.

        The first rows appear at once; the rest follow in batches after the screen has painted,
        because DataTable measures every new cell (≈ 0.5 ms a row): 2,000 rules in one go would
        hold the first paint for more than a second.
        """
        selected = self.selected_rule_uuid()
        self._generation += 1
        self.clear()
        pending = list(rules)
        self.loading_rows = bool(pending)
        self._add_batch(pending, dict(template_names), self._generation, selected, FIRST_BATCH)

    def _add_batch(
        self,
        pending: list[ConversionRule],
        template_names: dict[str, str],
        generation: int,
        selected: str | None,
        size: int,
    ) -> None:
        if generation != self._generation:
            return  # a newer fill replaced these rows
        batch, rest = pending[:size], pending[size:]
        for rule in batch:
            self.add_row(*row_cells(rule, template_names), key=rule.uuid)
        if selected is not None and selected in self.rows:
            self.select_rule(selected)
            selected = None
        if rest:
            self.set_timer(
                BATCH_DELAY,
                lambda: self._add_batch(rest, template_names, generation, selected, BATCH),
            )
        else:
            self.loading_rows = False

    def selected_rule_uuid(self) -> str | None:
        if self.row_count == 0:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return row_key.value

    def select_rule(self, rule_uuid: str) -> None:
        try:
            index = self.get_row_index(rule_uuid)
        except RowDoesNotExist:  # deleted meanwhile: leave the cursor where it is
            return
        self.move_cursor(row=index, animate=False)

    def update_rule(self, rule: ConversionRule, template_names: Mapping[str, str]) -> None:
        for (key, _), cell in zip(COLUMNS, row_cells(rule, template_names), strict=True):
            self.update_cell(rule.uuid, key, cell)
