"""Where the data directory is, and what its file names and a fresh ``docbridge.toml`` are.

Apart from :mod:`core.config` (which reads and checks the file, with tomllib and dataclasses) so
that the quick commands (:mod:`core.cli_quick`) find the store and recognise an untouched
default configuration without paying for either.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing: see core.cli_quick
if TYPE_CHECKING:
    from pathlib import Path

CONFIG_FILE = "docbridge.toml"
# The SMTP password (when smtp.username is set) comes from the environment, never from a file.
SMTP_PASSWORD_ENV = "DOCBRIDGE_SMTP_PASSWORD"
DATABASE_FILE = "docbridge.sqlite3"
STORE_URL_ENV = "DOCBRIDGE_STORE_URL"  # a PostgreSQL store's URL (wins over [store] url)
INTAKE_SOCKET = "intake.sock"  # the running engine's door for `docbridge envelope receive`

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
# SSH sessions one mailbox may have open at once (each may hold up to 64 files).
max_sessions_per_mailbox = 10
# Where the mailbox folders are. Empty: mailboxes/ in the data directory. Several nodes share
# one folder tree (a POSIX mount such as NFSv4.1+, README: "Running several nodes").
mailbox_root = ""

[as2]
listen_host = "127.0.0.1"
port = 4080
# Base of every mailbox's Self URL: <public_url>/<mailbox uuid>
public_url = "http://127.0.0.1:4080/as2"
# Largest request body accepted (bigger: HTTP 413 before it is read) and largest payload once
# decompressed (bigger: MDN "decompression-failed"), in bytes.
max_body_size = 104857600
max_payload_size = 104857600
# How long an asynchronous MDN may take before the message is parked, and how long one HTTP
# exchange with a partner may take, in seconds.
mdn_deadline_seconds = 3600
http_timeout_seconds = 120

[smtp]
host = "127.0.0.1"
port = 25
# One of "none", "starttls", "tls" (implicit TLS). Always explicit: no silent downgrade.
tls_mode = "none"
# With a username, the password is read from the environment variable DOCBRIDGE_SMTP_PASSWORD.
username = ""
sender = "docbridge@localhost"

[conversion]
# Longest one conversion map (XSLT) may run, in seconds, and the most it may write, in bytes.
time_limit_seconds = 10
max_output = 52428800
# The conversion log keeps each attempt's input and output for inspection up to this size
# (bytes, each) and for this many days.
keep_bytes = 1048576
keep_days = 30

[tui]
# Seconds a revealed password stays readable on screen before it is masked again (5 to 3600).
password_reveal_seconds = 60

[store]
# Where docbridge keeps its state. Empty: SQLite in this data directory (one host). A PostgreSQL
# URL, postgresql://USER:PASSWORD@HOST:PORT/DATABASE, lets several nodes share one store (README:
# "Running several nodes"). DOCBRIDGE_STORE_URL, if set, wins: keep the password out of files.
url = ""
"""


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--data-dir`` wins, then ``DOCBRIDGE_HOME``, then ``$XDG_DATA_HOME/docbridge``."""
    from pathlib import Path

    return Path(resolve_data_dir_text(explicit))


def resolve_data_dir_text(explicit: str | os.PathLike[str] | None = None) -> str:
    """:func:`resolve_data_dir` as a string, without loading pathlib (for the quick commands).

    An empty ``--data-dir`` (a script's unset variable) is refused, never taken as the default
    directory: that would act on another gateway's data."""
    if explicit is not None and not os.fspath(explicit).strip():
        from core.errors import InvalidInput

        raise InvalidInput(
            "--data-dir is empty.", "Give the data directory's path, or leave the option out."
        )
    if explicit:
        return os.path.realpath(os.path.expanduser(explicit))
    home = os.environ.get("DOCBRIDGE_HOME")
    if home:
        return os.path.realpath(os.path.expanduser(home))
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.realpath(os.path.join(xdg, "docbridge"))
