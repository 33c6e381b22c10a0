"""The core is the product without a screen: importing it must not load Textual."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core"


def core_modules() -> list[str]:
    """Every module of the core package, from its files: a new module is checked without anyone
    remembering to list it."""
    names: list[str] = []
    for path in sorted(CORE.rglob("*.py")):
        parts = path.relative_to(CORE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_the_module_list_is_derived_from_the_files() -> None:
    modules = core_modules()
    assert {"core", "core.engine.sftp_backend", "core.storage.jobs", "core.sftp.server"} <= set(
        modules
    )
    assert len(modules) == len(set(modules))


def test_importing_the_core_loads_no_textual_rich_or_tui() -> None:
    imports = "; ".join(f"import {name}" for name in core_modules())
    probe = (
        f"import sys; {imports}; "
        "bad = sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('textual', 'rich', 'tui')); print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr  # every module imports
    assert result.stdout.strip() == ""


def test_the_probe_would_notice_textual() -> None:
    """Guard against a probe that cannot fail: importing the TUI does load Textual."""
    probe = "import sys, tui.app; print('textual' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"


def test_the_asyncssh_pin_is_the_range_the_upload_hook_was_checked_against() -> None:
    """The SFTP upload hook leans on asyncssh internals checked for one range of releases; the
    dependency must not let pip install a release outside it."""
    import tomllib

    from core.sftp.session import TESTED_ASYNCSSH

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    pins = [d for d in project["project"]["dependencies"] if d.startswith("asyncssh")]
    assert pins == [f"asyncssh{TESTED_ASYNCSSH}"]
