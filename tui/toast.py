"""The one way the TUI shows a toast: never as markup, since messages carry names users typed."""

from __future__ import annotations

from typing import Any

from textual.app import App


def say(
    app: App[Any],
    message: str,
    *,
    title: str = "",
    severity: Any = "information",
    timeout: float | None = None,
) -> None:
    app.notify(message, title=title, severity=severity, timeout=timeout, markup=False)
