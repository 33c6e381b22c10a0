"""A real SFTP server on 127.0.0.1, port 0, with a dictionary standing in for the engine."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from argon2 import PasswordHasher

from core.config import SftpConfig
from core.sftp.auth import PasswordVerifier
from core.sftp.server import SftpServer
from core.sftp.throttle import LoginThrottle

# Cheap argon2id for test hashes; verification reads the parameters from each hash.
CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
THRESHOLD = 3

MAILBOX_A = "0a1b2c3d-0000-4000-8000-00000000000a"
MAILBOX_B = "0a1b2c3d-0000-4000-8000-00000000000b"
PASSWORDS = {MAILBOX_A: "password-of-a", MAILBOX_B: "password-of-b"}

# Tests that drive OpenSSH's sftp or scp client (both run ssh), with sshpass for the password.
needs_openssh = pytest.mark.openssh
OPENSSH_TOOLS = ("sftp", "scp", "ssh", "sshpass")


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Without the tools such a test is skipped on a developer's machine, but fails under CI:
    .ci/run installs them, so a CI run that lacks them must not pass while testing less."""
    if item.get_closest_marker("openssh") is None:
        return
    missing = [tool for tool in OPENSSH_TOOLS if shutil.which(tool) is None]
    if not missing:
        return
    reason = f"needs {', '.join(missing)} on PATH (apt-get install openssh-client sshpass)"
    if under_ci():
        pytest.fail(f"CI is set and this test {reason}: CI must run it, not skip it", pytrace=False)
    pytest.skip(reason)


@dataclass
class DictBackend:
    """Test scaffolding for :class:`core.sftp.backend.SftpBackend`."""

    hashes: dict[str, str] = field(default_factory=dict)
    arrived: list[tuple[str, str, str]] = field(default_factory=list)

    async def password_hash(self, login: str) -> str | None:
        return self.hashes.get(login)

    async def file_arrived(self, mailbox_uuid: str, folder: str, name: str) -> None:
        self.arrived.append((mailbox_uuid, folder, name))


# A throwaway server: no host key to check or remember, password only, quiet.
OPENSSH_OPTIONS = (
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "PubkeyAuthentication=no",
    "-o",
    "LogLevel=ERROR",
)


@dataclass
class Harness:
    server: SftpServer
    backend: DictBackend
    throttle: LoginThrottle
    port: int
    mailboxes_dir: Path
    tmp: Path

    def root(self, mailbox: str = MAILBOX_A) -> Path:
        return self.mailboxes_dir / mailbox

    def connect(
        self,
        mailbox: str = MAILBOX_A,
        password: str | None = None,
        source: str | None = None,
    ) -> Awaitable[asyncssh.SSHClientConnection]:
        options: dict[str, Any] = {}
        if source is not None:
            options["local_addr"] = (source, 0)
        return asyncssh.connect(
            "127.0.0.1",
            self.port,
            username=mailbox,
            password=PASSWORDS.get(mailbox, "x") if password is None else password,
            known_hosts=None,
            client_keys=None,
            preferred_auth="password",
            **options,
        )

    async def openssh(
        self,
        commands: str,
        mailbox: str = MAILBOX_A,
        password: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> subprocess.CompletedProcess[str]:
        """Run OpenSSH's sftp in batch mode (password through sshpass's environment)."""
        batch = self.tmp / f"batch-{time.monotonic_ns()}"
        batch.write_text(commands, encoding="utf-8")
        process = await asyncio.create_subprocess_exec(
            *self.openssh_argv(batch, mailbox, extra),
            env={**os.environ, "SSHPASS": password or PASSWORDS[mailbox]},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.tmp,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode is not None
        return subprocess.CompletedProcess([], process.returncode, out.decode(), err.decode())

    def openssh_argv(self, batch: Path, mailbox: str, extra: tuple[str, ...] = ()) -> list[str]:
        # sftp -b implies BatchMode=yes (no password prompt); an earlier -o wins in ssh.
        return [
            "sshpass",
            "-e",
            "sftp",
            "-o",
            "BatchMode=no",
            *OPENSSH_OPTIONS,
            *extra,
            "-b",
            str(batch),
            "-P",
            str(self.port),
            f"{mailbox}@127.0.0.1",
        ]

    def visible_files(self, mailbox: str = MAILBOX_A) -> list[str]:
        """Every file under the mailbox root, staging included, as relative paths."""
        root = self.root(mailbox)
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())

    async def wait_for_no_sessions(self, within_s: float = 5.0) -> None:
        """Until every connection ended and its uploads in progress were cleaned up (the
        server lists a session until then): no fixed wait is needed after this."""
        deadline = time.monotonic() + within_s
        while self.server.sessions():
            assert time.monotonic() < deadline, self.server.sessions()
            await asyncio.sleep(0.01)


HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator[HarnessFactory]:
    started: list[SftpServer] = []

    async def make(**config: Any) -> Harness:
        backend = DictBackend({login: CHEAP.hash(pw) for login, pw in PASSWORDS.items()})
        throttle = LoginThrottle(threshold=THRESHOLD, window_s=60, ban_s=60)
        mailboxes = tmp_path / "mailboxes"
        server = SftpServer(
            replace(SftpConfig(listen_host="127.0.0.1", port=0), **config),
            mailboxes,
            tmp_path / "keys" / "sftp_host_ed25519",
            backend,
            throttle,
            verifier=PasswordVerifier(hasher=CHEAP),
        )
        port = await server.start()
        started.append(server)
        return Harness(server, backend, throttle, port, mailboxes, tmp_path)

    yield make
    for server in started:
        await server.stop()


@pytest.fixture
async def harness(make_harness: HarnessFactory) -> Harness:
    return await make_harness()
