"""A throwaway PostgreSQL server for the tests: ``initdb`` + ``pg_ctl`` in a temporary folder, on a
free loopback port, stopped at the end of the run.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user (Debian's
package creates it). Each test gets a database of its own, created from an empty template, so
tests never see each other's rows.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "docbridge_test"


class PostgresMissing(RuntimeError):
    """No PostgreSQL server programs on this machine."""


def server_bin_dir() -> Path:
    """Where ``initdb``, ``pg_ctl`` and ``postgres`` are: on PATH, or Debian's versioned folder."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists():
            return Path(folder)
    raise PostgresMissing(
        "PostgreSQL's server programs (initdb, pg_ctl) were not found: install Debian's "
        "'postgresql' package (.ci/run does)."
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server; :meth:`new_database` gives each caller a fresh, empty database."""

    root: Path
    port: int
    run_as: str | None
    _counter: Iterator[int] = itertools.count(1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self, template: str = "", name: str = "") -> str:
        """A new database, empty or a copy of ``template`` (which nobody may be connected
        to); returns its URL."""
        name = name or f"t{os.getpid()}_{next(self._counter)}"
        copy = f' TEMPLATE "{template}"' if template else ""
        self._admin(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE "{name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        """A statement on the maintenance database (names are ours: no quoting needed)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(statement.encode())

    def stop(self) -> None:
        _run(self, "pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _run(server: PostgresServer, program: str, *args: str) -> None:
    command = [str(server_bin_dir() / program), *args]
    if server.run_as:
        command = ["runuser", "-u", server.run_as, "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def start_server(parent: str | None = None) -> PostgresServer:
    """initdb a temporary cluster and start it on a free loopback port (trust auth, no fsync:
    a test server's durability is not under test; the crash tests kill docbridge, not it).
    ``parent``: where its files go (default: the system's temporary folder)."""
    server_bin_dir()  # fail early with the install hint
    run_as = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="docbridge-pg-", dir=parent))
    if run_as:
        user = pwd.getpwnam(run_as)
        os.chown(root, user.pw_uid, user.pw_gid)
    server = PostgresServer(root=root, port=_free_port(), run_as=run_as)
    data = root / "data"
    _run(
        server,
        "initdb",
        "-D",
        str(data),
        "-U",
        SUPERUSER,
        "--auth=trust",
        "--no-sync",
        "-E",
        "UTF8",
        "--locale=C",
    )
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={server.port} -c unix_socket_directories='{root}'"
        " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    )
    with contextlib.suppress(FileNotFoundError):
        (root / "log").unlink()
    _run(server, "pg_ctl", "-D", str(data), "-l", str(root / "log"), "-o", options, "-w", "start")
    return server
