"""Embedded SFTP server vs OpenSSH's sshd + sftp-server, driven by the same OpenSSH ``sftp`` client.

Measures MB/s for one 200 MB upload and download, files/s for 2,000 × 4 KB files each way, and
session setup time (connect, log in, ``pwd``, quit). Both servers run on loopback ports in the
same run and the measurements are interleaved round by round, because this machine is noisy;
the medians are printed with the ratio embedded/OpenSSH (above 1: the embedded server is faster;
for setup, below 1 is faster). Both use aes128-gcm, so the servers are compared, not ciphers.

The embedded server fsyncs every upload before acknowledging it (docbridge's durability promise);
sftp-server does not, which weighs on the small-file upload figure.

Needs ``openssh-client``, ``openssh-server`` and ``sshpass`` (apt). Runs sshd as the current user
with a throwaway host key and client key; everything lives in a temp dir that is removed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.config import SftpConfig
from core.passwords import generate_password, hash_password
from core.sftp.folders import ensure_mailbox_root
from core.sftp.server import SftpServer
from core.sftp.throttle import LoginThrottle

BIG_MB = 200
SMALL_COUNT = 2_000
SMALL_SIZE = 4 * 1024
ROUNDS = 3
SETUP_TRIES = 5
CIPHER = "aes128-gcm@openssh.com"
MAILBOX = "bench0000-0000-4000-8000-000000000000"
SSHD = "/usr/sbin/sshd"
SFTP_SERVER_CANDIDATES = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server")
COMMON_OPTIONS = (
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-c",
    CIPHER,
)


@dataclass
class _Target:
    """One server as the sftp client sees it, and where its files live on disk."""

    name: str
    argv: list[str]
    env: dict[str, str]
    upload_dir: str  # remote paths
    download_dir: str
    upload_local: Path  # the same folders on disk, to clean up between runs
    download_local: Path
    results: dict[str, list[float]] = field(default_factory=dict)

    def record(self, metric: str, value: float) -> None:
        self.results.setdefault(metric, []).append(value)


async def _sftp(target: _Target, work: Path, commands: str) -> float:
    """Run one sftp batch against ``target``; return the wall time in seconds."""
    batch = work / "batch"
    batch.write_text(commands, encoding="utf-8")
    start = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *target.argv[:-1],
        "-b",
        str(batch),
        target.argv[-1],
        env=target.env,
        cwd=work,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, err = await process.communicate()
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"sftp against {target.name} failed: {err.decode().strip()}")
    return elapsed


def _empty(directory: Path) -> None:
    for entry in os.scandir(directory):
        os.unlink(entry.path)


async def _round(target: _Target, work: Path) -> None:
    big, small = work / "big.bin", work / "small"
    down = work / "down"
    await asyncio.to_thread(_empty, target.upload_local)
    elapsed = await _sftp(target, work, f"put {big} {target.upload_dir}/big.bin\n")
    target.record("upload MB/s", BIG_MB / elapsed)
    elapsed = await _sftp(target, work, f"get {target.download_dir}/big.bin {down}/big.bin\n")
    target.record("download MB/s", BIG_MB / elapsed)
    await asyncio.to_thread(_empty, down)
    await asyncio.to_thread(_empty, target.upload_local)
    elapsed = await _sftp(target, work, f"lcd {small}\ncd {target.upload_dir}\nput *\n")
    target.record("4 KB uploads files/s", SMALL_COUNT / elapsed)
    elapsed = await _sftp(target, work, f"lcd {down}\ncd {target.download_dir}\nget s*\n")
    target.record("4 KB downloads files/s", SMALL_COUNT / elapsed)
    await asyncio.to_thread(_empty, down)
    await asyncio.to_thread(_empty, target.upload_local)
    setups = [await _sftp(target, work, "pwd\n") for _ in range(SETUP_TRIES)]
    target.record("session setup s", statistics.median(setups))


def _prepare_payloads(work: Path, download_dirs: list[Path]) -> None:
    (work / "small").mkdir()
    (work / "down").mkdir()
    with open(work / "big.bin", "wb") as out:
        for _ in range(BIG_MB):
            out.write(os.urandom(1024 * 1024))
    for directory in download_dirs:
        shutil.copyfile(work / "big.bin", directory / "big.bin")
    for i in range(SMALL_COUNT):
        data = os.urandom(SMALL_SIZE)
        (work / "small" / f"s{i:05d}.bin").write_bytes(data)
        for directory in download_dirs:
            (directory / f"s{i:05d}.bin").write_bytes(data)


def _start_sshd(work: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    sftp_server = next((p for p in SFTP_SERVER_CANDIDATES if os.path.exists(p)), None)
    if not os.path.exists(SSHD) or sftp_server is None:
        raise RuntimeError("OpenSSH server not found: apt-get install openssh-server")
    keys = work / "sshd"
    keys.mkdir(mode=0o700)
    for name in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True
        )
    shutil.copyfile(keys / "client.pub", keys / "authorized_keys")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    port = _free_port()
    config = keys / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host'}\n"
        f"PidFile {keys / 'sshd.pid'}\nAuthorizedKeysFile {keys / 'authorized_keys'}\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        f"Subsystem sftp {sftp_server}\n"
    )
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    return process, port, keys / "client"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_until(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError("server did not come up")
        await asyncio.sleep(0.1)


class _Backend:
    def __init__(self, password_hash: str) -> None:
        self._hash = password_hash

    async def password_hash(self, login: str) -> str | None:
        return self._hash if login == MAILBOX else None

    async def file_arrived(self, mailbox_uuid: str, folder: str, name: str) -> None:
        return None


async def run() -> None:
    for tool in ("sftp", "sshpass", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install openssh-client sshpass")
    with tempfile.TemporaryDirectory(prefix="docbridge-bench-sftp-") as tmp:
        work = Path(tmp)
        password = generate_password()
        backend = _Backend(await asyncio.to_thread(hash_password, password))
        config = SftpConfig(port=0, max_file_size=2**40, mailbox_quota=2**42)
        mailboxes = work / "mailboxes"
        root = await asyncio.to_thread(ensure_mailbox_root, mailboxes, MAILBOX)
        server = SftpServer(config, mailboxes, work / "keys" / "host", backend, LoginThrottle())
        port = await server.start()
        sshd_upload, sshd_download = work / "sshd-up", work / "sshd-down"
        sshd_upload.mkdir()
        sshd_download.mkdir()
        print(f"preparing {BIG_MB} MB and {SMALL_COUNT} × {SMALL_SIZE} B files…", flush=True)
        await asyncio.to_thread(_prepare_payloads, work, [root / "inbox", sshd_download])
        sshd, sshd_port, client_key = await asyncio.to_thread(_start_sshd, work)
        try:
            embedded = _Target(
                "embedded",
                [
                    "sshpass",
                    "-e",
                    "sftp",
                    "-o",
                    "BatchMode=no",
                    "-o",
                    "PubkeyAuthentication=no",
                    *COMMON_OPTIONS,
                    "-P",
                    str(port),
                    f"{MAILBOX}@127.0.0.1",
                ],
                {**os.environ, "SSHPASS": password},
                "/outbox",
                "/inbox",
                root / "outbox",
                root / "inbox",
            )
            openssh = _Target(
                "OpenSSH",
                [
                    "sftp",
                    "-i",
                    str(client_key),
                    "-o",
                    "IdentitiesOnly=yes",
                    *COMMON_OPTIONS,
                    "-P",
                    str(sshd_port),
                    f"{os.environ.get('USER', 'root')}@127.0.0.1",
                ],
                dict(os.environ),
                str(sshd_upload),
                str(sshd_download),
                sshd_upload,
                sshd_download,
            )

            async def sshd_ready() -> bool:
                try:
                    await _sftp(openssh, work, "pwd\n")
                except RuntimeError:
                    return False
                return True

            await _wait_until(sshd_ready, 10)
            for number in range(1, ROUNDS + 1):
                print(f"round {number}/{ROUNDS}…", flush=True)
                order = (embedded, openssh) if number % 2 else (openssh, embedded)
                for target in order:
                    await _round(target, work)
        finally:
            sshd.terminate()
            await asyncio.to_thread(sshd.wait)
            await server.stop()
    _report(embedded, openssh)


def _report(embedded: _Target, openssh: _Target) -> None:
    print(f"SFTP, OpenSSH sftp client, {CIPHER}, median of {ROUNDS} interleaved rounds")
    print(f"{'':24} {'embedded':>10} {'OpenSSH':>10} {'ratio':>7}")
    for metric, values in embedded.results.items():
        mine = statistics.median(values)
        theirs = statistics.median(openssh.results[metric])
        digits = 3 if metric.endswith(" s") else 0
        print(
            f"{metric:24} {mine:10.{digits}f} {theirs:10.{digits}f} {mine / theirs:7.2f}",
        )
    print(
        "ratio = embedded/OpenSSH (for setup, below 1 is faster). The embedded server fsyncs "
        "each upload\nand its folder before acknowledging it; sftp-server does not."
    )


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
