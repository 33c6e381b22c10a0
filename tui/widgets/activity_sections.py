"""The Activity screen's sections and cells: what each table shows, how wide, how cut."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

SCROLLBAR = 2  # a table's vertical scrollbar
PADDING = 2  # a DataTable cell's padding (one column each side)


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    key_id: str
    columns: tuple[tuple[str, int], ...]  # (label, width); width 0 shares what is left


SECTIONS = (
    Section(
        "items",
        "Items",
        "activity.items",
        (("Id", 5), ("State", 22), ("Mailbox", 11), ("Kind", 8), ("Last error", 0)),
    ),
    Section(
        "attempts",
        "Attempts",
        "activity.attempts",
        (("Time", 8), ("Mailbox", 11), ("Outcome", 22), ("Item", 0), ("Error", 0)),
    ),
    Section("sessions", "SFTP sessions", "activity.sessions", (("Mailbox", 0), ("Address", 0))),
    Section(
        "bans",
        "Bans",
        "activity.bans",
        (("Address", 0), ("Failures", 8), ("Banned at", 19), ("Time left", 12)),
    ),
)
SECTION_BY_ID = {section.id: section for section in SECTIONS}


def clip(value: str | None, width: int) -> Text:
    """One line of user data for a cell: never markup, an ellipsis where it is cut."""
    flat = " ".join((value or "").split())
    if len(flat) > width:
        flat = flat[: max(width - 1, 0)] + "…"
    return Text(flat, no_wrap=True)


def widths(section: Section, total: int) -> list[int]:
    fixed = sum(w for _, w in section.columns)
    flexible = [i for i, (_, w) in enumerate(section.columns) if w == 0]
    room = total - SCROLLBAR - PADDING * len(section.columns) - fixed
    share = max(room // max(len(flexible), 1), 8)
    return [w or share for _, w in section.columns]


def facts(*rows: tuple[str, str | None]) -> Table:
    """Label / value lines; values fold (an id is never cut) and are never markup."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        if value:
            grid.add_row(label, Text(value, overflow="fold"))
    return grid


def when(at: str | None) -> str:
    """``2025-01-15T09:30:00.000Z`` -> ``2025-01-15 09:30:00 UTC``."""
    return f"{at.replace('T', ' ')[:19]} UTC" if at else ""
