"""What every ``docbridge`` subcommand module shares: one escaped line of output, JSON on
stdout, the paging arguments and the handler type.

Kept apart from :mod:`core.cli_commands` so that subcommand modules (:mod:`core.cli_rules`) use
the same helpers without importing the dispatcher that imports them (the core has no import
circle). Light on purpose (no argparse, json or typing until used): the quick commands
(:mod:`core.cli_quick`) print through it too.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

from core.text import printable

TYPE_CHECKING = False  # not typing: see core.cli_quick
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from core.service import Service

Handler = Callable[["Service", "argparse.Namespace"], Awaitable[int]]


def say(text: str, *, err: bool = False) -> None:
    """One line of output (stdout, or stderr with ``err``): whatever values it carries are
    shown escaped (:func:`printable`), so a name, a subject or a path can never forge a line."""
    print(printable(text), file=sys.stderr if err else sys.stdout)


def print_json(data: Any) -> None:
    import json

    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


MAX_PAGE = 1_000_000


def page_limit(text: str) -> int:
    return whole_number(text, 0, MAX_PAGE, f"from 0 to {MAX_PAGE:,}")


def page_offset(text: str) -> int:
    return whole_number(text, 0, 2**62, "of 0 or more")


def port(text: str) -> int:
    return whole_number(text, 0, 65535, "from 0 to 65535 (0: any free port)")


NODE_NAME_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
)


def node_name(text: str) -> str:
    """argparse type: a node's name, as it shows in ``docbridge status`` and logs."""
    if not 1 <= len(text) <= 64 or not set(text) <= NODE_NAME_CHARACTERS:
        import argparse

        raise argparse.ArgumentTypeError(
            f"{text!r} is not a node name: 1 to 64 letters, digits, '.', '_' or '-'"
        )
    return text


def whole_number(text: str, low: int, high: int, range_text: str) -> int:
    """argparse type: an integer in ``low..high``; argparse names the flag in its error."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        import argparse  # loaded already: argparse is the caller

        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number {range_text}")
    return value
