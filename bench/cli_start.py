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
compiler. The last line is one JSON object.
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


def main() -> None:
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "core"), str(ROOT / "tui")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    template = DEMO_ENVELOPE.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        subprocess.run(
            [str(DOCBRIDGE), "--data-dir", str(home), "init", "--demo"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        bare = [sys.executable, "-c", "import sqlite3"]
        status = [str(DOCBRIDGE), "--data-dir", str(home), "status"]
        receive = [str(DOCBRIDGE), "--data-dir", str(home), "envelope", "receive", "Purchasing"]
        per_round: dict[str, list[float]] = {"bare": [], "status": [], "receive": []}
        every: dict[str, list[float]] = {name: [] for name in per_round}
        for _ in range(rounds):
            times: dict[str, list[float]] = {name: [] for name in per_round}
            for _ in range(RUNS):  # interleaved within the round too
                times["bare"].append(_timed(bare))
                times["status"].append(_timed(status))
                times["receive"].append(_timed([*receive, str(_envelope(template, Path(tmp)))]))
            for name, values in times.items():
                per_round[name].append(statistics.median(values))
                every[name].extend(values)
    ratio_status = [s / b for s, b in zip(per_round["status"], per_round["bare"], strict=True)]
    ratio_receive = [r / b for r, b in zip(per_round["receive"], per_round["bare"], strict=True)]
    labels = {
        "bare": 'python -c "import sqlite3"',
        "status": "docbridge status",
        "receive": "docbridge envelope receive",
    }
    for name, label in labels.items():
        shown = spread(every[name])
        print(
            f"  {label:<28} ms: min {shown['min']:.1f}  median {shown['median']:.1f}  "
            f"max {shown['max']:.1f}  ({rounds} rounds x {RUNS} runs)"
        )
    status_ratio, receive_ratio = spread(ratio_status), spread(ratio_receive)
    for label, shown in (("status / bare", status_ratio), ("receive / bare", receive_ratio)):
        print(
            f"  {label:<28} x: min {shown['min']:.2f}  median {shown['median']:.2f}  "
            f"max {shown['max']:.2f}  (aim <= {AIM})"
        )
    result = {
        "bench": "cli_start",
        "rounds": rounds,
        "runs_per_round": RUNS,
        "ms": {name: spread(values) for name, values in every.items()},
        "ratio_status": status_ratio["median"],
        "ratio_receive": receive_ratio["median"],
        "ratio_status_range": status_ratio,
        "ratio_receive_range": receive_ratio,
        "aim_held": status_ratio["median"] <= AIM and receive_ratio["median"] <= AIM,
        "aim_held_status": status_ratio["median"] <= AIM,
        "aim_held_receive": receive_ratio["median"] <= AIM,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
