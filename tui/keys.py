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

from tui.key_table import KEYS, WIDGET_KEYS, KeySpec

__all__ = ["KEYS", "WIDGET_KEYS", "KeySpec", "bindings", "key_label", "load_keymap"]

KEYMAP_FILE = "keymap.toml"

_BY_ID: dict[str, KeySpec] = {spec.id: spec for spec in KEYS}


def spec(binding_id: str) -> KeySpec:
    return _BY_ID[binding_id]


def bindings(*ids: str) -> list[Binding]:
    """``BINDINGS`` for a widget, from the table."""
    return [_BY_ID[i].binding() for i in ids]


def load_keymap(data_dir: Path) -> dict[str, str]:
    """``keymap.toml`` in the data directory: ``"binding.id" = "key"`` lines remap keys."""
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


def key_label(app: Any, binding_id: str) -> str:
    """The first key of a binding as the user must press it now (their keymap applied)."""
    keymap: Mapping[str, str] = getattr(app, "_keymap", {}) or {}
    return display(active_key(keymap, binding_id).split(",")[0])
