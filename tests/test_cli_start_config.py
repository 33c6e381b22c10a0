"""``docbridge status`` with an edited ``docbridge.toml`` (issue 11): the file is checked as
:func:`core.config.load_config` checks it, without the config dataclasses."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from core.config import Config, load_config
from core.config_file import SECTIONS, default_settings


def test_the_default_file_holds_every_setting_with_the_dataclass_default(tmp_path: Path) -> None:
    """The checks take each setting's type and existence from the default file."""
    defaults = asdict(Config(data_dir=tmp_path))
    assert {name: defaults[name] for name in SECTIONS} == default_settings()


def test_an_edited_file_is_read_into_the_config(tmp_path: Path) -> None:
    (tmp_path / "docbridge.toml").write_text(
        '[sftp]\nport = 2022\npublic_host = "sftp.example.com"\n[tui]\n', encoding="utf-8"
    )
    config = load_config(tmp_path)
    assert (config.sftp.port, config.sftp.public_host) == (2022, "sftp.example.com")
    assert config.as2 == Config(data_dir=tmp_path).as2


def test_status_checks_an_edited_file_without_the_config_dataclasses(data_dir: Path) -> None:
    (data_dir / "docbridge.toml").write_text("[sftp]\nport = 2022\n", encoding="utf-8")
    probe = (
        "import sys, io, contextlib\n"
        "from tui.launcher import cli_main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = cli_main(['--data-dir', {str(data_dir)!r}, 'status'])\n"
        "print(code, 'tomllib' in sys.modules, 'dataclasses' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["0", "True", "False"]
