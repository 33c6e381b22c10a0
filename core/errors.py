"""Domain errors: everything a user can cause, with a message that says what to do.

The TUI shows these next to the field (``FieldErrors``) or in an error modal; the CLI prints
one line per error on stderr. Nothing else in the code base should reach a user as a traceback.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path


class DocbridgeError(Exception):
    """Base of every error a user can cause: a short title and a hint on what to do."""

    def __init__(self, title: str, hint: str = "") -> None:
        super().__init__(title)
        self.title = title
        self.hint = hint

    def __str__(self) -> str:
        title = self.title if self.title.endswith((".", "!", "?", ":")) else f"{self.title}."
        return f"{title} {self.hint}".strip()


class NotFound(DocbridgeError):
    """A mailbox, rule, template or envelope that does not exist."""


class InvalidInput(DocbridgeError):
    """Input that cannot be accepted as a whole (a file, a document)."""


class FieldErrors(DocbridgeError):
    """One message per invalid field of a form; nothing was stored.

    ``errors`` maps a field name (as the form and the CLI know it) to its message.
    """

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        summary = "; ".join(f"{field}: {message}" for field, message in self.errors.items())
        super().__init__(f"{len(self.errors)} field(s) need attention", summary)


class EngineUnavailable(DocbridgeError):
    """A component that needs a running engine or library cannot start here."""


class StoreProblem(StrEnum):
    """Why the SQLite store cannot be used right now (see :class:`StoreUnavailable`)."""

    READ_ONLY = "read-only"
    CANNOT_OPEN = "cannot-open"
    IO_ERROR = "io-error"
    CORRUPT = "corrupt"


class ChangedElsewhere(DocbridgeError):
    """What a form was based on was changed by someone else meanwhile: saving would undo it."""


class StoreError(DocbridgeError):
    """The SQLite store refused a statement; the transaction was rolled back as a whole.

    Raised only by ``core.storage.db.Database.call``, chained (``from``) to the ``sqlite3`` error,
    so a user sees what to do and a log still has SQLite's own words. ``path`` is the database
    file; ``sqlite_error`` is SQLite's error name (``SQLITE_BUSY``...) or its message.
    """

    def __init__(self, title: str, hint: str, *, path: Path, sqlite_error: str) -> None:
        super().__init__(title, hint)
        self.path = path
        self.sqlite_error = sqlite_error


class StoreBusy(StoreError):
    """Another connection held the write lock for longer than the busy timeout."""

    def __init__(self, path: Path, sqlite_error: str = "SQLITE_BUSY") -> None:
        super().__init__(
            f"The store {path} is busy",
            "Another docbridge process holds the store; try again in a moment. "
            "Nothing was changed.",
            path=path,
            sqlite_error=sqlite_error,
        )


class StoreFull(StoreError):
    """The disk (or the database's size limit) is full: SQLITE_FULL."""

    def __init__(self, path: Path, sqlite_error: str = "SQLITE_FULL") -> None:
        super().__init__(
            f"The disk holding the store {path} is full",
            f"Free disk space on {path}'s disk, then try again; nothing was half-saved.",
            path=path,
            sqlite_error=sqlite_error,
        )


_UNAVAILABLE: dict[StoreProblem, tuple[str, str]] = {
    StoreProblem.READ_ONLY: (
        "The store {path} is read-only",
        "Give the user running docbridge write permission on the file, its -wal and -shm files "
        "and its folder, then try again; nothing was changed.",
    ),
    StoreProblem.CANNOT_OPEN: (
        "The store {path} cannot be opened",
        "Check that its folder exists and that the user running docbridge may read and write "
        "there (or pass the right --data-dir / DOCBRIDGE_HOME).",
    ),
    StoreProblem.IO_ERROR: (
        "A disk I/O error stopped the store {path}",
        "Check the disk holding it (system log, mount, free space), then try again; the change "
        "in progress was rolled back.",
    ),
    StoreProblem.CORRUPT: (
        "The store {path} is damaged",
        "Stop docbridge and restore the file from a backup (sqlite3's '.recover' may rescue "
        "data); nothing more was written to it.",
    ),
}


class StoreUnavailable(StoreError):
    """The store cannot be used at all until an admin acts: I/O error, read-only, damaged..."""

    def __init__(self, path: Path, problem: StoreProblem, sqlite_error: str = "") -> None:
        title, hint = _UNAVAILABLE[problem]
        super().__init__(
            title.format(path=path), hint, path=path, sqlite_error=sqlite_error or problem.value
        )
        self.problem = problem
