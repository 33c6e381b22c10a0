"""SFTP: docbridge against OpenSSH's sshd + sftp-server, driven by the same OpenSSH ``sftp`` client.

Every figure names its method, in its printed line and in the JSON:

- **docbridge through the engine**: ``docbridge serve --no-as2`` as a subprocess, on a fresh demo
  data directory whose Purchasing mailbox has its SFTP integration on. Uploads go to ``/outbox``,
  so the engine takes in each file as it arrives, as in production: the 4 KB files are valid
  outgoing envelope XML (a new uuid each round), each recorded as a sent envelope; the 200 MB
  file is too large for envelope XML and moved to ``error/`` with its note. Downloads come from
  ``/inbox``. Between two measurements the bench waits until the engine has taken in every file,
  so one figure's intake never weighs on the next; the 4 KB figure "taken in" runs from the
  start of the upload until the last file left ``outbox/`` and ``.taking/``.
- **docbridge bare server**: :class:`core.sftp.server.SftpServer` alone in this process, with a
  backend that takes nothing in (the figures this bench gave before issue 11).
- **OpenSSH**: ``sshd`` + ``sftp-server``. For uploads twice: plain ``put`` (nothing is fsync'd)
  and ``put -f`` (the client asks ``fsync@openssh.com`` after each file: the same durability
  for the data; docbridge also fsyncs the folder after the rename).

docbridge always fsyncs an upload and its folder before acknowledging the close, with either
method. Downloads and session setup involve no fsync on either side.

Sizes: one 200 MB file each way (MB/s), 2,000 × 4 KB files each way in one session (files/s),
and session setup (connect, log in, ``pwd``, quit; the median of 5 tries per round, seconds).
Cipher aes128-gcm@openssh.com for every server, so servers are compared, not ciphers; every
server listens on loopback.

Rounds (``BENCH_ROUNDS``, default 5, at least 5) are interleaved: each round measures every
method, figure by figure, in an order that rotates from round to round. This machine is noisy
and others run work on it, so a ratio is taken within each round (docbridge / OpenSSH; for
setup, below 1 is faster) and min / median / max are given over the rounds, for every figure
and every ratio. The last line is one JSON object with every figure, ratio and ``aims_held``.

Authentication is not the same, and cannot be here: docbridge's SFTP server offers passwords
only (a customer logs in with the mailbox's generated password; the argon2 check is part of its
session setup), and sshd checks passwords only against a system account (PAM or the shadow
file), which the bench would have to create or change on this machine. So sshd gets a throwaway
ed25519 key and docbridge its password; both clients run under ``sshpass -e`` (the key login is
never asked for a password), so the client's process chain is the same for both.

Needs ``openssh-client``, ``openssh-server`` and ``sshpass`` (apt). Runs sshd as the current user
with a throwaway host key and client key; everything lives in a temp dir that is removed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.bootstrap import init_data_dir
from core.config import CONFIG_FILE, SftpConfig, load_config
from core.demo import demo_envelope_files
from core.models import IntegrationForm
from core.passwords import generate_password, hash_password
from core.service import Service
from core.sftp.folders import ensure_mailbox_root
from core.sftp.server import SftpServer
from core.sftp.throttle import LoginThrottle

BIG_MB = 200
SMALL_COUNT = 2_000
SMALL_SIZE = 4 * 1024
SETUP_TRIES = 5
MIN_ROUNDS = 5
CIPHER = "aes128-gcm@openssh.com"
BARE_MAILBOX = "be0c0000-0000-4000-8000-000000000000"
ENGINE_MAILBOX_NAME = "Purchasing"
ACME = "0dbfa4db-e126-445e-a164-dac5593117c1"  # a demo mailbox the envelopes are sent to
SSHD = "/usr/sbin/sshd"
SFTP_SERVER_CANDIDATES = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server")
SETTLE_TIMEOUT_S = 900.0
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
DOCBRIDGE_FSYNC = "fsyncs each file and its folder before acknowledging"

# What each figure is: key -> (what, unit, higher is better).
METRICS: dict[str, tuple[str, str, bool]] = {
    "large_up": (f"{BIG_MB} MB upload", "MB/s", True),
    "large_down": (f"{BIG_MB} MB download", "MB/s", True),
    "small_up": (f"{SMALL_COUNT:,} x 4 KB uploads", "files/s", True),
    "small_taken_in": (f"{SMALL_COUNT:,} x 4 KB uploads, until all taken in", "files/s", True),
    "small_down": (f"{SMALL_COUNT:,} x 4 KB downloads", "files/s", True),
    "setup": ("session setup (connect, log in, pwd, quit)", "s", False),
}

UPLOADS = ("large_up", "small_up", "small_taken_in")

# (docbridge's metric and method, OpenSSH's metric and method, aim or None): the ratio is
# docbridge / OpenSSH within each round. "Taken in" is set against OpenSSH's upload: for
# sftp-server a file is done when it is stored.
RATIOS: list[tuple[str, str, str, str, float | None]] = [
    ("small_up", "engine", "small_up", "openssh_f", 1.0),
    ("small_up", "engine", "small_up", "openssh", 0.5),
    ("small_down", "engine", "small_down", "openssh", 0.8),
    ("large_up", "engine", "large_up", "openssh", 0.95),
    ("large_down", "engine", "large_down", "openssh", 0.95),
    ("large_up", "engine", "large_up", "openssh_f", None),
    ("small_taken_in", "engine", "small_up", "openssh_f", None),
    ("setup", "engine", "setup", "openssh", None),
    ("small_up", "bare", "small_up", "openssh_f", None),
    ("small_up", "bare", "small_up", "openssh", None),
    ("small_down", "bare", "small_down", "openssh", None),
    ("large_up", "bare", "large_up", "openssh", None),
    ("large_down", "bare", "large_down", "openssh", None),
    ("setup", "bare", "setup", "openssh", None),
]


@dataclass
class _Server:
    """One SFTP server as the client sees it, and where its files live on disk."""

    name: str
    argv: list[str]  # the client command, without the batch file and the destination
    destination: str
    env: dict[str, str]
    upload_dir: str  # remote paths
    download_dir: str
    upload_local: Path  # the same folders on disk
    download_local: Path
    # Until the server is done with what was uploaded (the engine's intake); None: at once.
    settle: Callable[[], Awaitable[None]] | None = None


@dataclass
class _Method:
    """A way of measuring: a server, how the client uploads, and what is fsync'd."""

    key: str
    server: _Server
    label: str
    upload_fsync: str
    put: str = "put"
    results: dict[str, list[float]] = field(default_factory=dict)

    def record(self, metric: str, value: float) -> None:
        self.results.setdefault(metric, []).append(value)


async def _sftp(server: _Server, work: Path, commands: str) -> float:
    """Run one sftp batch against ``server``; return the wall time in seconds."""
    batch = work / "batch"
    batch.write_text(commands, encoding="utf-8")
    start = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *server.argv,
        "-b",
        str(batch),
        server.destination,
        env=server.env,
        cwd=work,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, err = await process.communicate()
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(
            f"sftp against {server.name} failed ({process.returncode}): {err.decode().strip()}"
        )
    return elapsed


def _empty(directory: Path) -> None:
    for entry in os.scandir(directory):
        if entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)


async def _settled(server: _Server) -> float:
    """Wait until ``server`` is done with the uploads; return how long that took."""
    start = time.perf_counter()
    if server.settle is not None:
        await server.settle()
    return time.perf_counter() - start


def _rotated(items: list[_Method], number: int) -> list[_Method]:
    shift = number % len(items)
    return items[shift:] + items[:shift]


async def _round(number: int, methods: list[_Method], work: Path) -> None:
    """Every figure of every method once, figure by figure, in an order rotated per round."""
    uploads = _rotated(methods, number)
    once = [method for method in uploads if method.put == "put"]  # downloads, setup
    big, small, down = work / "big.bin", work / "small", work / "down"
    await asyncio.to_thread(_write_envelopes, small, SMALL_COUNT)  # new uuids: new envelopes

    for method in uploads:
        server = method.server
        elapsed = await _sftp(server, work, f"{method.put} {big} {server.upload_dir}/big.bin\n")
        method.record("large_up", BIG_MB / elapsed)
        await _settled(server)
        await asyncio.to_thread(_empty, server.upload_local)
    for method in once:
        server = method.server
        elapsed = await _sftp(server, work, f"get {server.download_dir}/big.bin {down}/big.bin\n")
        method.record("large_down", BIG_MB / elapsed)
        await asyncio.to_thread(_empty, down)
    for method in uploads:
        server = method.server
        elapsed = await _sftp(
            server, work, f"lcd {small}\ncd {server.upload_dir}\n{method.put} *\n"
        )
        method.record("small_up", SMALL_COUNT / elapsed)
        if server.settle is not None:
            method.record("small_taken_in", SMALL_COUNT / (elapsed + await _settled(server)))
        await asyncio.to_thread(_empty, server.upload_local)
    for method in once:
        server = method.server
        elapsed = await _sftp(server, work, f"lcd {down}\ncd {server.download_dir}\nget s*\n")
        method.record("small_down", SMALL_COUNT / elapsed)
        await asyncio.to_thread(_empty, down)
    for method in once:
        setups = [await _sftp(method.server, work, "pwd\n") for _ in range(SETUP_TRIES)]
        method.record("setup", statistics.median(setups))


def _write_envelopes(folder: Path, count: int) -> None:
    """``count`` files of exactly 4 KB, each a valid outgoing envelope of Purchasing with its
    own uuid (a demo order turned around, with order lines enough to fill 4 KB)."""
    _empty(folder)
    text = demo_envelope_files()[0].read_text(encoding="utf-8")
    start = text.index(' uuid="') + len(' uuid="')
    old_uuid = text[start : start + 36]
    sender = f'<role id="sender" mailboxUuid="{ACME}"/>'
    recipient_tag = '<role id="recipient" mailboxUuid="'
    purchasing = text[text.index(recipient_tag) + len(recipient_tag) :].split('"', 1)[0]
    text = text.replace(sender, f'<role id="sender" mailboxUuid="{purchasing}"/>')
    text = text.replace(
        f'{recipient_tag}{purchasing}"/>', f'<role id="recipient" mailboxUuid="{ACME}"/>'
    )
    last_line = text.rindex("</fieldset>") + len("</fieldset>")
    line = text[text.rindex("<fieldset ", 0, last_line) : last_line]
    extra = ""
    index = 2
    while len((text + extra + "\n" + line).encode()) < SMALL_SIZE - 64:
        extra += "\n        " + line.replace('index="1"', f'index="{index}"').replace(
            '"lineNumber">2<', f'"lineNumber">{index + 1}<'
        )
        index += 1
    filled = text[:last_line] + extra + text[last_line:]
    for i in range(count):
        body = filled.replace(old_uuid, str(uuid.uuid4())).encode()
        padded = body + b"\n" * (SMALL_SIZE - len(body))
        assert len(padded) == SMALL_SIZE, len(body)
        (folder / f"s{i:05d}.xml").write_bytes(padded)


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
    """The bare server's backend: one login, and nothing takes the uploads in."""

    def __init__(self, password_hash: str) -> None:
        self._hash = password_hash

    async def password_hash(self, login: str) -> str | None:
        return self._hash if login == BARE_MAILBOX else None

    async def file_arrived(self, mailbox_uuid: str, folder: str, name: str) -> None:
        return None


def _docbridge_client(
    port: int, login: str, password: str
) -> tuple[list[str], str, dict[str, str]]:
    argv = [
        "sshpass",
        "-e",
        "sftp",
        "-o",
        "BatchMode=no",  # sftp -b implies BatchMode=yes (no password prompt); -o first wins
        "-o",
        "PubkeyAuthentication=no",
        *COMMON_OPTIONS,
        "-P",
        str(port),
    ]
    return argv, f"{login}@127.0.0.1", {**os.environ, "SSHPASS": password}


@dataclass
class _Engine:
    """``docbridge serve`` on a demo data directory with one SFTP integration on."""

    process: asyncio.subprocess.Process
    root: Path  # the mailbox root
    port: int
    mailbox: str
    password: str

    async def settle(self) -> None:
        """Until every file in outbox/ was taken in; fails if one went to error/ instead
        (except the 200 MB file, which is refused by size), so the figures stay honest."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while await asyncio.to_thread(_waiting, self.root):  # noqa: ASYNC110
            if self.process.returncode is not None:
                raise RuntimeError("docbridge serve ended during the bench")
            if time.monotonic() > deadline:
                raise RuntimeError("the engine did not take the uploads in")
            await asyncio.sleep(0.02)
        refused = await asyncio.to_thread(_take_errors, self.root / "error")
        if refused:
            raise RuntimeError(f"the engine refused uploads: {refused[:3]}")


def _waiting(root: Path) -> bool:
    """A file still in outbox/ or claimed in .taking/ (dot names are not customer files)."""
    for folder in ("outbox", ".taking"):
        try:
            if any(not name.startswith(".") for name in os.listdir(root / folder)):
                return True
        except FileNotFoundError:
            continue
    return False


def _take_errors(folder: Path) -> list[str]:
    """Empty error/; return the notes of files other than the 200 MB one."""
    notes = []
    for entry in os.scandir(folder):
        if entry.name.endswith(".error.txt") and not entry.name.startswith("big"):
            notes.append(f"{entry.name}: {Path(entry.path).read_text().strip()}")
        os.unlink(entry.path)
    return notes


def _configure(home: Path) -> int:
    """A free SFTP port and limits above the bench's files in ``docbridge.toml``; the port."""
    config_path = home / CONFIG_FILE
    port = _free_port()
    text = config_path.read_text(encoding="utf-8")
    for old, new in (
        ("port = 2222", f"port = {port}"),
        ("max_file_size = 104857600", f"max_file_size = {2**40}"),
        ("mailbox_quota = 1073741824", f"mailbox_quota = {2**42}"),
    ):
        if old not in text:
            raise RuntimeError(f"{config_path} has no line {old!r} to change")
        text = text.replace(old, new, 1)
    config_path.write_text(text, encoding="utf-8")
    return port


async def _start_engine(home: Path, log: Path) -> _Engine:
    await init_data_dir(home, with_demo=True, actor="bench")
    port = await asyncio.to_thread(_configure, home)
    service = await Service.open(home, actor="bench")
    try:
        mailbox = (await service.resolve_mailbox(ENGINE_MAILBOX_NAME)).uuid
        password = (await service.save_integration(mailbox, IntegrationForm())).new_password
        await service.set_enabled(mailbox, True)
    finally:
        await service.close()
    if password is None:
        raise RuntimeError("the SFTP integration got no password")
    script = Path(sys.executable).with_name("docbridge")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "tui.launcher"]
    errors = await asyncio.to_thread(open, log, "wb")
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            "--data-dir",
            str(home),
            "serve",
            "--no-as2",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
    finally:
        errors.close()
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
    except TimeoutError:
        line = b""
    if b"engine running" not in line:
        process.kill()
        await process.wait()
        raise RuntimeError(f"docbridge serve did not start; see {log}: {line!r}")
    config = await asyncio.to_thread(load_config, home)
    root = await asyncio.to_thread(ensure_mailbox_root, config.mailboxes_dir, mailbox)
    return _Engine(process, root, port, mailbox, password)


async def _stop_engine(engine: _Engine) -> None:
    if engine.process.returncode is None:
        engine.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(engine.process.wait(), 30)
        except TimeoutError:
            engine.process.kill()
            await engine.process.wait()


async def run(rounds: int) -> dict[str, _Method]:
    for tool in ("sftp", "sshpass", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install openssh-client sshpass")
    with tempfile.TemporaryDirectory(prefix="docbridge-bench-sftp-") as tmp:
        work = Path(tmp)
        password = generate_password()
        backend = _Backend(await asyncio.to_thread(hash_password, password))
        config = SftpConfig(port=0, max_file_size=2**40, mailbox_quota=2**42)
        mailboxes = work / "mailboxes"
        bare_root = await asyncio.to_thread(ensure_mailbox_root, mailboxes, BARE_MAILBOX)
        bare = SftpServer(config, mailboxes, work / "keys" / "host", backend, LoginThrottle())
        bare_port = await bare.start()
        engine = await _start_engine(work / "engine-home", work / "engine.log")
        sshd_upload, sshd_download = work / "sshd-up", work / "sshd-down"
        sshd_upload.mkdir()
        sshd_download.mkdir()
        print(f"preparing {BIG_MB} MB and {SMALL_COUNT:,} x {SMALL_SIZE:,} B files…", flush=True)
        await asyncio.to_thread(
            _prepare_payloads,
            work,
            [bare_root / "inbox", engine.root / "inbox", sshd_download],
        )
        sshd, sshd_port, client_key = await asyncio.to_thread(_start_sshd, work)
        try:
            argv, destination, env = _docbridge_client(engine.port, engine.mailbox, engine.password)
            engine_server = _Server(
                "docbridge serve",
                argv,
                destination,
                env,
                "/outbox",
                "/inbox",
                engine.root / "outbox",
                engine.root / "inbox",
                engine.settle,
            )
            argv, destination, env = _docbridge_client(bare_port, BARE_MAILBOX, password)
            bare_server = _Server(
                "bare SftpServer",
                argv,
                destination,
                env,
                "/outbox",
                "/inbox",
                bare_root / "outbox",
                bare_root / "inbox",
            )
            openssh_server = _Server(
                "OpenSSH",
                [
                    "sshpass",  # never asked (key login): the same process chain as docbridge's
                    "-e",
                    "sftp",
                    "-i",
                    str(client_key),
                    "-o",
                    "IdentitiesOnly=yes",
                    *COMMON_OPTIONS,
                    "-P",
                    str(sshd_port),
                ],
                f"{os.environ.get('USER', 'root')}@127.0.0.1",
                {**os.environ, "SSHPASS": "unused"},
                str(sshd_upload),
                str(sshd_download),
                sshd_upload,
                sshd_download,
            )
            methods = [
                _Method(
                    "engine",
                    engine_server,
                    "docbridge through the engine (docbridge serve)",
                    DOCBRIDGE_FSYNC,
                ),
                _Method(
                    "bare",
                    bare_server,
                    "docbridge bare server (SftpServer alone)",
                    DOCBRIDGE_FSYNC,
                ),
                _Method("openssh", openssh_server, "OpenSSH sshd, put", "no fsync"),
                _Method(
                    "openssh_f",
                    openssh_server,
                    "OpenSSH sshd, put -f",
                    "client asks fsync@openssh.com per file",
                    put="put -f",
                ),
            ]

            async def sshd_ready() -> bool:
                try:
                    await _sftp(openssh_server, work, "pwd\n")
                except RuntimeError:
                    return False
                return True

            await _wait_until(sshd_ready, 10)
            for number in range(rounds):
                print(f"round {number + 1}/{rounds}…", flush=True)
                await _round(number, methods, work)
        finally:
            sshd.terminate()
            await asyncio.to_thread(sshd.wait)
            await _stop_engine(engine)
            await bare.stop()
    return {method.key: method for method in methods}


def spread(values: list[float], digits: int) -> dict[str, float]:
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


def _shown(values: dict[str, float], digits: int) -> str:
    return "  ".join(f"{key} {values[key]:.{digits}f}" for key in ("min", "median", "max"))


def _report(methods: dict[str, _Method], rounds: int) -> None:
    print(
        f"SFTP, OpenSSH sftp client, {CIPHER}, loopback, {rounds} interleaved rounds "
        "(min / median / max over the rounds)"
    )
    figures: dict[str, dict[str, object]] = {}
    for metric, (what, unit, _) in METRICS.items():
        digits = 3 if unit == "s" else 1
        print(f"  {what}, {unit}:")
        for method in methods.values():
            values = method.results.get(metric)
            if not values:
                continue
            fsync = method.upload_fsync if metric in UPLOADS else None
            shown = spread(values, digits)
            label = method.label if fsync else method.label.removesuffix(", put")
            print(f"    {label:<48} {_shown(shown, digits)}" + (f"  ({fsync})" if fsync else ""))
            figures[f"{metric}.{method.key}"] = {
                "what": what,
                "unit": unit,
                "method": label,
                "fsync": fsync or "none on either side",
                **shown,
                "rounds": [round(value, digits) for value in values],
            }
    print("  ratios docbridge / OpenSSH, per round (for setup, below 1 is faster):")
    ratios: dict[str, dict[str, object]] = {}
    aims_held: dict[str, bool] = {}
    for metric, ours, their_metric, theirs, aim in RATIOS:
        mine, other = methods[ours].results[metric], methods[theirs].results[their_metric]
        per_round = [m / o for m, o in zip(mine, other, strict=True)]
        shown = spread(per_round, 2)
        key = f"{metric}.{ours}/{their_metric}.{theirs}"
        held = None if aim is None else shown["median"] >= aim
        verdict = "" if aim is None else f"  aim >= {aim}: {'held' if held else 'MISSED'}"
        print(f"    {key:<44} {_shown(shown, 2)}{verdict}")
        ratios[key] = {
            "aim": aim,
            "held": held,
            **shown,
            "rounds": [round(value, 2) for value in per_round],
        }
        if held is not None:
            aims_held[f"{key} >= {aim}"] = held
    print(
        "  docbridge fsyncs each upload and its folder before acknowledging (both methods); "
        "OpenSSH: put = no fsync,\n  put -f = fsync@openssh.com per file. Auth: docbridge "
        "password (argon2), sshd ed25519 key (see the docstring)."
    )
    result = {
        "bench": "sftp",
        "rounds": rounds,
        "cipher": CIPHER,
        "client": "OpenSSH sftp",
        "small_files": {"count": SMALL_COUNT, "bytes": SMALL_SIZE},
        "large_file_mb": BIG_MB,
        "auth": {"docbridge": "password (sshpass)", "openssh": "ed25519 key (under sshpass)"},
        "figures": figures,
        "ratios": ratios,
        "aims_held": aims_held,
    }
    print(json.dumps(result))


def main() -> None:
    rounds = int(os.environ.get("BENCH_ROUNDS", str(MIN_ROUNDS)))
    if rounds < MIN_ROUNDS:
        raise SystemExit(f"BENCH_ROUNDS must be at least {MIN_ROUNDS}: ratios need the rounds")
    _report(asyncio.run(run(rounds)), rounds)


if __name__ == "__main__":
    main()
