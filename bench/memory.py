"""Memory of ``docbridge serve`` while 100 MB uploads are taken in (issue 11: peak RSS within
100 MB above idle).

What runs: a real ``docbridge serve`` (engine, embedded SFTP server and AS2 listener on free
loopback ports) on a fresh demo data directory of its own, default limits
(``sftp.max_file_size`` 100 MiB, ``conversion.keep_bytes`` 1 MiB), with Purchasing's integration
on SFTP and switched on. Clients are OpenSSH ``sftp`` processes (sshpass, password login,
aes128-gcm), outside the measured process.

One round: FILES uploads of 100 MiB (104,857,600 bytes, random, the largest file the server
accepts) into ``coutbox/``, all at once over FILES concurrent sessions, then wait until the
engine has taken every one in. A file in ``coutbox/`` is a source for the OUT rules: the engine
claims it, reads it, builds its XML view (random bytes are not CSV, XML, EDIFACT or a workbook,
so that fails at the first NUL byte), finds no rule (Purchasing has none), logs the attempt
(input kept up to 1 MiB) and moves the file to ``error/`` with its note. "Taken in" means: the
FILES files and their notes are in ``error/``, nothing is left in ``coutbox/`` or ``.taking/``.

Measured: the serve process's own resident memory (``/proc/PID/status``), not its children (no
conversion worker is started on this path). ``idle`` is VmRSS once the engine has delivered the
demo envelopes and settled, before the first round. Each round's peak is the larger of VmRSS
sampled every 20 ms from the first upload until the last file is taken in and VmHWM, the
kernel's exact high-water mark, reset at the start of each round (``clear_refs``). The figure
is peak minus idle; the aim holds when every round stays within 100 MB (MiB, as the limits).

Side by side, rounds interleaved: a second serve on its own data directory takes the same
uploads into ``outbox/``, where a 100 MiB file is refused by its size (envelope XML is at most
20 MiB) without being read. That is the SFTP path alone (logins included: each argon2id password
check holds 64 MiB while it runs), so the difference between the two is the engine reading files.

Needs ``openssh-client`` and ``sshpass`` (apt). Rounds: ``BENCH_ROUNDS`` (default 5). The last
line is one JSON object.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

DOCBRIDGE = Path(sys.executable).parent / "docbridge"
MAILBOX = "Purchasing"
FILES = 5  # per round, all uploaded at once
FOLDERS = ("coutbox", "outbox")  # the measured one first
FILE_BYTES = 100 * 1024 * 1024
SAMPLE_S = 0.02
AIM_MB = 100
MB = 1024 * 1024
CIPHER = "aes128-gcm@openssh.com"
TAKE_IN_TIMEOUT_S = 300.0
SFTP_OPTIONS = (
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "PubkeyAuthentication=no",
    "-o",
    "BatchMode=no",
    "-o",
    "LogLevel=ERROR",
    "-c",
    CIPHER,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _docbridge(data_dir: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DOCBRIDGE_HOME"}
    done = subprocess.run(
        [str(DOCBRIDGE), "--data-dir", str(data_dir), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"docbridge {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _prepare(data_dir: Path) -> tuple[str, str, int]:
    """A demo data directory on free ports; returns (mailbox uuid, its password, SFTP port)."""
    _docbridge(data_dir, "init", "--demo")
    sftp_port = _free_port()
    (data_dir / "docbridge.toml").write_text(
        f"[sftp]\nport = {sftp_port}\n[as2]\nport = {_free_port()}\n", encoding="utf-8"
    )
    argv = ("integration", "set", MAILBOX, "--protocol", "sftp", "--enable", "--json")
    shown = json.loads(_docbridge(data_dir, *argv))
    password = _docbridge(data_dir, "password", "reset", MAILBOX).strip()
    return shown["sftp"]["login"], password, sftp_port


def _status(data_dir: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(_docbridge(data_dir, "status", "--json"))
    return loaded


def _wait_idle(serve: _Serve) -> None:
    """Until status shows the SFTP listener and the queue has stopped moving (Purchasing's demo
    envelopes delivered; those of the mailboxes left off keep waiting)."""
    deadline = time.monotonic() + 60
    depths: list[object] = []
    while True:
        assert serve.process is not None
        if serve.process.poll() is not None:
            raise RuntimeError(f"docbridge serve exited with {serve.process.returncode}")
        status = _status(serve.data_dir)
        listeners = status.get("listeners")
        if isinstance(listeners, dict) and "sftp" in listeners:
            depths.append(status["queue_depth"])
            if len(depths) >= 4 and len(set(depths[-4:])) == 1:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"serve did not settle: {status}")
        time.sleep(0.2)


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid``, in bytes."""
    found = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) * 1024
    return found


def _idle(pid: int) -> float:
    """The median of VmRSS sampled over a quiet second."""
    samples = []
    for _ in range(20):
        time.sleep(0.05)
        samples.append(_memory(pid)["VmRSS"])
    return statistics.median(samples)


class _Sampler:
    """VmRSS of one process every SAMPLE_S in a thread; the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Sampler:
        with open(f"/proc/{self.pid}/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")  # resets VmHWM to the current RSS
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _memory(self.pid)["VmHWM"])

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _memory(self.pid)["VmRSS"])
            self.samples += 1
            self._stop.wait(SAMPLE_S)


def _upload(login: str, password: str, port: int, source: Path, folder: str, work: Path) -> None:
    """FILES concurrent OpenSSH sftp sessions, each putting ``source`` under its own name."""
    processes = []
    for number in range(FILES):
        batch = work / f"batch-{number}"
        batch.write_text(f"put {source} /{folder}/big-{number}.bin\n", encoding="utf-8")
        argv = ["sshpass", "-e", "sftp", *SFTP_OPTIONS, "-b", str(batch), "-P", str(port)]
        processes.append(
            subprocess.Popen(
                [*argv, f"{login}@127.0.0.1"],
                env={**os.environ, "SSHPASS": password},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"sftp upload failed: {err.decode().strip()}")


def _taken_in(root: Path, folder: str) -> bool:
    if any(not e.name.startswith(".") for e in os.scandir(root / folder)):
        return False
    taking = root / ".taking"
    if taking.is_dir() and any(e.is_dir() for e in os.scandir(taking)):
        return False
    failed = [n for n in os.listdir(root / "error") if not n.endswith(".error.txt")]
    notes = [n for n in os.listdir(root / "error") if n.endswith(".error.txt")]
    return len(failed) == FILES and len(notes) == FILES


def _empty_error(root: Path) -> None:
    for entry in os.scandir(root / "error"):
        os.unlink(entry.path)


@dataclass
class _Serve:
    """One ``docbridge serve`` on its own data directory, and the folder its rounds fill."""

    folder: str
    data_dir: Path
    login: str
    password: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    idle: float = 0.0
    rounds: list[dict[str, float]] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.data_dir / "mailboxes" / self.login

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, log: Path) -> None:
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                [str(DOCBRIDGE), "--data-dir", str(self.data_dir), "serve"],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
            )

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _round(serve: _Serve, source: Path, work: Path) -> None:
    root, folder = serve.root, serve.folder
    _empty_error(root)
    time.sleep(1.2)  # the server's quota rescan sees error/ emptied
    began = time.perf_counter()
    with _Sampler(serve.pid) as sampler:
        _upload(serve.login, serve.password, serve.port, source, folder, work)
        uploaded = time.perf_counter() - began
        deadline = time.monotonic() + TAKE_IN_TIMEOUT_S
        while not _taken_in(root, folder):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the engine did not take in the {folder}/ files")
            time.sleep(0.05)
    if folder == "outbox":
        reason = next((root / "error").glob("*.error.txt")).read_text(encoding="utf-8")
        assert "did not read it" in reason, reason
    serve.rounds.append(
        {
            "over": (sampler.peak - serve.idle) / MB,
            "after": (_memory(serve.pid)["VmRSS"] - serve.idle) / MB,
            "upload_s": uploaded,
            "total_s": time.perf_counter() - began,
        }
    )


def spread(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 1),
        "median": round(statistics.median(values), 1),
        "max": round(max(values), 1),
    }


def _show(label: str, values: list[float], unit: str = "MB") -> str:
    shown = spread(values)
    return (
        f"  {label}: min {shown['min']}  median {shown['median']}  max {shown['max']} {unit}"
    ).rstrip()


def main() -> None:
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    if shutil.which("sftp") is None or shutil.which("sshpass") is None:
        raise SystemExit("sftp/sshpass not found: apt-get install openssh-client sshpass")
    with tempfile.TemporaryDirectory(prefix="docbridge-bench-memory-") as tmp:
        work = Path(tmp)
        source = work / "big.bin"
        with open(source, "wb") as out:
            for _ in range(FILE_BYTES // MB):
                out.write(os.urandom(MB))
        serves = [_Serve(folder, work / folder, *_prepare(work / folder)) for folder in FOLDERS]
        try:
            for serve in serves:
                serve.start(work / f"{serve.folder}.log")
            for serve in serves:
                _wait_idle(serve)
                serve.idle = _idle(serve.pid)
            for number in range(1, rounds + 1):
                print(f"round {number}/{rounds}…", flush=True)
                for serve in serves if number % 2 else serves[::-1]:
                    _round(serve, source, work)
        finally:
            for serve in serves:
                serve.stop()
    _report(rounds, *serves)


def _report(rounds: int, measured: _Serve, beside: _Serve) -> None:
    print(
        f"docbridge serve, {FILES} × {FILE_BYTES // MB} MiB uploaded at once over OpenSSH sftp "
        f"({CIPHER}), {rounds} interleaved rounds, one serve per folder"
    )
    what = {"coutbox": "read, no rule, to error/", "outbox": "refused unread, to error/"}
    for serve in (measured, beside):
        print(f" {serve.folder}/ ({what[serve.folder]}), idle RSS {serve.idle / MB:.1f} MB:")
        print(_show("peak RSS over idle", [r["over"] for r in serve.rounds]))
        print(_show("RSS after the round over idle", [r["after"] for r in serve.rounds]))
        print(_show("uploads done", [r["upload_s"] for r in serve.rounds], "s"))
        print(_show("all taken in", [r["total_s"] for r in serve.rounds], "s"))
    shown = spread([r["over"] for r in measured.rounds])
    held = shown["max"] <= AIM_MB
    print(f"  coutbox/ peak over idle, worst round: {shown['max']} MB (aim <= {AIM_MB})")
    result = {
        "bench": "memory",
        "rounds": rounds,
        "files": FILES,
        "file_mb": FILE_BYTES // MB,
        "folder": measured.folder,
        "idle_mb": round(measured.idle / MB, 1),
        "peak_over_idle_mb": shown,
        "outbox_idle_mb": round(beside.idle / MB, 1),
        "outbox_peak_over_idle_mb": spread([r["over"] for r in beside.rounds]),
        "aim_mb": AIM_MB,
        "aim_held": held,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
