"""Conversion rules (issue 9), three parts, each interleaved over ROUNDS rounds:

a. OUT: small CSV files dropped in coutbox/ of an enabled mailbox, a real Engine in this
   process (SFTP off, durable commits and fsync'd files), until every file's envelopes are
   stored; for an XSLT 1.0 and a 2.0 map. The bare transform is the same maps on the same XML
   views through ``compile_stylesheet``/``transform`` in this process (lxml / saxonche with
   nothing around them: the aim's yardstick); the same through ``TransformPool.run_transform``
   one at a time (as the engine's file loop calls it) is printed too, to show the pool's share.
b. IN: envelopes received for a mailbox whose IN rule (XSLT 1.0) writes each as a file in
   cinbox/ (fsync'd), from a backlog, against default rule 1 (envelope XML into inbox/) on the
   same backlog size.
c. Large sources: a 20 MB CSV, a 20 MB XLSX and a 5 MB EDIFACT interchange, each in a fresh
   process: the XML view there, then a map that counts rows in a pool worker (as the engine
   does); wall time and peak RSS of both processes (VmHWM / ru_maxrss).

``python -m bench conversions``; ``BENCH_ROUNDS`` (default 5) and ``BENCH_PARTS`` (``abc``)
shorten a run. Ends with one JSON line of figures and ratios.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
PARTS = os.environ.get("BENCH_PARTS", "abc")
OUT_FILES = 200  # per map and round
IN_ENVELOPES = 2000  # per variant and round
CSV_MB = 20
XLSX_MB = 20
EDIFACT_MB = 5
CACHE = Path(tempfile.gettempdir()) / "docbridge-bench-conversions"
REPO = Path(__file__).resolve().parent.parent
EDIFACT_SAMPLE = REPO / "tests" / "conversion" / "samples" / "edifact" / "orders-d96a-eancom.edi"

COUNT_ROWS = """<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/">
    <counts rows="{count(/xml/sheet/row)}" lines="{count(/*/*/GROUP_25/LIN)}"/>
  </xsl:template>
</xsl:stylesheet>
"""


def spread(values: Sequence[float]) -> str:
    return f"min {min(values):.4g}  median {statistics.median(values):.4g}  max {max(values):.4g}"


def figures(values: Sequence[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 4),
        "median": round(statistics.median(values), 4),
        "max": round(max(values), 4),
    }


async def poll(done: Callable[[], bool], interval: float = 0.005) -> None:
    # Polls the folders as an operator would: the engine reports no completion event.
    while not await asyncio.to_thread(done):  # noqa: ASYNC110
        await asyncio.sleep(interval)


# --- a. OUT pipeline vs the bare transform ----------------------------------------------------


def csv_file(number: int) -> bytes:
    return (
        b"orderNumber;orderDate;currency;article;quantity;price\n"
        + f"PO-{number}-1;2026-11-01;EUR;A-100;2;10.50\n".encode()
        + f"PO-{number}-2;2026-11-02;EUR;B-200;1;99.00\n".encode()
    )


def empty(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return next(entries, None) is None


async def part_out() -> dict[str, Any]:
    from core.bootstrap import init_data_dir
    from core.config import load_config
    from core.conversion.pool import TransformPool
    from core.conversion.sources import source_view
    from core.conversion.xslt import compile_stylesheet, transform
    from core.engine.engine import Engine, EngineSettings
    from core.engine.file_handler import TAKING
    from core.models import EnvelopeDirection, IntegrationForm
    from core.service import Service
    from core.sftp.folders import ensure_mailbox_root
    from tests.rules.samples import CSV_TO_ORDERS_1_0, CSV_TO_ORDERS_2_0, out_rule

    maps = {"xslt1": CSV_TO_ORDERS_1_0, "xslt2": CSV_TO_ORDERS_2_0}
    rates: dict[str, list[float]] = {f"{m}_{k}": [] for m in maps for k in ("out", "bare", "pool")}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        await init_data_dir(home, with_demo=True, actor="bench")
        service = await Service.open(home, actor="bench")
        mailbox = (await service.resolve_mailbox("Purchasing")).uuid
        await service.save_integration(mailbox, IntegrationForm())
        await service.set_enabled(mailbox, True)
        for name, text in maps.items():
            await service.create_rule(mailbox, out_rule(name, text, rf"^{name}-.*\.csv$"))
        root = ensure_mailbox_root(home / "mailboxes", mailbox)
        params = {
            "SENDER_MAILBOX": mailbox,
            "TEMPLATE_UUID": "9631509a-3c58-465e-a541-d79151dedc11",
            "TEMPLATE_VERSION": "1",
        }
        compiled = {name: compile_stylesheet(text) for name, text in maps.items()}
        engine = Engine(load_config(home), EngineSettings(run_sftp=False, idle_poll_s=0.01))
        await engine.start()
        pool = TransformPool()
        serial = 0
        try:
            for round_index in range(ROUNDS):
                order = list(maps) if round_index % 2 == 0 else list(reversed(maps))
                for name in order:
                    sources = [csv_file(serial + i) for i in range(OUT_FILES)]
                    serial += OUT_FILES
                    views = [source_view(data, "x.csv").xml for data in sources]
                    # bare: the transform alone, in this process
                    began = time.perf_counter()
                    for view in views:
                        transform(compiled[name], view, params, max_output=1 << 26)
                    rates[f"{name}_bare"].append(OUT_FILES / (time.perf_counter() - began))
                    # the pool, one call at a time
                    await pool.run_transform(maps[name], views[0], params)  # warm
                    began = time.perf_counter()
                    for view in views:
                        await pool.run_transform(maps[name], view, params)
                    rates[f"{name}_pool"].append(OUT_FILES / (time.perf_counter() - began))
                    # the engine, file in coutbox/ to envelope stored
                    staging = root / ".staging"
                    for i, data in enumerate(sources):
                        (staging / f"{name}-{serial + i}.csv.part").write_bytes(data)
                    began = time.perf_counter()
                    for i in range(OUT_FILES):
                        os.replace(
                            staging / f"{name}-{serial + i}.csv.part",
                            root / "coutbox" / f"{name}-{serial + i}.csv",
                        )
                    engine.wake()
                    await poll(lambda: empty(root / "coutbox") and empty(root / TAKING))
                    rates[f"{name}_out"].append(OUT_FILES / (time.perf_counter() - began))
                    assert empty(root / "error"), sorted(os.listdir(root / "error"))[:3]
        finally:
            await pool.close()
            await engine.stop()
        sent = [
            e
            for e in await service.list_envelopes(mailbox, limit=10**6)
            if e.direction is EnvelopeDirection.OUTGOING
        ]
        await service.close()
    expected = ROUNDS * len(maps) * OUT_FILES * 2
    assert len(sent) >= expected, (len(sent), expected)
    result: dict[str, Any] = {"files_per_round": OUT_FILES}
    for name in maps:
        for kind in ("bare", "pool", "out"):
            values = rates[f"{name}_{kind}"]
            print(f"  OUT {name} {kind:4}: files/s {spread(values)}")
            result[f"{name}_{kind}_files_s"] = figures(values)
        ratios = [o / b for o, b in zip(rates[f"{name}_out"], rates[f"{name}_bare"], strict=True)]
        pool_ratios = [
            p / b for p, b in zip(rates[f"{name}_pool"], rates[f"{name}_bare"], strict=True)
        ]
        print(f"  OUT {name} out/bare: {spread(ratios)}  (aim >= 0.5)")
        print(f"  OUT {name} pool/bare: {spread(pool_ratios)}")
        result[f"{name}_out_over_bare"] = figures(ratios)
        result[f"{name}_pool_over_bare"] = figures(pool_ratios)
    return result


# --- b. IN through a rule to cinbox/ ----------------------------------------------------------


async def part_in() -> dict[str, Any]:
    from core.bootstrap import init_data_dir
    from core.config import load_config
    from core.demo import demo_envelope_files
    from core.engine.engine import Engine, EngineSettings
    from core.models import EnvelopeStatus, IntegrationForm
    from core.service import Service
    from tests.rules.samples import ORDER_TO_CSV_1_0, in_rule

    rates: dict[str, list[float]] = {"rule": [], "default": []}
    template = demo_envelope_files()[0].read_text(encoding="utf-8")
    start = template.index(' uuid="') + len(' uuid="')
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        await init_data_dir(home, with_demo=True, actor="bench")
        service = await Service.open(home, actor="bench")
        mailbox = (await service.resolve_mailbox("Purchasing")).uuid
        await service.save_integration(mailbox, IntegrationForm())
        await service.set_enabled(mailbox, True)
        config = load_config(home)
        folders = {"rule": home / "mailboxes" / mailbox / "cinbox"}
        folders["default"] = home / "mailboxes" / mailbox / "inbox"
        # The demo's own envelopes first, so the backlog is only ours.
        engine = Engine(config, EngineSettings(run_sftp=False, idle_poll_s=0.01))
        await engine.start()
        while await service.list_envelopes(mailbox, EnvelopeStatus.WAITING, limit=1):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await engine.stop()
        rule = await service.create_rule(mailbox, in_rule("bench", ORDER_TO_CSV_1_0))
        for round_index in range(ROUNDS):
            order = ["rule", "default"] if round_index % 2 == 0 else ["default", "rule"]
            for variant in order:
                await service.set_rule_enabled(rule.uuid, variant == "rule")
                folder = folders[variant]
                folder.mkdir(parents=True, exist_ok=True)
                for path in folder.iterdir():
                    path.unlink()
                for _ in range(IN_ENVELOPES):
                    data = template[:start] + str(uuid.uuid4()) + template[start + 36 :]
                    await service.receive_envelope(mailbox, data.encode())
                engine = Engine(config, EngineSettings(run_sftp=False, idle_poll_s=0.01))
                if variant == "rule":
                    # Worker processes up before the clock starts, as in a running engine.
                    sample = template.encode()
                    params = {"SENDER_MAILBOX": mailbox}
                    await asyncio.gather(
                        *(
                            engine.transforms.run_transform(ORDER_TO_CSV_1_0, sample, params)
                            for _ in range(engine.transforms.size)
                        )
                    )
                began = time.perf_counter()
                await engine.start()

                def arrived(folder: Path = folder) -> bool:
                    return len(os.listdir(folder)) >= IN_ENVELOPES

                await poll(arrived, 0.01)
                rates[variant].append(IN_ENVELOPES / (time.perf_counter() - began))
                await engine.stop()
        await service.close()
    result: dict[str, Any] = {"envelopes_per_round": IN_ENVELOPES, "cores": os.cpu_count()}
    for variant, values in rates.items():
        print(f"  IN {variant:7}: envelopes/s {spread(values)}")
        result[f"in_{variant}_envelopes_s"] = figures(values)
    ratios = [r / d for r, d in zip(rates["rule"], rates["default"], strict=True)]
    print(f"  IN rule/default: {spread(ratios)}  (aim: rule >= 1000 envelopes/s)")
    result["in_rule_over_default"] = figures(ratios)
    return result


# --- c. large sources in a fresh process each -------------------------------------------------


def large_csv() -> Path:
    path = CACHE / f"large-{CSV_MB}mb.csv"
    if path.exists():
        return path
    rng = random.Random(9)
    lines = ["orderNumber;orderDate;currency;article;quantity;price;note"]
    size = 0
    number = 0
    while size < CSV_MB * 1_000_000:
        number += 1
        line = (
            f"PO-{number};2026-11-{1 + number % 28:02d};EUR;A-{rng.randrange(10**6)};"
            f"{rng.randrange(1, 500)};{rng.randrange(100, 100000) / 100};"
            f'"note {rng.randrange(10**9)}, with; a delimiter"'
        )
        lines.append(line)
        size += len(line) + 1
    _write(path, ("\n".join(lines) + "\n").encode())
    return path


def large_xlsx() -> Path:
    path = CACHE / f"large-{XLSX_MB}mb.xlsx"
    if path.exists():
        return path
    import openpyxl

    def write(target: Path, rows: int) -> None:
        rng = random.Random(9)
        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet("Orders")
        sheet.append(["orderNumber", "orderDate", "currency", "article", "quantity", "price"])
        for number in range(rows):
            sheet.append(
                [
                    f"PO-{number}",
                    f"2026-11-{1 + number % 28:02d}",
                    "EUR",
                    f"A-{rng.randrange(10**6)}",
                    rng.randrange(1, 500),
                    rng.randrange(100, 100000) / 100,
                ]
            )
        book.save(target)

    CACHE.mkdir(parents=True, exist_ok=True)
    probe = CACHE / "probe.xlsx"
    write(probe, 20_000)
    rows = int(20_000 * XLSX_MB * 1_000_000 / probe.stat().st_size)
    probe.unlink()
    part = path.with_suffix(".part")
    write(part, rows)
    os.replace(part, path)
    return path


def large_edifact() -> Path:
    path = CACHE / f"large-{EDIFACT_MB}mb.edi"
    if path.exists():
        return path
    segments = EDIFACT_SAMPLE.read_text(encoding="ascii").split("'\n")
    head = [s for s in segments[: segments.index("LIN+1++5020436373085:EN")]]
    tail_at = segments.index("UNS+S")
    lines: list[str] = []
    size = 0
    while size < EDIFACT_MB * 1_000_000:
        n = len(lines) // 3 + 1
        group = [f"LIN+{n}++{5020436000000 + n}:EN", f"QTY+21:{n % 97 + 1}", "RFF+PD:99"]
        lines += group
        size += sum(len(s) + 2 for s in group)
    message = head[2:] + lines + ["UNS+S"]  # from UNH
    unt = f"UNT+{len(message) + 1}+1"
    unz = segments[tail_at + 2]
    text = "'\n".join([*head[:2], *message, unt, unz]) + "'\n"
    _write(path, text.encode("ascii"))
    return path


def _write(path: Path, data: bytes) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part")
    part.write_bytes(data)
    os.replace(part, path)


def high_water_mark() -> int:
    """This process's peak RSS in bytes. Not ru_maxrss: after fork and exec it starts from the
    parent's peak (Linux carries it over), and the bench's own process is large."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def child(path: str) -> None:
    """In a fresh process: the view here, the map in a pool worker, as the engine runs them.

    The worker starts before the file is read, so what it inherits at fork (ru_maxrss of the
    children counts it) is the small process, and its peak is its own."""
    from core.conversion.pool import TransformPool
    from core.conversion.sources import source_view

    async def run() -> dict[str, Any]:
        async with TransformPool(1, time_limit=600) as pool:
            await pool.run_transform(COUNT_ROWS, b"<xml/>", {})
            baseline = high_water_mark()  # interpreter and libraries
            data = await asyncio.to_thread(Path(path).read_bytes)
            began = time.perf_counter()
            view = await asyncio.to_thread(source_view, data, Path(path).name)
            viewed = time.perf_counter()
            del data
            output = await pool.run_transform(COUNT_ROWS, view.xml, {})
            done = time.perf_counter()
        return {
            "view_s": viewed - began,
            "transform_s": done - viewed,
            "view_bytes": len(view.xml),
            "rss_baseline": baseline,
            "rss_view_process": high_water_mark(),
            "counts": output.content.decode().strip(),
        }

    report = asyncio.run(run())
    report["rss_worker"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps(report))


def part_large() -> dict[str, Any]:
    files = {"csv": large_csv(), "xlsx": large_xlsx(), "edifact": large_edifact()}
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in files}
    for round_index in range(ROUNDS):
        kinds = list(files)
        kinds = kinds[round_index % 3 :] + kinds[: round_index % 3]
        for kind in kinds:
            began = time.perf_counter()
            finished = subprocess.run(
                [sys.executable, "-m", "bench.conversions", "child", str(files[kind])],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            )
            report = json.loads(finished.stdout.strip().splitlines()[-1])
            report["wall_s"] = time.perf_counter() - began
            runs[kind].append(report)
    result: dict[str, Any] = {}
    for kind, path in files.items():
        size = path.stat().st_size
        reports = runs[kind]
        walls = [r["wall_s"] for r in reports]
        views = [r["view_s"] for r in reports]
        transforms = [r["transform_s"] for r in reports]
        own = [r["rss_view_process"] / 1e6 for r in reports]
        worker = [r["rss_worker"] / 1e6 for r in reports]
        ratio = [(r["rss_view_process"] + r["rss_worker"]) / size for r in reports]
        print(
            f"  {kind:7} {size / 1e6:.1f} MB (view {reports[0]['view_bytes'] / 1e6:.1f} MB, "
            f"{reports[0]['counts']})"
        )
        print(f"    wall s {spread(walls)}; view s {spread(views)}; map s {spread(transforms)}")
        base = reports[0]["rss_baseline"] / 1e6
        print(
            f"    peak RSS MB: view process {spread(own)} (of which {base:.0f} before reading "
            f"the file); worker {spread(worker)}"
        )
        print(f"    (view process + worker) / file: {spread(ratio)}  (aim <= 10)")
        result[kind] = {
            "file_mb": round(size / 1e6, 2),
            "view_mb": round(reports[0]["view_bytes"] / 1e6, 2),
            "wall_s": figures(walls),
            "view_s": figures(views),
            "transform_s": figures(transforms),
            "rss_view_process_mb": figures(own),
            "rss_worker_mb": figures(worker),
            "rss_baseline_mb": round(base, 1),
            "rss_over_file": figures(ratio),
        }
    return result


def main() -> None:
    results: dict[str, Any] = {"bench": "conversions", "rounds": ROUNDS}
    if "a" in PARTS:
        print(f"a. OUT: {OUT_FILES} CSV files per map and round, engine vs bare transform")
        results["out"] = asyncio.run(part_out())
    if "b" in PARTS:
        print(f"b. IN: {IN_ENVELOPES} envelopes per round, IN rule to cinbox/ vs default rule 1")
        results["in"] = asyncio.run(part_in())
    if "c" in PARTS:
        print("c. large sources, a fresh process each (view there, map in a pool worker)")
        results["large"] = part_large()
    print(json.dumps(results))


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2])
    else:
        main()
