"""``docbridge.toml`` read and checked into plain tables, one per section.

The defaults are the file ``docbridge init`` writes (:data:`core.data_dir.DEFAULT_CONFIG_TEXT`):
every setting is there with its default value, which also gives its type. :mod:`core.config`
builds its dataclasses from these tables; the quick commands (:mod:`core.cli_quick`) only check
an edited file, without the dataclasses.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from core.data_dir import CONFIG_FILE, DEFAULT_CONFIG_TEXT, SMTP_PASSWORD_ENV
from core.errors import InvalidInput

SECTIONS = ("sftp", "as2", "smtp", "conversion", "tui", "store")

_KINDS: dict[type, str] = {int: "an integer", str: "a quoted string", bool: "true or false"}
# Inclusive bounds of integer settings: a value outside is refused when the file is read.
_RANGES: dict[tuple[str, str], tuple[int, int]] = {
    ("tui", "password_reveal_seconds"): (5, 3600),
    ("conversion", "time_limit_seconds"): (1, 3600),
    ("conversion", "max_output"): (1024, 2**40),
    ("conversion", "keep_bytes"): (0, 2**31),
    ("conversion", "keep_days"): (0, 36500),
    ("as2", "max_body_size"): (1024, 2**40),
    ("as2", "max_payload_size"): (1, 2**40),
    ("as2", "mdn_deadline_seconds"): (1, 30 * 86400),
    ("as2", "http_timeout_seconds"): (1, 3600),
}


def default_settings() -> dict[str, dict[str, Any]]:
    """Every setting with its default value, per section."""
    return tomllib.loads(DEFAULT_CONFIG_TEXT)


def read_settings(data_dir: Path) -> dict[str, dict[str, Any]] | None:
    """The settings ``docbridge.toml`` sets, checked, per section (a section it leaves out:
    empty); None without a file. A broken file is an :class:`InvalidInput` that names the
    setting and what to do."""
    path = data_dir / CONFIG_FILE
    if not path.exists():
        return None
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(
            f"{path} is not valid TOML: {exc}.", "Fix the file or delete it."
        ) from exc
    unknown = [name for name in raw if name not in SECTIONS]
    if unknown:  # a misspelt section would silently leave its settings at their defaults
        shown = f"[{unknown[0]}]" if isinstance(raw[unknown[0]], dict) else unknown[0]
        raise InvalidInput(
            f"{path}: unknown section or setting {shown}.",
            f"Remove or correct it; the sections are {', '.join(f'[{s}]' for s in SECTIONS)}.",
        )
    defaults = default_settings()
    return {name: _section(defaults[name], raw, name, path) for name in SECTIONS}


def _section(
    defaults: dict[str, Any], raw: dict[str, Any], name: str, path: Path
) -> dict[str, Any]:
    values = raw.get(name, {})
    if not isinstance(values, dict):
        raise InvalidInput(f"{path}: [{name}] must be a table.")
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if (name, key) == ("smtp", "password"):
            raise InvalidInput(
                f"{path}: smtp.password does not belong in a file.",
                f"Remove it; docbridge reads the SMTP password from {SMTP_PASSWORD_ENV} "
                "in its environment (see 'Running in production' in the README).",
            )
        if key not in defaults:
            raise InvalidInput(f"{path}: unknown setting {name}.{key}.", "Remove or correct it.")
        expected = type(defaults[key])
        if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
            kind = _KINDS.get(expected, f"a {expected.__name__}")
            raise InvalidInput(f"{path}: {name}.{key} must be {kind}, not {value!r}.")
        bounds = _RANGES.get((name, key))
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            raise InvalidInput(
                f"{path}: {name}.{key} must be between {bounds[0]} and {bounds[1]}, not {value!r}.",
                "Correct it, or remove it to use the default.",
            )
        kwargs[key] = value
    if name == "smtp" and kwargs.get("tls_mode", "none") not in ("none", "starttls", "tls"):
        raise InvalidInput(f"{path}: smtp.tls_mode must be one of none, starttls, tls.")
    return kwargs
