"""Child process of bench/tui_page.py: one cold launch, headless, up to the first paint.

``python bench/_tui_child.py docbridge DATA_DIR`` or ``python bench/_tui_child.py bare``.

Only ``time`` is imported before the first clock reading, and the parent measures from just
before it spawned this process, so interpreter start, imports, app start-up and the first frame
all count. The child writes three lines to fd 1 (Textual captures ``print`` while an app runs):
``started <time.time()>`` when this script begins, ``imported <time.time()>`` after the app's
module (``tui.app`` or ``textual.app`` + the two widgets the bare app uses), and
``painted <time.time()>`` right after the first frame of the page (docbridge: the first frame
of ``IntegrationsScreen`` once its ``loaded`` is True; bare: its first frame), then it exits.

Headless Textual skips turning a frame into terminal escape sequences; the probe does that
work (and throws the text away) so the frame costs what it costs on a real terminal.
"""

import time

STARTED = time.time()

import os  # noqa: E402
import sys  # noqa: E402


def say(tag: str, when: float) -> None:
    os.write(1, f"{tag} {when!r}\n".encode())


def render_like_a_terminal(app, renderable):  # type: ignore[no-untyped-def]
    from textual._compositor import CompositorUpdate

    if app.is_headless and isinstance(renderable, CompositorUpdate):
        renderable.render_segments(app.console)


def docbridge(data_dir: str) -> None:
    import tui.app

    say("imported", time.time())
    from pathlib import Path

    from tui.screens.integrations import IntegrationsScreen

    # Wrapped on the instance, not in a subclass: DocbridgeApp finds its CSS next to its module.
    app = tui.app.DocbridgeApp(
        Path(data_dir),
        actor="bench",
        cursor_blink=False,
        poll_engine=False,
        run_engine=False,
    )
    display = app._display
    reported = False

    def probe(screen, renderable):  # type: ignore[no-untyped-def]
        nonlocal reported
        if renderable is not None:
            render_like_a_terminal(app, renderable)
        display(screen, renderable)
        if (
            not reported
            and renderable is not None
            and isinstance(screen, IntegrationsScreen)
            and screen.loaded
        ):
            reported = True
            say("painted", time.time())
            app.exit()

    app._display = probe  # type: ignore[method-assign]
    app.run(headless=True, size=(120, 40))
    if not reported:
        sys.exit("the Integrations page never painted loaded")


def bare() -> None:
    from textual.app import App, ComposeResult
    from textual.widgets import Footer, Static

    say("imported", time.time())

    class Bare(App[None]):
        BINDINGS = [("ctrl+q", "quit", "Quit")]
        reported = False

        def compose(self) -> ComposeResult:
            yield Static("A bare Textual app: one Static and a Footer.")
            yield Footer()

        def _display(self, screen, renderable):  # type: ignore[no-untyped-def]
            if renderable is not None:
                render_like_a_terminal(self, renderable)
            super()._display(screen, renderable)
            if not self.reported and renderable is not None:
                self.reported = True
                say("painted", time.time())
                self.exit()

    app = Bare()
    app.run(headless=True, size=(120, 40))
    if not app.reported:
        sys.exit("the bare app never painted")


if __name__ == "__main__":
    say("started", STARTED)
    if sys.argv[1] == "docbridge":
        docbridge(sys.argv[2])
    else:
        bare()
