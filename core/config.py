"""The data directory and its ``docbridge.toml``.

One data directory holds everything a gateway owns: the SQLite database, keys, mailbox roots and
the configuration. It comes from ``--data-dir``, else ``DOCBRIDGE_HOME``, else the user's data
folder, so a TUI and a ``docbridge serve`` started the same way share one store.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InvalidInput

CONFIG_FILE = "docbridge.toml"
DATABASE_FILE = "docbridge.sqlite3"

DEFAULT_CONFIG_TEXT = """\
# docbridge configuration. Changes take effect when docbridge restarts.

[sftp]
# Address the embedded SFTP server listens on, and the host name customers connect to.
listen_host = "127.0.0.1"
port = 2222
public_host = "127.0.0.1"
# Largest single upload and per-mailbox quota, in bytes.
max_file_size = 104857600
mailbox_quota = 1073741824

[as2]
listen_host = "127.0.0.1"
port = 4080
# Base of every mailbox's Self URL: <public_url>/<mailbox uuid>
public_url = "http://127.0.0.1:4080/as2"

[smtp]
host = "127.0.0.1"
port = 25
# One of "none", "starttls", "tls" (implicit TLS). Always explicit: no silent downgrade.
tls_mode = "none"
username = ""
sender = "docbridge@localhost"
"""


@dataclass(frozen=True)
class SftpConfig:
    listen_host: str = "127.0.0.1"
    port: int = 2222
    public_host: str = "127.0.0.1"
    max_file_size: int = 100 * 1024 * 1024
    mailbox_quota: int = 1024 * 1024 * 1024


@dataclass(frozen=True)
class As2Config:
    listen_host: str = "127.0.0.1"
    port: int = 4080
    public_url: str = "http://127.0.0.1:4080/as2"


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 25
    tls_mode: str = "none"
    username: str = ""
    sender: str = "docbridge@localhost"


@dataclass(frozen=True)
class Config:
    data_dir: Path
    sftp: SftpConfig = field(default_factory=SftpConfig)
    as2: As2Config = field(default_factory=As2Config)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)

    @property
    def database_path(self) -> Path:
        return self.data_dir / DATABASE_FILE

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def mailboxes_dir(self) -> Path:
        return self.data_dir / "mailboxes"


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--data-dir`` wins, then ``DOCBRIDGE_HOME``, then ``$XDG_DATA_HOME/docbridge``."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    home = os.environ.get("DOCBRIDGE_HOME")
    if home:
        return Path(home).expanduser().resolve()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return (Path(xdg) / "docbridge").resolve()


def write_default_config(data_dir: Path) -> Path:
    """Create the data directory (0700) and a commented default config if none exists."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / CONFIG_FILE
    if not path.exists():
        path.write_text(DEFAULT_CONFIG_TEXT, encoding="utf-8")
    return path


def load_config(data_dir: Path) -> Config:
    """Read ``docbridge.toml``; a missing file means defaults, a broken one a clear error."""
    path = data_dir / CONFIG_FILE
    if not path.exists():
        return Config(data_dir=data_dir)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(
            f"{path} is not valid TOML: {exc}.", "Fix the file or delete it."
        ) from exc
    return Config(
        data_dir=data_dir,
        sftp=_section(SftpConfig, raw, "sftp", path),
        as2=_section(As2Config, raw, "as2", path),
        smtp=_section(SmtpConfig, raw, "smtp", path),
    )


def _section(cls: Any, raw: dict[str, Any], name: str, path: Path) -> Any:
    values = raw.get(name, {})
    if not isinstance(values, dict):
        raise InvalidInput(f"{path}: [{name}] must be a table.")
    defaults = cls()
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if not hasattr(defaults, key):
            raise InvalidInput(f"{path}: unknown setting {name}.{key}.", "Remove or correct it.")
        expected = type(getattr(defaults, key))
        if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
            raise InvalidInput(
                f"{path}: {name}.{key} must be a {expected.__name__}, not {value!r}."
            )
        kwargs[key] = value
    if name == "smtp" and kwargs.get("tls_mode", "none") not in ("none", "starttls", "tls"):
        raise InvalidInput(f"{path}: smtp.tls_mode must be one of none, starttls, tls.")
    return cls(**kwargs)
