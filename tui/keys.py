"""Every key of the TUI in one table: bindings, help and on-screen hints all come from here.

A binding is declared once, with an id (``keymap.toml`` remaps it by that id), and widgets build
their ``BINDINGS`` from this table. Hints on screen ("ctrl+r reset", "F2 turns it off") are
derived with :func:`key_label` from the *active* keymap, so a remapped key is never advertised
under its old name.

Keys arrive bunched over SSH: a letter meant for a text field may land on the page. So single
letters only copy, move focus or open a view; anything that creates, changes or deletes needs a
ctrl or function key, or asks first.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from textual.binding import Binding

from tui.key_spec import KeySpec
from tui.key_table import KEYS, WIDGET_KEYS

__all__ = ["KEYS", "WIDGET_KEYS", "KeySpec", "bindings", "key_label", "load_keymap"]

KEYMAP_FILE = "keymap.toml"

_BY_ID: dict[str, KeySpec] = {spec.id: spec for spec in KEYS}


def spec(binding_id: str) -> KeySpec:
    return _BY_ID[binding_id]


def bindings(*ids: str) -> list[Binding]:
    """``BINDINGS`` for a widget, from the table."""
    return [_BY_ID[i].binding() for i in ids]


def load_keymap(data_dir: Path) -> dict[str, str]:
    """``keymap.toml`` in the data directory: ``"binding.id" = "key"`` lines remap keys.

    Blocking (it reads the file): the app calls it in a thread."""
    path = data_dir / KEYMAP_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return {str(k): str(v) for k, v in raw.items() if isinstance(v, str) and k in _BY_ID}


def active_key(keymap: Mapping[str, str], binding_id: str) -> str:
    """The keys a binding answers to, after the user's keymap (``"enter,c"`` style)."""
    return keymap.get(binding_id, _BY_ID[binding_id].key)


def display(keys: str) -> str:
    """``"f2"`` -> ``"F2"``, ``"escape,f1"`` -> ``"escape / F1"``."""
    shown = []
    for key in keys.split(","):
        key = key.strip()
        if len(key) > 1 and key[0] == "f" and key[1:].isdigit():
            key = key.upper()
        shown.append(key)
    return " / ".join(shown)


class _KeyName:
    """What Textual's parser reads from an entry of its key table: a ``value``."""

    def __init__(self, value: str) -> None:
        self.value = value


def read_escape_digit_as_two_keys() -> None:
    """Escape then a digit, typed quickly, reaches the app as one sequence (``ESC 4``), which
    Textual's key table reads as macOS Option+digit (``¢``): over SSH "leave the field, go to
    block 4" typed a symbol into the field instead. Read it as the two keys the user pressed."""
    from textual._ansi_sequences import ANSI_SEQUENCES_KEYS
    from textual.keys import Keys

    for digit in "0123456789":
        ANSI_SEQUENCES_KEYS[f"\x1b{digit}"] = (Keys.Escape, _KeyName(digit))  # type: ignore[assignment]


def key_label(app: Any, binding_id: str) -> str:
    """The first key of a binding as the user must press it now (their keymap applied)."""
    keymap: Mapping[str, str] = getattr(app, "_keymap", {}) or {}
    return display(active_key(keymap, binding_id).split(",")[0])
