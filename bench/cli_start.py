"""CLI cold start (issue 11: ``docbridge status`` and ``envelope receive`` within 2x a bare
``python -c "import sqlite3"``, in the same run).

Each figure is the wall-clock time of a whole process, started with ``subprocess.run`` from this
one, as a script or a shell starts it: interpreter start-up (with this environment's ``.pth``
hooks, which the bare reference pays too), imports, the work, exit. Rounds are interleaved: each
round runs the three commands in turn, RUNS times each, so that the machine's drift hits all
three alike; per command the round's median is its figure, and the ratios are per round (median
over median of the bare reference), summarised by their median. The demo data directory is made
once (``docbridge --data-dir D init --demo``; its ``docbridge.toml`` is the default one); every
``envelope receive`` injects a fresh copy of a demo envelope under a new uuid, so the store grows
by a few dozen envelopes over the run. Bytecode is compiled beforehand (``make bench`` does so):
the environment sets PYTHONDONTWRITEBYTECODE, and a cold ``.pyc``-less start measures the
compiler. ``envelope receive`` is measured twice: alone (no engine: the command parses and
stores the envelope itself) and with ``docbridge serve`` running on a second demo data directory
(the command hands the file to the engine through its local socket and prints the uuid once it
is stored). The last line is one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.backlog import spread

ROOT = Path(__file__).resolve().parents[1]
DOCBRIDGE = Path(sys.executable).with_name("docbridge")
DEMO_ENVELOPE = ROOT / "data" / "demo" / "envelopes" / "01-purchase-order-acme.xml"
RUNS = 5  # per command per round
AIM = 2.0


def _timed(argv: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return (time.perf_counter() - began) * 1000


def _envelope(template: str, folder: Path) -> Path:
    """The demo envelope under a new uuid, written before the clock starts."""
    start = template.index(' uuid="') + len(' uuid="')
    path = folder / f"{uuid.uuid4()}.xml"
    path.write_text(template[:start] + str(uuid.uuid4()) + template[start + 36 :], "utf-8")
    return path


LABELS = {
    "bare": 'python -c "import sqlite3"',
    "status": "docbridge status",
    "receive": "docbridge envelope receive (alone)",
    "receive_serve": "docbridge envelope receive (serve running)",
}


def _serve(data_dir: Path) -> subprocess.Popen[bytes]:
    """``docbridge serve`` (no listeners but its local socket), once it answers."""
    engine = subprocess.Popen(
        [str(DOCBRIDGE), "--data-dir", str(data_dir), "serve", "--no-sftp", "--no-as2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not (data_dir / "intake.sock").exists():
        if time.monotonic() > deadline or engine.poll() is not None:
            engine.kill()
            raise RuntimeError("docbridge serve did not start")
        time.sleep(0.05)
    return engine


def _measure(
    rounds: int, home: Path, served: Path, template: str, folder: Path
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Every run's time and each round's median, per command."""
    bare = [sys.executable, "-c", "import sqlite3"]
    status = [str(DOCBRIDGE), "--data-dir", str(home), "status"]
    receive = [str(DOCBRIDGE), "--data-dir", str(home), "envelope", "receive", "Purchasing"]
    handed = [str(DOCBRIDGE), "--data-dir", str(served), "envelope", "receive", "Purchasing"]
    per_round: dict[str, list[float]] = {name: [] for name in LABELS}
    every: dict[str, list[float]] = {name: [] for name in LABELS}
    for _ in range(rounds):
        times: dict[str, list[float]] = {name: [] for name in LABELS}
        for _ in range(RUNS):  # interleaved within the round too
            times["bare"].append(_timed(bare))
            times["status"].append(_timed(status))
            times["receive"].append(_timed([*receive, str(_envelope(template, folder))]))
            times["receive_serve"].append(_timed([*handed, str(_envelope(template, folder))]))
        for name, values in times.items():
            per_round[name].append(statistics.median(values))
            every[name].extend(values)
    return every, per_round


def main() -> None:
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "core"), str(ROOT / "tui")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    template = DEMO_ENVELOPE.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        home, served = Path(tmp) / "home", Path(tmp) / "served"
        for directory in (home, served):
            subprocess.run(
                [str(DOCBRIDGE), "--data-dir", str(directory), "init", "--demo"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        engine = _serve(served)
        try:
            every, per_round = _measure(rounds, home, served, template, Path(tmp))
        finally:
            engine.terminate()
            engine.wait(30)
    ratios = {
        name: spread([c / b for c, b in zip(per_round[name], per_round["bare"], strict=True)])
        for name in ("status", "receive", "receive_serve")
    }
    for name, label in LABELS.items():
        shown = spread(every[name])
        print(
            f"  {label:<42} ms: min {shown['min']:.1f}  median {shown['median']:.1f}  "
            f"max {shown['max']:.1f}  ({rounds} rounds x {RUNS} runs)"
        )
    for name, shown in ratios.items():
        print(
            f"  {LABELS[name] + ' / bare':<42} x: min {shown['min']:.2f}  "
            f"median {shown['median']:.2f}  max {shown['max']:.2f}  (aim <= {AIM})"
        )
    held = {name: shown["median"] <= AIM for name, shown in ratios.items()}
    result = {
        "bench": "cli_start",
        "rounds": rounds,
        "runs_per_round": RUNS,
        "ms": {name: spread(values) for name, values in every.items()},
        "ratio_status": ratios["status"]["median"],
        "ratio_receive": ratios["receive"]["median"],
        "ratio_receive_serve": ratios["receive_serve"]["median"],
        "ratio_ranges": ratios,
        "aim_held_status": held["status"],
        "aim_held_receive": held["receive"],
        "aim_held_receive_serve": held["receive_serve"],
        "aim_held": held["status"] and held["receive"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
