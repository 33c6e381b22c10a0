"""What a user of the Integrations page waits for, with 2,000 conversion rules in the mailbox.

1. Launch -> page drawn, as a ratio to a bare Textual app, both measured in this run: fresh
   Python processes (``bench/_tui_child.py``), started in alternating order, headless at
   120x40. The clock runs from just before the spawn to the first frame that shows the page
   loaded (``IntegrationsScreen.loaded``), so interpreter start, imports, opening the store and
   reading 2,000 rules all count. The bare app is one Static and a Footer, timed to its first
   frame. The in-process engine is not started (``run_engine=False``). The imports part is the
   time of ``import tui.app`` (``textual.app`` + Static + Footer for the bare app) inside the
   same children, interpreter start excluded.
2. Typing in a field: one key into the ``#notify_email`` Input, from just before it is sent to
   the end of the first frame that shows the new character.
3. Opening the rule form: ``enter`` on the rules table, from just before the key to the end of
   the first frame of ``RuleFormScreen``; then ``escape`` back to the page (timed the same way).

A "frame" is ``App._display`` of a screen update, including turning it into the escape sequences
a terminal would receive (headless Textual skips that step; the bench does it and discards the
text). Pilot's own idle waits (>= 20 ms a key) are outside every measurement.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.bootstrap import init_data_dir
from core.models import Direction, RuleForm
from core.service import Service

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "_tui_child.py"
RULES = 2000
ROUNDS = 7
KEYSTROKES = 200
TYPED = "edi.team42@partner-example.com"
RULE_FORM_OPENS = 10
SIZE = (120, 40)
WAIT_SECONDS = 30.0
AIM_RATIO = 1.5
AIM_TYPING_P95_MS = 50.0
AIM_RULE_FORM_MS = 200.0


# -- setup ------------------------------------------------------------------------------------


async def prepare(home: Path) -> str:
    """Demo data plus RULES rules in the first mailbox; returns that mailbox's name.

    The sources are byte-compiled first, as ``make run`` does: with PYTHONDONTWRITEBYTECODE
    set, every launch would otherwise compile core/ and tui/ again (Textual's own modules come
    compiled from their wheel, so the comparison would not be fair)."""
    import compileall

    root = Path(__file__).parents[1]
    for folder in ("core", "tui", "bench"):
        compileall.compile_dir(str(root / folder), quiet=1)
    await init_data_dir(home, with_demo=True, actor="bench")
    service = await Service.open(home, actor="bench")
    try:
        mailbox = (await service.list_mailboxes())[0]
        template = (await service.list_templates(mailbox.account_uuid))[0].uuid
        existing = len(await service.list_rules(mailbox.uuid))
        for index in range(existing, RULES):
            await service.create_rule(
                mailbox.uuid,
                RuleForm(
                    f"Rule {index:04d}",
                    Direction.IN,
                    template,
                    enabled=index % 3 == 0,
                    match_pattern=f"*_{index}.xml",
                    naming_pattern=f"{{envelopeUuid}}_{index}.xml",
                ),
            )
        assert len(await service.list_rules(mailbox.uuid)) == RULES
        return mailbox.name
    finally:
        await service.close()


# -- 1. launch -> first paint, fresh processes ------------------------------------------------


def launch(kind: str, home: Path) -> dict[str, float]:
    """One cold launch; seconds from just before the spawn to each line the child reports."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("TEXTUAL", None)  # no devtools
    command = [sys.executable, str(CHILD), kind, str(home)]
    spawned = time.time()
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    marks = {}
    for line in done.stdout.splitlines():
        tag, _, value = line.partition(" ")
        if tag in ("started", "imported", "painted"):
            marks[tag] = float(value)
    if done.returncode != 0 or "painted" not in marks:
        raise RuntimeError(
            f"{kind} child failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}"
        )
    return {
        "first_paint": marks["painted"] - spawned,
        "interpreter": marks["started"] - spawned,
        "imports": marks["imported"] - marks["started"],
    }


def launches(home: Path) -> dict[str, list[dict[str, float]]]:
    # One untimed launch each first: the clone may have no bytecode cache yet.
    launch("docbridge", home)
    launch("bare", home)
    results: dict[str, list[dict[str, float]]] = {"docbridge": [], "bare": []}
    for round_ in range(ROUNDS):
        order = ("docbridge", "bare") if round_ % 2 == 0 else ("bare", "docbridge")
        for kind in order:
            results[kind].append(launch(kind, home))
    return results


# -- 2. and 3. in process ---------------------------------------------------------------------


class FrameProbe:
    """Wraps one app's ``_display``: renders each frame as a terminal would and stamps the
    first frame after ``arm(condition)`` for which ``condition(screen)`` holds."""

    def __init__(self, app: Any) -> None:
        from textual._compositor import CompositorUpdate

        self.app = app
        self.condition: Callable[[Any], bool] | None = None
        self.stamp: float | None = None
        display = app._display

        def probe(screen: Any, renderable: Any) -> None:
            if isinstance(renderable, CompositorUpdate):
                renderable.render_segments(app.console)
            display(screen, renderable)
            if (
                renderable is not None
                and self.condition is not None
                and self.stamp is None
                and self.condition(screen)
            ):
                self.stamp = time.perf_counter()

        app._display = probe

    def arm(self, condition: Callable[[Any], bool]) -> None:
        self.condition = condition
        self.stamp = None

    async def wait(self, pilot: Any, what: str) -> float:
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                while self.stamp is None:
                    await pilot.pause()
        except TimeoutError:
            raise TimeoutError(f"no frame showed {what} within {WAIT_SECONDS:.0f} s") from None
        self.condition = None
        return self.stamp


def new_app(home: Path) -> Any:
    from tui.app import DocbridgeApp

    return DocbridgeApp(home, actor="bench", cursor_blink=False, poll_engine=False)


async def page_loaded(app: Any, pilot: Any, probe: FrameProbe) -> Any:
    from tui.screens.integrations import IntegrationsScreen

    probe.arm(lambda screen: isinstance(screen, IntegrationsScreen) and screen.loaded)
    await probe.wait(pilot, "the loaded Integrations page")
    await pilot.pause()
    return app.screen


async def typing(home: Path) -> list[float]:
    from textual.widgets import Input

    app = new_app(home)
    async with app.run_test(size=SIZE) as pilot:
        probe = FrameProbe(app)
        screen = await page_loaded(app, pilot, probe)
        field = screen.query_one("#notify_email", Input)
        field.focus()
        field.cursor_position = len(field.value)
        await pilot.pause()
        assert app.focused is field, app.focused
        before = field.value
        typed = "".join(TYPED[i % len(TYPED)] for i in range(KEYSTROKES))
        latencies = []
        for index, char in enumerate(typed):
            length = len(before) + index + 1
            probe.arm(lambda _screen, length=length: len(field.value) == length)
            began = time.perf_counter()
            await pilot.press(char)
            latencies.append(await probe.wait(pilot, f"key {index + 1}") - began)
        assert field.value == before + typed, (field.value, typed)
        assert app.screen is screen, app.screen
    return latencies


async def rule_form(home: Path) -> tuple[list[float], list[float], int]:
    from tui.screens.integrations import IntegrationsScreen
    from tui.screens.rule_form import RuleFormScreen

    app = new_app(home)
    opens, backs, asked = [], [], 0
    async with app.run_test(size=SIZE) as pilot:
        probe = FrameProbe(app)
        page = await page_loaded(app, pilot, probe)
        table = page.query_one("#rules")
        table.focus()
        await pilot.pause()
        assert app.focused is table, app.focused
        for index in range(RULE_FORM_OPENS):
            if index:
                await pilot.press("down")  # a different rule each time
            probe.arm(lambda screen: isinstance(screen, RuleFormScreen))
            began = time.perf_counter()
            await pilot.press("enter")
            opens.append(await probe.wait(pilot, "the rule form") - began)
            await pilot.pause()
            probe.arm(lambda screen: screen is page)
            began = time.perf_counter()
            await pilot.press("escape")
            await pilot.pause()
            if app.screen is not page:
                # It asked about unsaved changes for a rule nobody touched: count it, go back.
                asked += 1
                probe.condition = None
                while app.screen is not page:
                    app.pop_screen()
                    await pilot.pause()
                continue
            backs.append(await probe.wait(pilot, "the page again") - began)
            assert isinstance(app.screen, IntegrationsScreen)
    return opens, backs, asked


# -- report -----------------------------------------------------------------------------------


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(len(ordered) * 0.95) - 1]


def spread(values: list[float]) -> str:
    return (
        f"min {ms(min(values)):.0f} / median {ms(statistics.median(values)):.0f} / "
        f"max {ms(max(values)):.0f} ms"
    )


async def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        began = time.perf_counter()
        mailbox = await prepare(home)
        print(
            f"setup: demo data + {RULES} rules in mailbox {mailbox!r} "
            f"({time.perf_counter() - began:.1f} s, not measured)"
        )
        runs = await asyncio.to_thread(launches, home)
        keys = await typing(home)
        opens, backs, asked = await rule_form(home)

    def column(kind: str, part: str) -> list[float]:
        return [run[part] for run in runs[kind]]

    paint, bare_paint = column("docbridge", "first_paint"), column("bare", "first_paint")
    imports, bare_imports = column("docbridge", "imports"), column("bare", "imports")
    ratio = statistics.median(paint) / statistics.median(bare_paint)
    print(
        f"launch -> page drawn ({ROUNDS} fresh processes each, interleaved, headless "
        f"{SIZE[0]}x{SIZE[1]}, engine not started):"
    )
    print(f"  docbridge, {RULES} rules:      {spread(paint)}")
    print(f"  bare Textual app:           {spread(bare_paint)}")
    print(f"  ratio of medians:           {ratio:.2f} (aim <= {AIM_RATIO})")
    print(
        f"  of which imports: tui.app {spread(imports)}; "
        f"textual.app + Static + Footer {spread(bare_imports)}"
    )
    print(
        "  interpreter start (spawn -> first line of the child): "
        f"{ms(statistics.median(column('docbridge', 'interpreter'))):.0f} / "
        f"{ms(statistics.median(column('bare', 'interpreter'))):.0f} ms median"
    )
    print(
        f"typing into #notify_email, {KEYSTROKES} keys, key -> frame showing it: "
        f"min {ms(min(keys))} / median {ms(statistics.median(keys))} / "
        f"p95 {ms(p95(keys))} / max {ms(max(keys))} ms (aim p95 < {AIM_TYPING_P95_MS:.0f} ms)"
    )
    print(
        f"rule form, enter -> first frame, {len(opens)} opens: {spread(opens)} "
        f"(first {ms(opens[0]):.0f} ms, aim < {AIM_RULE_FORM_MS:.0f} ms)"
    )
    if backs:
        print(f"rule form, escape -> page frame: {spread(backs)}")
    if asked:
        print(f"WARNING: escape from an untouched rule asked about unsaved changes {asked} times")
    figures = {
        "bench": "tui_page",
        "rules": RULES,
        "rounds": ROUNDS,
        "ratio": round(ratio, 3),
        "first_paint_ms": ms(statistics.median(paint)),
        "first_paint_min_ms": ms(min(paint)),
        "first_paint_max_ms": ms(max(paint)),
        "bare_first_paint_ms": ms(statistics.median(bare_paint)),
        "bare_first_paint_min_ms": ms(min(bare_paint)),
        "bare_first_paint_max_ms": ms(max(bare_paint)),
        "import_ms": ms(statistics.median(imports)),
        "bare_import_ms": ms(statistics.median(bare_imports)),
        "typing_min_ms": ms(min(keys)),
        "typing_median_ms": ms(statistics.median(keys)),
        "typing_p95_ms": ms(p95(keys)),
        "typing_max_ms": ms(max(keys)),
        "rule_form_open_min_ms": ms(min(opens)),
        "rule_form_open_median_ms": ms(statistics.median(opens)),
        "rule_form_open_max_ms": ms(max(opens)),
        "rule_form_first_open_ms": ms(opens[0]),
        "rule_form_back_median_ms": ms(statistics.median(backs)) if backs else None,
        "rule_form_unsaved_prompts": asked,
    }
    print(json.dumps(figures))


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
