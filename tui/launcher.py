"""The ``docbridge`` console script: subcommands from the core, the TUI when there is none."""

from __future__ import annotations

import sys

from core.cli import main as cli_main

TYPE_CHECKING = False  # not typing: the console script imports this module on every command
if TYPE_CHECKING:
    from pathlib import Path


def start_tui(data_dir: Path) -> int:
    from tui.app import run_app  # Textual loads only when the TUI starts

    return run_app(data_dir)


def main() -> None:
    sys.exit(cli_main(sys.argv[1:], start_tui=start_tui))
