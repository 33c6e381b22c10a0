"""docbridge.toml: the [tui] section, its default and its bounds, refused with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Config, load_config, write_default_config
from core.errors import InvalidInput


def write_config(data_dir: Path, text: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "docbridge.toml").write_text(text, encoding="utf-8")


def test_without_a_file_a_revealed_password_is_masked_after_a_minute(tmp_path: Path) -> None:
    assert load_config(tmp_path).tui.password_reveal_seconds == 60


def test_the_default_file_documents_the_setting_and_means_the_defaults(tmp_path: Path) -> None:
    path = write_default_config(tmp_path)
    text = path.read_text(encoding="utf-8")

    assert "[tui]" in text
    assert "password_reveal_seconds = 60" in text
    assert "masked again" in text
    assert load_config(tmp_path) == Config(data_dir=tmp_path)


@pytest.mark.parametrize("seconds", [5, 90, 3600])
def test_a_reveal_time_in_range_is_used(tmp_path: Path, seconds: int) -> None:
    write_config(tmp_path, f"[tui]\npassword_reveal_seconds = {seconds}\n")
    config = load_config(tmp_path)
    assert config.tui.password_reveal_seconds == seconds
    assert config.sftp == Config(data_dir=tmp_path).sftp  # other sections keep their defaults


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("4", "tui.password_reveal_seconds must be between 5 and 3600, not 4."),
        ("3601", "tui.password_reveal_seconds must be between 5 and 3600, not 3601."),
        ("-60", "tui.password_reveal_seconds must be between 5 and 3600, not -60."),
        ('"60"', "tui.password_reveal_seconds must be an integer, not '60'."),
        ("true", "tui.password_reveal_seconds must be an integer, not True."),
        ("60.5", "tui.password_reveal_seconds must be an integer, not 60.5."),
    ],
)
def test_a_bad_reveal_time_is_refused_with_what_to_fix(
    tmp_path: Path, value: str, message: str
) -> None:
    write_config(tmp_path, f"[tui]\npassword_reveal_seconds = {value}\n")
    with pytest.raises(InvalidInput) as refused:
        load_config(tmp_path)
    assert message in str(refused.value)
    assert str(tmp_path / "docbridge.toml") in str(refused.value)


def test_an_unknown_tui_setting_or_a_non_table_is_refused(tmp_path: Path) -> None:
    write_config(tmp_path, "[tui]\nreveal_seconds = 60\n")
    with pytest.raises(InvalidInput, match=r"unknown setting tui\.reveal_seconds"):
        load_config(tmp_path)
    write_config(tmp_path, "tui = 60\n")
    with pytest.raises(InvalidInput, match=r"\[tui\] must be a table"):
        load_config(tmp_path)


def test_an_smtp_password_in_the_file_is_refused_with_where_it_belongs(tmp_path: Path) -> None:
    """Secrets stay out of the data directory: the password comes from the environment."""
    write_config(tmp_path, '[smtp]\nusername = "gateway"\npassword = "hunter2"\n')
    with pytest.raises(InvalidInput) as refused:
        load_config(tmp_path)
    message = str(refused.value)
    assert "smtp.password" in message and "DOCBRIDGE_SMTP_PASSWORD" in message
    assert "hunter2" not in message
