"""The core is the product without a screen: importing it must not load Textual."""

from __future__ import annotations

import subprocess
import sys

CORE_MODULES = [
    "core",
    "core.service",
    "core.cli",
    "core.bootstrap",
    "core.storage.db",
    "core.envelope_xml",
    "core.as2.certificates",
    "core.engine.engine",
    "core.engine.serve",
    "core.sftp.server",
]


def test_importing_the_core_loads_no_textual_rich_or_tui() -> None:
    imports = "; ".join(f"import {name}" for name in CORE_MODULES)
    probe = (
        f"import sys; {imports}; "
        "bad = sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('textual', 'rich', 'tui')); print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_the_probe_would_notice_textual() -> None:
    """Guard against a probe that cannot fail: importing the TUI does load Textual."""
    probe = "import sys, tui.app; print('textual' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"
