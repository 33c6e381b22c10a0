"""The Activity screen's sections and cells: what each table shows, how wide, how cut; and the
words for an AS2 message, which the Integrations page's AS2 block shows too."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

from core.models import As2Message, As2Status, EngineStatus

SCROLLBAR = 2  # a table's vertical scrollbar
PADDING = 2  # a DataTable cell's padding (one column each side)
FLEX_MIN = 8  # a flexible column is never narrower
READABLE = 12  # below this, optional columns make room for the flexible ones


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    key_id: str
    columns: tuple[tuple[str, int], ...]  # (label, width); width 0 shares what is left
    short: str = ""  # the tab's title when the full ones do not fit side by side
    optional: tuple[str, ...] = ()  # labels left out, in this order, on a narrow terminal


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
    Section(
        "as2",
        "AS2 messages",
        "activity.as2",
        (
            ("Time", 8),
            ("Mailbox", 10),
            ("Dir", 3),
            ("Partner", 0),
            ("Status", 12),
            ("MDN", 0),
            ("MIC", 8),
            ("Size", 6),
            ("Message-ID", 0),
        ),
        short="AS2",
        optional=("Message-ID", "Mailbox"),  # both in the detail pane
    ),
)
SECTION_BY_ID = {section.id: section for section in SECTIONS}


def clip(value: str | None, width: int) -> Text:
    """One line of user data for a cell: never markup, an ellipsis where it is cut."""
    flat = " ".join((value or "").split())
    if len(flat) > width:
        flat = flat[: max(width - 1, 0)] + "…"
    return Text(flat, no_wrap=True)


def layout(section: Section, total: int) -> list[tuple[int, int]]:
    """(column index, width) of the columns shown at ``total`` columns: flexible columns share
    what is left; optional ones go first while the flexible ones would be hard to read."""
    shown = list(range(len(section.columns)))

    def share() -> int:
        fixed = sum(section.columns[i][1] for i in shown)
        flexible = sum(1 for i in shown if section.columns[i][1] == 0)
        room = total - SCROLLBAR - PADDING * len(shown) - fixed
        return room // max(flexible, 1)

    labels = [label for label, _ in section.columns]
    for label in section.optional:
        if share() >= READABLE:
            break
        shown.remove(labels.index(label))
    width = max(share(), FLEX_MIN)
    return [(i, section.columns[i][1] or width) for i in shown]


def tab_titles(counts: dict[str, int], keys: dict[str, str], total: int) -> dict[str, str]:
    """Each tab's "key title (count)", short titles when the full ones would not fit."""
    for short in (False, True):
        titles = {
            s.id: f"{keys[s.id]} {(s.short or s.title) if short else s.title} ({counts[s.id]})"
            for s in SECTIONS
        }
        if sum(len(title) + 2 for title in titles.values()) <= total - 2:
            break
    return titles


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


# -- AS2 messages -------------------------------------------------------------------------------


def size_text(size: int) -> str:
    """At most six characters: ``512 B``, ``98 KB``, ``1.2 MB``."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            if unit == "B" or value >= 10:
                return f"{value:.0f} {unit}"
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # not reached


def mdn_text(message: As2Message) -> str:
    """The MDN's disposition, or why there is none (the words of ``docbridge as2 messages``)."""
    if message.mdn_disposition:
        return message.mdn_disposition
    if message.mdn_mode in ("", "none"):
        return "none asked"
    if message.status in (As2Status.SENDING, As2Status.AWAITING_MDN):
        return f"awaited ({message.mdn_mode})"
    return "—"


def mic_text(message: As2Message) -> str:
    return message.mic_check or "—"


def as2_row(message: As2Message, mailbox_name: str) -> tuple[str, ...]:
    """The cells of the Activity screen's AS2 section, in its column order."""
    return (
        message.created_at[11:19],
        mailbox_name,
        message.direction,
        message.partner_id,
        message.status.value,
        mdn_text(message),
        mic_text(message),
        size_text(message.size),
        message.message_id,
    )


def as2_facts(message: As2Message, mailbox_name: str) -> Table:
    """Everything about one AS2 message, for the detail pane."""
    way = "in: received from" if message.direction == "in" else "out: sent to"
    tries = f"{message.attempts}" if message.direction == "out" and message.attempts else ""
    return facts(
        ("Status", message.status.value),
        ("Direction", f"{way} {message.partner_id or '?'}"),
        ("Message-ID", message.message_id),
        ("Mailbox", f"{mailbox_name} ({message.mailbox_uuid})"),
        ("File", message.filename or "—"),
        ("Size", f"{message.size:,} bytes" if message.size else "—"),
        ("MDN", f"{mdn_text(message)} · {message.mdn_mode or 'none'} mode"),
        (
            "MIC check",
            mic_text(message) if message.direction == "out" else "— (the partner checks it)",
        ),
        ("Attempts", tries),
        ("Created", when(message.created_at)),
        ("Changed", when(message.updated_at)),
        ("Error", message.error or "—"),
    )


# -- the page's AS2 block: its recent messages and who serves the Self URL ------------------------

NO_MESSAGES = (
    "none yet — messages sent to the Self URL and envelopes under default rule 1 appear here"
)


def recent_lines(messages: tuple[As2Message, ...] | list[As2Message]) -> Text:
    """One line a message: direction, when, status, MDN, MIC check."""
    if not messages:
        return Text(NO_MESSAGES, style="italic")
    text = Text()
    for n, message in enumerate(messages):
        if n:
            text.append("\n")
        text.append(f"{message.direction:<3} ", style="bold")
        text.append(when(message.created_at)[5:16] + "  ", style="dim")
        bad = message.status in (As2Status.FAILED, As2Status.REFUSED)
        text.append(f"{message.status.value:<12}", style="bold red" if bad else "")
        text.append("  MDN ", style="dim")
        text.append(mdn_text(message))
        text.append("  MIC ", style="dim")
        text.append(mic_text(message), style="bold red" if message.mic_check == "mismatch" else "")
    return text


def serve_hint(status: EngineStatus | None) -> Text:
    """Whether partners can reach the Self URL now: the engine's AS2 endpoint serves it."""
    if status is not None and status.running and "as2" in status.listeners:
        return Text(f"The engine serves it (listening on {status.listeners['as2']}).", style="dim")
    if status is not None and status.running:
        where = f"pid {status.pid}" if status.pid else "its process"
        return Text(
            f"The engine ({where}) runs without its AS2 endpoint: partners cannot reach it.",
            style="bold yellow",
        )
    stopped = "The engine is stopped" if status is not None else "The engine's state is unknown"
    return Text(
        f"{stopped}: partners cannot reach it until docbridge serve or this TUI's engine runs.",
        style="bold yellow",
    )
