"""The quick path of the commands scripts and monitors run most often: ``docbridge status`` and
``docbridge envelope receive MAILBOX FILE``, synchronous, without argparse and asyncio.

A cold start used to cost some 300 ms, nearly all of it imports (the service with its conversion
and AS2 desks, asyncio, the models, argparse, importlib.metadata). ``status`` here loads none of
them: plain reads on a read-only connection (:mod:`core.storage.status_reads`), cryptography
only when an AS2 certificate is stored. ``envelope receive`` runs the service's own unit of work
(parse, check, store, queue: the same code as :meth:`core.service.Service.receive_envelope`) in
one write transaction on a connection of its own, without the event loop and database thread.

Only the plain spelling is taken: ``--data-dir DIR`` (or ``--data-dir=DIR``) at most once,
anywhere, and ``--json`` after ``status``. Anything else (help, an abbreviated or repeated option,
an operand that looks like an option) returns None and goes through argparse
(:mod:`core.cli_commands`), which answers exactly as before. ``status`` also hands over, before
printing anything, when it would need what it avoids: a missing store, a schema to migrate, a
store error to report.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Sequence

from core.cli_output import print_json, say
from core.data_dir import (
    CONFIG_FILE,
    DATABASE_FILE,
    DEFAULT_CONFIG_TEXT,
    STORE_URL_ENV,
    resolve_data_dir_text,
)

TYPE_CHECKING = False  # not typing: it is one of the imports this module exists to avoid
if TYPE_CHECKING:
    import socket
    from pathlib import Path

    from core.models import CertificateWarning

# core.envelope_xml.DEFAULT_MAX_BYTES (importing it loads lxml): the largest envelope the engine's
# socket is handed; a larger file takes the command's own path, which says why it is refused.
ENVELOPE_MAX_BYTES = 20 * 1024 * 1024


def run_quick(argv: Sequence[str]) -> int | None:
    """The exit code of ``argv`` when it is a quick command in its plain spelling and could be
    answered here; None: run it through :mod:`core.cli_commands` (nothing was changed or shown).
    Domain errors propagate, as from the full path."""
    recognised = recognise(argv)
    if recognised is None:
        return None
    data_dir_option, words = recognised
    data_dir = resolve_data_dir_text(data_dir_option)  # pathlib only where a step needs it
    if words[0] == "status":
        return status(data_dir, as_json=len(words) == 2)
    return receive(data_dir, words[2], words[3])


def recognise(argv: Sequence[str]) -> tuple[str | None, list[str]] | None:
    """(``--data-dir`` value or None, the other words) of a quick command, or None."""
    data_dir: str | None = None
    words: list[str] = []
    seen_data_dir = False
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--data-dir" or word.startswith("--data-dir="):
            if seen_data_dir:
                return None
            seen_data_dir = True
            if word == "--data-dir":
                if index + 1 == len(argv) or argv[index + 1].startswith("-"):
                    return None
                data_dir = argv[index + 1]
                index += 2
                continue
            data_dir = word.partition("=")[2]
        else:
            words.append(word)
        index += 1
    if words in (["status"], ["status", "--json"]):
        return data_dir, words
    if (
        len(words) == 4
        and words[:2] == ["envelope", "receive"]
        and not words[2].startswith("-")
        and not words[3].startswith("-")
    ):
        return data_dir, words
    return None


# -- status ------------------------------------------------------------------------------------


def status(data_dir: str, *, as_json: bool) -> int | None:
    """``docbridge status``; None hands over to the full path before anything is printed."""
    from core.clock import timestamp
    from core.storage import status_reads

    if not check_config(data_dir):
        return None  # a PostgreSQL store: the full path
    conn = status_reads.open_current(os.path.join(data_dir, DATABASE_FILE))
    if conn is None:
        return None  # no store (the full path says how to make one) or a schema to migrate
    try:
        fields = status_reads.engine_status_fields(conn, timestamp())
        names = status_reads.mailbox_names(conn) if fields["sessions"] else {}
        warnings = _certificate_warnings(conn) if status_reads.stores_as2_certificates(conn) else []
    except sqlite3.Error:
        return None  # the full path reports it as the store error it is
    finally:
        conn.close()
    print_status(fields, warnings, names, as_json=as_json)
    return 0


def check_config(data_dir: str) -> bool:
    """Raise what opening the service would for a broken ``docbridge.toml``; whether the store
    is SQLite in the data directory (the only one the quick path opens).

    A missing file or one still holding the default text is known good without tomllib; any
    other is read and checked as :func:`core.config.load_config` checks it, without building the
    config dataclasses.
    """
    if os.environ.get(STORE_URL_ENV, "").strip():
        return False
    default = DEFAULT_CONFIG_TEXT.encode()
    try:
        with open(os.path.join(data_dir, CONFIG_FILE), "rb") as file:
            text = file.read(len(default) + 1)
    except FileNotFoundError:
        return True
    except OSError:
        text = b""  # whatever load_config makes of it
    if text != default:
        from pathlib import Path

        from core.config_file import read_settings

        settings = read_settings(Path(data_dir))
        return not (settings and str(settings["store"].get("url", "")).strip())
    return True


def _certificate_warnings(conn: sqlite3.Connection) -> list[CertificateWarning]:
    from core.as2.expiry import warnings  # cryptography: only with a certificate stored
    from core.clock import utc_datetime

    return warnings(conn, utc_datetime())


def print_status(
    status: dict[str, object],
    expiring: Sequence[CertificateWarning],
    names: dict[str, str],
    *,
    as_json: bool,
) -> None:
    """Print ``docbridge status``: ``status`` has the fields of
    :class:`core.models.EngineStatus`; ``names`` maps the uuids of session mailboxes to names."""
    if as_json:
        print_json({**status, "certificate_warnings": [_warning(w) for w in expiring]})
        return
    nodes = status.get("nodes") or ()
    assert isinstance(nodes, tuple)
    if len(nodes) > 1:  # several nodes share this store: each with its state and listeners
        for node in nodes:
            _say_node(node)
    if status["running"]:
        if len(nodes) <= 1:
            _say_running("engine:     ", status, "")
        sessions = status["sessions"]
        assert isinstance(sessions, tuple)
        say(f"sessions:   {len(sessions) or 'none'}")
        for session in sessions:
            mailbox = session.get("mailbox", "?")
            who = f"{names[mailbox]} ({mailbox})" if mailbox in names else mailbox
            address, since = session.get("address", "?"), session.get("since", "?")
            where = f" on {session['node']}" if len(nodes) > 1 and "node" in session else ""
            say(f"            {who} from {address} since {since}{where}")
    else:
        say("engine:     stopped (start it with 'docbridge serve' or the TUI)")
    say(f"queue:      {status['queue_depth']} waiting")
    say(f"parked:     {status['parked']}")
    for warning in expiring:
        found = _warning(warning)
        say(
            f"certificate: {found['mailbox']} {found['which']} certificate valid until "
            f"{found['valid_until']}: {found['left']}"
        )


def _say_node(node: dict[str, object]) -> None:
    if not node["running"]:
        say(
            f"node:       {node['name']}: gone (last heartbeat {node['heartbeat_at']}, "
            f"pid {node['pid']} on {node['host']})"
        )
        return
    _say_running(f"node:       {node['name']}: ", node, f"{node['name']} ")


def _say_running(label: str, engine: dict[str, object], listener_prefix: str) -> None:
    """A running engine's line and its listeners' (``listener_prefix``: its node's name)."""
    say(f"{label}running (pid {engine['pid']} on {engine['host']}, since {engine['started_at']})")
    listeners = engine["listeners"]
    assert isinstance(listeners, dict)
    for name, address in listeners.items():
        say(f"listener:   {listener_prefix}{name} {address}")


def _warning(warning: CertificateWarning) -> dict[str, object]:
    days = warning.expiry.days_left
    left = "expired" if warning.expiry.expired else f"{days} day{'s' if days != 1 else ''} left"
    return {
        "mailbox": warning.mailbox_name,
        "mailbox_uuid": warning.mailbox_uuid,
        "which": warning.which,
        "fingerprint": warning.fingerprint,
        "valid_until": warning.expiry.not_after.strftime("%Y-%m-%d %H:%M UTC"),
        "days_left": warning.expiry.days_left,
        "left": left,
    }


# -- envelope receive ----------------------------------------------------------------------------


def receive(data_dir: str, mailbox_reference: str, file: str) -> int | None:
    """``docbridge envelope receive``: handed to the running engine through its socket when
    there is one (no parser or models loaded here, the receipt joins the engine's group
    commits), else received here."""
    local_store = check_config(data_dir)
    envelope_uuid = receive_through_engine(data_dir, mailbox_reference, file)
    if (envelope_uuid is None or envelope_uuid is UNANSWERED) and not local_store:
        return None  # a PostgreSQL store: the full path receives it
    if envelope_uuid is None or envelope_uuid is UNANSWERED:
        from pathlib import Path

        resent = envelope_uuid is UNANSWERED
        return receive_here(Path(data_dir), mailbox_reference, file, resent=resent)
    say(envelope_uuid)
    return 0


class _Unanswered(str):
    """The engine was handed the envelope and gave no answer (it died or froze)."""


UNANSWERED = _Unanswered("unanswered")
ANSWER_TIMEOUT_S = 30.0  # the engine answers in milliseconds; a frozen one is not waited for


def receive_through_engine(data_dir: str, mailbox_reference: str, file: str) -> str | None:
    """The envelope's uuid once the engine stored it; None when this process must receive it
    itself: no engine listening, a file it cannot read (its own path says why, in its order),
    or an engine that asks to; UNANSWERED when the engine got it and gave no answer. An error a
    user can act on is raised as the engine words it."""
    import json
    import socket
    import struct

    from core.data_dir import INTAKE_SOCKET

    path = os.path.join(data_dir, INTAKE_SOCKET)
    if not os.path.exists(path):
        return None
    data = _plain_file(file, ENVELOPE_MAX_BYTES)
    if data is None:
        return None
    header = json.dumps({"mailbox": mailbox_reference, "size": len(data)}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as door:
        door.settimeout(ANSWER_TIMEOUT_S)
        try:
            door.connect(path)
        except OSError:
            return None  # not listening (a killed engine's socket): receive here
        try:
            door.sendall(struct.pack(">I", len(header)) + header + data)
            door.shutdown(socket.SHUT_WR)
            answer = json.loads(_read_all(door))
        except (OSError, ValueError):
            # Cut off or silent: it may have stored the envelope before it went (receive here;
            # finding it stored as sent is then the answer).
            return UNANSWERED
    error = answer.get("error")
    if isinstance(error, dict):
        from core.errors import DocbridgeError

        raise DocbridgeError(str(error.get("title", "")), str(error.get("hint", "")))
    uuid = answer.get("uuid")
    return uuid if isinstance(uuid, str) else None


def _read_all(door: socket.socket) -> bytes:
    chunks = []
    while chunk := door.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _plain_file(name: str, limit: int) -> bytes | None:
    """The bytes of a regular file of at most ``limit`` bytes; None for anything else (missing,
    unreadable, a device, too large): the command's own path then says what is wrong."""
    try:
        fd = os.open(os.path.expanduser(name.strip()), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        data = os.read(fd, limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) <= limit else None


def read_regular_file_quietly(file: str, limit: int) -> bytes:
    from core.files import ENVELOPE_TOO_BIG_HINT, read_regular_file

    return read_regular_file(file, limit, ENVELOPE_TOO_BIG_HINT, "an envelope XML file")


def receive_here(
    data_dir: Path, mailbox_reference: str, file: str, *, resent: bool = False
) -> int | None:
    """The steps of the full path, in its order (config, store, mailbox, file, XML, then the
    checks and the write in one transaction), on a connection of its own. None (a missing
    store) hands over before anything is read or written."""
    import uuid

    from core.config import load_config

    config = load_config(data_dir)
    if not config.database_path.exists():
        return None  # the full path says how to make one
    from core.envelope_xml import parse_envelope_xml

    # The service's own units of work, so that the checks are the same by construction.
    from core.intake import receive_envelope, resolve_mailbox
    from core.storage.connection import connect, store_error, write_transaction

    try:
        conn = connect(config.database_path)
        try:
            mailbox = resolve_mailbox(conn, mailbox_reference)
            data = read_envelope_file(file, config.sftp.max_file_size)
            parsed = parse_envelope_xml(data)
            envelope_uuid = parsed.uuid or str(uuid.uuid4())
            with write_transaction(conn):
                envelope = receive_envelope(
                    conn, mailbox.uuid, envelope_uuid, parsed, data, resent=resent
                )
        finally:
            conn.close()
    except sqlite3.Error as exc:
        translated = store_error(exc, config.database_path)
        if translated is None:
            raise
        raise translated from exc
    say(envelope.uuid)
    return 0


def read_envelope_file(path: str, limit: int) -> bytes:
    """The envelope XML file: a regular file only, no bigger than an SFTP upload may be nor than
    an envelope can be, so that /dev/zero, a FIFO or a huge file given by mistake neither fills
    the memory nor blocks (it is refused before it is read)."""
    return read_regular_file_quietly(path, min(limit, ENVELOPE_MAX_BYTES))
