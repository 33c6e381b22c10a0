"""The event-loop guard of the test suite: blockbuster, set up for this project.

A blocking call (file I/O, ``time.sleep``, a thread join, a blocking socket) made on a running
event loop by the product's code fails the test with ``BlockingError``: the TUI, the engine and the
SFTP server share one loop, so one such call stalls every session. Work done in a thread
(``asyncio.to_thread``, the store's own thread) is not checked.

Scanned: the product (``core``, ``tui``) and the guard's own test module. A call counts when one
of their functions is in the stack that makes it, so a library that blocks when the product calls
it is caught too. The bodies of the other tests are not scanned: a test reading a file to check
it stalls no user. A test that calls a blocking product helper on its loop is caught, and is
listed below until it moves the call to a thread.

The product itself has no exception: what is allowed is library code it cannot change.
"""

from __future__ import annotations

import os
from typing import Any

from blockbuster import BlockBuster, BlockBusterFunction

SCANNED = ["core", "tui", "tests.test_blocking_guard"]


def make_guard() -> BlockBuster:
    """A guard with the known exceptions; the caller activates it."""
    guard = BlockBuster(SCANNED)
    for name in ("io.BufferedWriter.write", "io.TextIOWrapper.write"):
        _also_allow(guard.functions[name], _writes_to_devnull)
    for name, places in ALLOWED.items():
        for filename, functions in places:
            guard.functions[name].can_block_in(filename, functions)
    return guard


def _writes_to_devnull(file: Any, *_: Any, **__: Any) -> bool:
    # pytest's logging plugin writes every record to a log file that is os.devnull by default.
    return getattr(file, "name", None) == os.devnull


def _also_allow(function: BlockBusterFunction, predicate: Any) -> None:
    before = function.can_block_predicate

    def either(*args: Any, **kwargs: Any) -> bool:
        return before(*args, **kwargs) or predicate(*args, **kwargs)

    function.can_block_predicate = either


Places = list[tuple[str, set[str]]]

# Textual's own internals (library code, no hook to move it off the loop): CSS files are found
# and read on the loop when an App or a Screen with CSS_PATH is made or first shown.
TEXTUAL: dict[str, Places] = {
    # App/Screen __init__ resolves each CSS_PATH against the class's file (Path.resolve).
    "os.stat": [("textual/_path.py", {"_make_path_object_relative"})],
    "os.path.abspath": [
        ("textual/_path.py", {"_make_path_object_relative"}),  # the same resolution
        ("textual/css/stylesheet.py", {"read"}),  # Stylesheet.read names the .tcss it read
    ],
    # Stylesheet.read reads the .tcss file when the stylesheet is (re)built.
    "io.TextIOWrapper.read": [
        ("textual/css/stylesheet.py", {"read"}),
        # A TextArea given a language reads Textual's highlight query (.scm) for it.
        ("textual/widgets/_text_area.py", {"_get_builtin_highlight_query"}),
    ],
}
# The highlight query's path is resolved the same way (Path.resolve) before it is read.
for _name in ("os.path.abspath", "os.stat"):
    TEXTUAL[_name].append(("textual/widgets/_text_area.py", {"_get_builtin_highlight_query"}))


ALLOWED = TEXTUAL
