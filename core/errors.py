"""Domain errors: everything a user can cause, with a message that says what to do.

The TUI shows these next to the field (``FieldErrors``) or in an error modal; the CLI prints
one line per error on stderr. Nothing else in the code base should reach a user as a traceback.
"""

from __future__ import annotations


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
