"""One error path for the whole TUI: nothing a worker, timer or action raises ends the app.

The app runs the engine and the SFTP listener in its own process, so an exception that reached
Textual (which exits on any unhandled error) would take the customers' connections down with the
page. Every entry point therefore goes through :func:`guarded` (actions, timers, callbacks) or runs
as a worker with ``exit_on_error=False`` (the app turns a failed worker into :func:`report_error`).

- Errors a user can act on (:class:`core.errors.DocbridgeError`, including the store's "busy",
  "disk full" and "I/O" errors) show their title and what to do.
- Anything else is a defect: an error modal with the details, the traceback in the log file.

The log file is written by a thread of its own (:class:`LogFile`): logging an error from the
event loop only queues the record.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import queue
import traceback
from collections.abc import Awaitable, Callable
from logging.handlers import QueueHandler, QueueListener
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from textual.app import App
from textual.dom import DOMNode
from textual.worker import Worker, WorkerState

from core.errors import DocbridgeError
from tui.keys import key_label
from tui.modals.error import ErrorModal

log = logging.getLogger("docbridge.tui")

P = ParamSpec("P")
R = TypeVar("R")

UNEXPECTED_HINT = (
    "The app and its engine keep running and nothing was half-saved. Try again; if it happens "
    "again, copy the details ({key}) into a bug report."
)


def report_error(app: App[Any], error: BaseException) -> None:
    """Show ``error`` to the user; the app keeps running whatever it was.

    A fault that repeats (a timer meeting the same broken store every two seconds) is shown
    once: no second modal with the same title while the first is open."""
    title = error.title if isinstance(error, DocbridgeError) else _unexpected_title(error)
    if any(isinstance(s, ErrorModal) and s.error_title == title for s in app.screen_stack):
        return
    if isinstance(error, DocbridgeError):
        log.info("error shown to the user: %s", error.title)
        app.push_screen(ErrorModal(error.title, error.hint))
        return
    details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    log.error("unexpected error\n%s", details)
    app.push_screen(
        ErrorModal(
            title,
            UNEXPECTED_HINT.format(key=key_label(app, "error.copy")),
            details=details,
        )
    )


class LogFile:
    """The TUI's log file in the data directory (defects with their tracebacks; the screen is
    the user's), attached to the ``docbridge.tui`` logger while one app runs.

    Records reach the file through a queue: the loop only formats and enqueues them, a
    :class:`~logging.handlers.QueueListener` thread writes. Each app opens its own and closes it
    when it exits, so a later app in the same process never writes into this one's data directory.
    """

    def __init__(self, handler: logging.Handler, listener: QueueListener, path: Path) -> None:
        self.path = path
        self._handler = handler  # puts records on the listener's queue
        self._listener = listener

    @classmethod
    async def open(cls, path: Path) -> LogFile | None:
        """Create the folder, open the file and start its writer, all in a thread; None if the
        file cannot be opened (no log file is no reason not to run)."""
        try:
            log_file = await asyncio.to_thread(cls._open, path)
        except OSError:
            return None
        log.addHandler(log_file._handler)
        log.setLevel(logging.INFO)
        return log_file

    @classmethod
    def _open(cls, path: Path) -> LogFile:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        file_handler = logging.FileHandler(path, encoding="utf-8")
        file_handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        listener = QueueListener(records, file_handler)
        listener.start()
        return cls(QueueHandler(records), listener, path)

    async def close(self) -> None:
        """Detach from the logger, then write what is queued and close the file (in a thread)."""
        log.removeHandler(self._handler)
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self._listener.stop()
        for handler in self._listener.handlers:
            handler.close()


def _unexpected_title(error: BaseException) -> str:
    return f"Something went wrong ({type(error).__name__}: {error})."


def report_worker_failure(app: App[Any], event: Worker.StateChanged) -> None:
    if event.state is WorkerState.ERROR and event.worker.error is not None:
        report_error(app, event.worker.error)


def guarded(method: Callable[P, R]) -> Callable[P, R | None]:
    """Wrap an action, timer callback or screen callback of a DOM node (sync or async) so that
    an exception becomes an error modal instead of ending the app."""

    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
            try:
                return await method(*args, **kwargs)  # type: ignore[misc]
            except Exception as error:  # every kind: this is the last line of defence
                _report_from(args, error)
                return None

        return run_async  # type: ignore[return-value]

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return method(*args, **kwargs)
        except Exception as error:
            _report_from(args, error)
            return None

    return run


def _report_from(args: tuple[Any, ...], error: Exception) -> None:
    node = args[0] if args and isinstance(args[0], DOMNode) else None
    if node is None:
        raise error
    report_error(node.app, error)


def run_guarded(node: DOMNode, work: Awaitable[Any], group: str, exclusive: bool = True) -> None:
    """Run ``work`` as a worker of ``node``; a failure is shown, never fatal.

    (Textual's ``Worker.StateChanged`` does not bubble, so an app-level handler would not see
    a failed worker of a screen: the worker reports its own failure.)"""

    async def safely() -> Any:
        try:
            return await work
        except Exception as error:  # the last line of defence, as in ``guarded``
            report_error(node.app, error)
            return None

    node.run_worker(safely(), group=group, exclusive=exclusive, exit_on_error=False)
