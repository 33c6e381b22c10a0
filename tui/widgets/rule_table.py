"""Block (5): the conversion rules of a mailbox, top to bottom in the order they apply."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from core.models import ConversionRule, Direction

COLUMNS = (
    ("on", "On"),
    ("name", "Name"),
    ("dir", "Dir"),
    ("template", "Template"),
    ("pattern", "Naming / matching pattern"),
    ("ok", "OK"),
    ("failed", "Failed"),
)
CELL_PADDING = 1
HEADER_HEIGHT = 1

Row = tuple[Text, ...]


ONE_LINE = str.maketrans("\t\n\r", "   ")  # a row is one line, whatever a name holds


ON, OFF = "[x] on", "[ ] off"


def on_off(enabled: bool) -> Text:
    # A word as well as a mark: never information by colour alone.
    return Text(ON, style="bold") if enabled else Text(OFF, style="dim")


def row_plain(rule: ConversionRule, template_names: Mapping[str, str]) -> tuple[str, ...]:
    """The cells as plain strings: enough to measure the columns without building any Text."""
    form = rule.form
    pattern = form.naming_pattern if form.direction is Direction.IN else form.match_pattern
    template = template_names.get(form.template_uuid, f"? {form.template_uuid[:8]}")
    if form.template_version is not None:
        template = f"{template} v{form.template_version}"
    return (
        ON if rule.enabled else OFF,
        rule.name.translate(ONE_LINE),
        form.direction.value,
        template.translate(ONE_LINE),
        pattern.translate(ONE_LINE),
        str(rule.success_count),
        str(rule.failure_count),
    )


def row_cells(rule: ConversionRule, template_names: Mapping[str, str]) -> Row:
    """The cells as Text: user data is never read as markup."""
    _, name, direction, template, pattern, ok, failed = row_plain(rule, template_names)
    return (
        on_off(rule.enabled),
        Text(name),
        Text(direction),
        Text(template),
        Text(pattern),
        Text(ok, justify="right"),
        Text(failed, justify="right"),
    )


SHRINKABLE = (1, 3, 4)  # name, template, pattern
MIN_WIDTHS = {1: 8, 3: 8, 4: 10}


def fit_columns(natural: list[int], available: int) -> list[int]:
    """Shrink the widest text column, one cell at a time, until the row fits ``available``."""
    widths = list(natural)
    excess = sum(widths) - available
    while excess > 0:
        column = max(SHRINKABLE, key=lambda c: widths[c] - MIN_WIDTHS[c])
        if widths[column] <= MIN_WIDTHS[column]:
            break  # narrower than that is unreadable: the view scrolls instead
        widths[column] -= 1
        excess -= 1
    return widths


class RowCursorView(ScrollView, can_focus=True):
    """Cursor keys of a one-line-per-row list (as DataTable binds them); kept apart so that
    RuleTable.BINDINGS (listed in the help screen, remappable by id) holds only rule actions."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Select", show=False),
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "cursor_first", "First", show=False),
        Binding("end,ctrl+end", "cursor_last", "Last", show=False),
    ]


class RuleTable(RowCursorView):
    """The rule list; the keys acting on the rule under the cursor belong to block (5).

    A Line API widget rather than a DataTable: it renders only the visible lines and caches
    each row's strip, so a cursor move repaints two rows (or, when it scrolls, crops cached
    strips) instead of re-rendering every visible cell; 2,000 rules fill in a few milliseconds
    because only the column widths are measured.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "rule-table--header",
        "rule-table--even-row",
        "rule-table--cursor",
        "rule-table--hover",
    }

    DEFAULT_CSS = """
    RuleTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;

        &:focus {
            background-tint: $foreground 5%;
            & > .rule-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .rule-table--header {
                background-tint: $foreground 5%;
            }
        }
        &:dark > .rule-table--even-row {
            background: $surface-darken-1 40%;
        }
        & > .rule-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .rule-table--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .rule-table--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .rule-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .rule-table--hover {
            background: $block-hover-background;
        }
    }
    """

    class RowSelected(Message):
        """A row was clicked (enter is bound to open the rule directly)."""

        def __init__(self, table: RuleTable, cursor_row: int, rule_uuid: str) -> None:
            super().__init__()
            self.table = table
            self.cursor_row = cursor_row
            self.rule_uuid = rule_uuid

        @property
        def control(self) -> RuleTable:
            return self.table

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._rules: list[ConversionRule] = []
        self._template_names: dict[str, str] = {}
        self._index: dict[str, int] = {}
        self._rows: dict[int, Row] = {}  # built when first shown
        self._header: Row = tuple(Text(label) for _, label in COLUMNS)
        self._widths: list[int] = [cell_len(label) for _, label in COLUMNS]
        self._natural: list[int] = list(self._widths)
        self._cursor = 0
        self._hover: int | None = None
        self._strips: LRUCache[tuple[int, Style], Strip] = LRUCache(1024)
        self._paint_styles: tuple[Style, Style, Style, Style, Style] | None = None

    # -- data -----------------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._rules)

    @property
    def cursor_row(self) -> int:
        return self._cursor

    def get_row_at(self, index: int) -> list[Text]:
        return list(self._row(index))

    def _row(self, index: int) -> Row:
        row = self._rows.get(index)
        if row is None:
            row = self._rows[index] = row_cells(self._rules[index], self._template_names)
        return row

    def fill(self, rules: Iterable[ConversionRule], template_names: Mapping[str, str]) -> None:
        """Replace the rows, keeping the cursor on the same rule when it still exists (else on
        the same position). Only the column widths are measured here; a row's Text is built when
        the row is first shown."""
        selected = self.selected_rule_uuid()
        self._rules = list(rules)
        self._template_names = dict(template_names)
        self._index = {rule.uuid: index for index, rule in enumerate(self._rules)}
        self._hover = None
        self._changed()
        if selected is not None and selected in self._index:
            self._cursor = self._index[selected]
        else:
            self._cursor = max(0, min(self._cursor, len(self._rules) - 1))
        self.call_after_refresh(self._scroll_cursor_into_view)

    def update_rule(self, rule: ConversionRule, template_names: Mapping[str, str]) -> None:
        index = self._index.get(rule.uuid)
        if index is None:
            return
        self._rules[index] = rule
        self._template_names = dict(template_names)
        self._changed()

    def _changed(self) -> None:
        widths = [cell_len(label) for _, label in COLUMNS]
        names = self._template_names
        for rule in self._rules:
            for column, plain in enumerate(row_plain(rule, names)):
                width = cell_len(plain)
                if width > widths[column]:
                    widths[column] = width
        self._natural = widths
        self._fit()

    def _fit(self) -> None:
        """Column widths that fit the table's width: the text columns give up space (their
        cells end in an ellipsis), never the state, direction or the counters."""
        widths = fit_columns(self._natural, self._content_width())
        self._widths = widths
        self._rows.clear()
        self._strips.clear()
        width = sum(widths) + 2 * CELL_PADDING * len(widths)
        self.virtual_size = Size(width, HEADER_HEIGHT + len(self._rules))
        self.refresh(layout=True)

    def on_resize(self, event: events.Resize) -> None:
        if fit_columns(self._natural, self._content_width()) != self._widths:
            self._fit()

    def _content_width(self) -> int:
        available = self.scrollable_content_region.width or self.size.width
        return available - 2 * CELL_PADDING * len(COLUMNS)

    def selected_rule_uuid(self) -> str | None:
        if not self._rules:
            return None
        return self._rules[self._cursor].uuid

    def select_rule(self, rule_uuid: str) -> None:
        index = self._index.get(rule_uuid)
        if index is not None:  # else deleted meanwhile: leave the cursor where it is
            self.move_cursor(index)

    # -- cursor ---------------------------------------------------------------------------------

    def move_cursor(self, row: int) -> None:
        if not self._rules:
            return
        row = max(0, min(row, len(self._rules) - 1))
        if row == self._cursor:
            return
        self.refresh_line(HEADER_HEIGHT + self._cursor)
        self._cursor = row
        self.refresh_line(HEADER_HEIGHT + row)
        self._scroll_cursor_into_view()

    def _visible_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - HEADER_HEIGHT)

    def _scroll_cursor_into_view(self) -> None:
        top = round(self.scroll_y)
        visible = self._visible_rows()
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False)
        elif self._cursor >= top + visible:
            self.scroll_to(y=self._cursor - visible + 1, animate=False)

    def action_select_cursor(self) -> None:
        if self._rules:
            self._select(self._cursor)

    def _select(self, row: int) -> None:
        self.post_message(self.RowSelected(self, row, self._rules[row].uuid))

    def action_cursor_up(self) -> None:
        self.move_cursor(self._cursor - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self._cursor + 1)

    def action_page_up(self) -> None:
        self.move_cursor(self._cursor - self._visible_rows())

    def action_page_down(self) -> None:
        self.move_cursor(self._cursor + self._visible_rows())

    def action_cursor_first(self) -> None:
        self.move_cursor(0)

    def action_cursor_last(self) -> None:
        self.move_cursor(len(self._rules) - 1)

    # -- mouse ----------------------------------------------------------------------------------

    def _row_at(self, event: events.MouseEvent) -> int | None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < HEADER_HEIGHT:
            return None
        row = offset.y - HEADER_HEIGHT + round(self.scroll_y)
        return row if row < len(self._rules) else None

    def on_click(self, event: events.Click) -> None:
        row = self._row_at(event)
        if row is None:
            return
        self.move_cursor(row)
        self._select(row)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        self._set_hover(self._row_at(event))

    def on_leave(self, event: events.Leave) -> None:
        self._set_hover(None)

    def _set_hover(self, row: int | None) -> None:
        if row == self._hover:
            return
        for old_or_new in (self._hover, row):
            if old_or_new is not None:
                self.refresh_line(HEADER_HEIGHT + old_or_new)
        self._hover = row

    # -- rendering ------------------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        # The styles are looked up once per paint, not once per line.
        self._paint_styles = None
        return super().render_lines(crop)

    def _styles(self) -> tuple[Style, Style, Style, Style, Style]:
        if self._paint_styles is None:
            component = self.get_component_rich_style
            self._paint_styles = (
                component("rule-table--header"),
                self.rich_style,
                component("rule-table--even-row"),
                component("rule-table--cursor"),
                component("rule-table--hover"),
            )
        return self._paint_styles

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        header, odd, even, cursor, hover = self._styles()
        if y < HEADER_HEIGHT:
            style = header
            strip = self._strip(-1, style)
        else:
            row = y - HEADER_HEIGHT + scroll_y
            if row >= len(self._rules):
                return Strip.blank(width, odd)
            # Zebra stripes and the cursor as DataTable draws them; the on/off state is a word.
            style = even if row % 2 == 0 else odd
            if row == self._cursor:
                style += cursor
            elif row == self._hover:
                style += hover
            strip = self._strip(row, style)
        return strip.crop_extend(scroll_x, scroll_x + width, style)

    def _strip(self, row: int, style: Style) -> Strip:
        key = (row, style)
        strip = self._strips.get(key)
        if strip is None:
            cells = self._header if row < 0 else self._row(row)
            line = Text(no_wrap=True, end="")
            pad = " " * CELL_PADDING
            for cell, width in zip(cells, self._widths, strict=True):
                if cell.cell_len > width:
                    cell = cell.copy()
                    cell.truncate(width, overflow="ellipsis")
                gap = width - cell.cell_len
                left = gap if cell.justify == "right" else 0
                line.append(pad + " " * left)
                line.append_text(cell)
                line.append(" " * (gap - left) + pad)
            line.stylize_before(style)  # under the cells' own styles (bold "on", dim "off")
            strip = Strip(line.render(self.app.console), line.cell_len)
            self._strips[key] = strip
        return strip
