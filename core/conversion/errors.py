"""What can go wrong with a conversion map, as domain errors a user can act on.

Errors cross the process boundary of the worker pool as plain tuples (:func:`to_wire`,
:func:`from_wire`): exceptions with their own ``__init__`` do not pickle reliably.
"""

from __future__ import annotations

from core.errors import InvalidInput


class XsltError(InvalidInput):
    """A conversion map (XSLT) failed; ``line`` is the stylesheet line when one is known."""

    def __init__(self, title: str, hint: str = "", *, line: int | None = None) -> None:
        super().__init__(title, hint)
        self.line = line


class XsltRefused(XsltError):
    """The stylesheet uses a construct that reaches outside it (files, network, environment)."""


class XsltCompileError(XsltError):
    """The stylesheet is not valid XSLT (or not XML)."""


class XsltRuntimeError(XsltError):
    """The transform stopped: ``xsl:message terminate="yes"``, a dynamic error, a bad source."""


class XsltTimeLimit(XsltError):
    """The transform ran longer than its time limit; its worker process was killed."""


class XsltOutputTooLarge(XsltError):
    """The transform produced more than the output cap."""


_KINDS: dict[str, type[XsltError]] = {
    cls.__name__: cls
    for cls in (
        XsltError,
        XsltRefused,
        XsltCompileError,
        XsltRuntimeError,
        XsltTimeLimit,
        XsltOutputTooLarge,
    )
}

Wire = tuple[str, str, str, int | None]


def to_wire(error: XsltError) -> Wire:
    return (type(error).__name__, error.title, error.hint, error.line)


def from_wire(wire: Wire) -> XsltError:
    kind, title, hint, line = wire
    return _KINDS.get(kind, XsltError)(title, hint, line=line)
