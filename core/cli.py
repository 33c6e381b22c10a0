"""``docbridge`` subcommands: scriptable, ``--json`` where output is data.

The entry point only: ``status`` and ``envelope receive`` in their plain spelling take the quick
path (:mod:`core.cli_quick`: synchronous, a cold start near a bare Python's); every other command
and spelling goes through argparse and the async service (:mod:`core.cli_commands`). Nothing
heavy is imported at module level here, since the console script imports this module first.

Errors a user can cause print one line each on stderr (``docbridge: <what> <hint>``) and exit 1,
having changed nothing. The TUI itself is injected by the entry point (``tui.launcher``) so the
core never imports Textual.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from core.version import package_version

TYPE_CHECKING = False  # not typing: see core.cli_quick
if TYPE_CHECKING:
    from pathlib import Path

StartTui = Callable[["Path"], int]

__all__ = ["StartTui", "main", "package_version"]


def main(argv: Sequence[str] | None = None, start_tui: StartTui | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    from core.cli_quick import run_quick

    code = _guarded(run_quick, arguments)
    if code is not None:
        return code
    from core import cli_commands
    from core.errors import DocbridgeError

    try:
        args, data_dir = cli_commands.parse(arguments)
    except DocbridgeError as exc:  # an empty --data-dir
        from core.cli_output import say

        say(f"docbridge: {exc}", err=True)
        return 1
    if args.command is None:
        if start_tui is None:
            from core.cli_output import say

            say("docbridge: the TUI is not available in this entry point.", err=True)
            return 2
        return start_tui(data_dir)
    result = _guarded(cli_commands.run, args, data_dir)
    assert result is not None
    return result


def _guarded(run: Callable[..., int | None], *args: object) -> int | None:
    """``run(*args)``, with the errors a user can cause as one line each on stderr (exit 1)."""
    try:
        return run(*args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``docbridge envelope list | head``): stop quietly, as ls does.
        # Point stdout at /dev/null so that Python's own flush at exit does not fail again.
        import contextlib

        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        from core.errors import DocbridgeError, FieldErrors

        if isinstance(exc, FieldErrors):
            from core.cli_commands import FIELD_FLAGS
            from core.cli_output import say

            for field, message in exc.errors.items():
                say(f"docbridge: {FIELD_FLAGS.get(field, field)}: {message}", err=True)
            return 1
        if isinstance(exc, DocbridgeError):
            from core.cli_output import say

            say(f"docbridge: {exc}", err=True)
            return 1
        raise
