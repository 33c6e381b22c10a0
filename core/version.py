"""The version docbridge names in ``--version`` and bug reports."""

from __future__ import annotations


def package_version() -> str:
    """The installed distribution's version; from a source tree that is not installed, the
    version in its ``pyproject.toml``, so that a bug report always names one.

    importlib.metadata and tomllib load here, when asked: every other command starts without
    them (together some 30 ms)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("docbridge")
    except importlib.metadata.PackageNotFoundError:
        pass
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    try:
        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError):
        return "unknown"
