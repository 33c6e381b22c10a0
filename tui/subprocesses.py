"""Starting worker processes from inside a running Textual app.

While an app runs, Textual replaces ``sys.stderr`` with a print capture whose ``fileno()`` is -1.
multiprocessing's resource tracker, started with the first spawned process, passes
``sys.stderr.fileno()`` to its child, and -1 makes the spawn fail ("bad value(s) in
fds_to_keep"): the conversion desk's first Run would fail. Starting the tracker with the real
stderr once, before that first spawn, avoids it.
"""

from __future__ import annotations

import asyncio
import sys
import threading

_lock = threading.Lock()
_started = False


def _start_resource_tracker() -> None:
    global _started
    from multiprocessing import resource_tracker

    with _lock:
        if _started:
            return
        captured = sys.stderr
        try:
            if sys.__stderr__ is not None:
                sys.stderr = sys.__stderr__
            resource_tracker.ensure_running()
        finally:
            sys.stderr = captured
        _started = True


async def prepare_worker_processes() -> None:
    """Make sure worker processes can be started from this app (a thread: it spawns one)."""
    if not _started:
        await asyncio.to_thread(_start_resource_tracker)
