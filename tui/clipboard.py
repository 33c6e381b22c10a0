"""Copying to the user's clipboard, wherever the user sits.

OSC 52 (``App.copy_to_clipboard``) is the only way to reach the clipboard of a user who runs
the TUI over SSH: the terminal on the user's machine receives the escape sequence. pyperclip
additionally reaches a local clipboard (X11, Wayland, macOS) when there is one. Neither gives an
acknowledgement, so the caller keeps the copied value visible and selectable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Any

from textual.app import App

_LOCAL_CLIPBOARD_DISABLED_ENV = "DOCBRIDGE_NO_LOCAL_CLIPBOARD"


def local_clipboard_available() -> bool:
    """Whether a local clipboard can plausibly work (no probing: probing can block)."""
    if os.environ.get(_LOCAL_CLIPBOARD_DISABLED_ENV):
        return False
    if sys.platform in ("darwin", "win32"):
        return "SSH_CONNECTION" not in os.environ
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _pyperclip_copy(text: str) -> bool:
    try:
        import pyperclip

        pyperclip.copy(text)
    except Exception:  # any failure only means "not copied locally"
        return False
    return True


def copy_text(app: App[Any], text: str) -> None:
    """Copy ``text`` by OSC 52 now and, in the background, to a local clipboard; never raises."""
    # A broken terminal write must not crash the page.
    with contextlib.suppress(Exception):
        app.copy_to_clipboard(text)
    if local_clipboard_available():
        # pyperclip runs xclip/wl-copy: a subprocess, so keep it off the event loop.
        app.run_worker(
            asyncio.to_thread(_pyperclip_copy, text),
            group="clipboard",
            exit_on_error=False,
        )
