"""The docbridge TUI: the Integrations page (SPEC §3) on top of the service API."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from core.engine.engine import Engine, EngineBusy
from core.errors import DocbridgeError
from core.models import EngineStatus
from core.service import Service, default_actor
from tui.modals.choice import SaveDiscardCancelModal
from tui.modals.error import ErrorModal

KEYMAP_FILE = "keymap.toml"
ENGINE_POLL_SECONDS = 2.0


def load_keymap(data_dir: Path) -> dict[str, str]:
    """``keymap.toml`` in the data directory: ``"binding.id" = "key"`` lines remap keys."""
    path = data_dir / KEYMAP_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return {str(k): str(v) for k, v in raw.items() if isinstance(v, str)}


class DocbridgeApp(App[None]):
    TITLE = "docbridge"
    SUB_TITLE = "Integrations"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding(
            "ctrl+q",
            "quit",
            "Quit",
            id="app.quit",
            tooltip="Leave docbridge (asks when there are unsaved changes)",
            priority=True,
        ),
        Binding("f1", "help", "Help", id="app.help", tooltip="Every key, by where it works"),
        Binding(
            "f6",
            "activity",
            "Activity",
            id="app.activity",
            tooltip="Engine activity: attempts, parked items, SFTP sessions, bans",
        ),
        Binding(
            "ctrl+p",
            "command_palette",
            "Commands",
            id="app.command_palette",
            tooltip="Every action by name",
            show=False,
            priority=True,
        ),
    ]

    engine_status: reactive[EngineStatus | None] = reactive(None, init=False)

    def __init__(
        self,
        data_dir: Path,
        *,
        actor: str | None = None,
        cursor_blink: bool = True,
        poll_engine: bool = True,
        run_engine: bool = False,
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.actor = actor or default_actor("tui")
        self.cursor_blink = cursor_blink
        self.poll_engine = poll_engine
        self.run_engine = run_engine
        self.service: Service | None = None
        self.engine: Engine | None = None
        self.theme = "textual-dark"

    async def on_mount(self) -> None:
        self.set_keymap(load_keymap(self.data_dir))
        try:
            self.service = await Service.open(self.data_dir, self.actor)
        except DocbridgeError as exc:
            await self.push_screen(ErrorModal(exc.title, exc.hint), lambda _: self.exit())
            return
        from tui.screens.integrations import IntegrationsScreen

        await self.push_screen(IntegrationsScreen(self.service))
        if self.run_engine:
            # After the page: the user sees it while the engine (SFTP host key, listener) starts.
            await self.start_engine()
            await self._show_host_key()
        await self.refresh_engine_status()
        if self.poll_engine:
            self.set_interval(ENGINE_POLL_SECONDS, self.refresh_engine_status)

    async def start_engine(self) -> None:
        """Run the engine in this process unless another process already does (then this
        window is a client of the same store and the header names the engine's pid)."""
        assert self.service is not None
        engine = Engine(self.service.config)
        try:
            await engine.start()
        except EngineBusy as busy:
            self.notify(
                f"The engine runs in pid {busy.holder.pid}; this window works as its client.",
                title="Engine",
                markup=False,
            )
            return
        except (DocbridgeError, OSError) as exc:
            self.notify(
                f"The engine could not start: {exc}. Settings can still be edited; "
                "start it with 'docbridge serve'.",
                title="Engine not running",
                severity="error",
                markup=False,
                timeout=15,
            )
            return
        self.engine = engine

    async def _show_host_key(self) -> None:
        """The engine may just have generated the host key: put its fingerprint on the page."""
        from tui.screens.integrations import IntegrationsScreen

        assert self.service is not None
        fingerprint = await self.service.sftp_host_key_fingerprint()
        for screen in self.screen_stack:
            if isinstance(screen, IntegrationsScreen):
                screen.show_host_key(fingerprint)

    async def on_unmount(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
        if self.service is not None:
            await self.service.close()

    async def refresh_engine_status(self) -> None:
        if self.service is None:
            return
        try:
            self.engine_status = await self.service.engine_status()
        except DocbridgeError:
            self.engine_status = None

    # -- keys and commands ----------------------------------------------------------------

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_activity(self) -> None:
        from tui.screens.activity import ActivityScreen

        if self.service is not None and not isinstance(self.screen, ActivityScreen):
            self.push_screen(ActivityScreen(self.service))

    async def action_quit(self) -> None:
        dirty = [s for s in self.screen_stack if getattr(s, "dirty", False)]
        if not dirty:
            self.exit()
            return

        def answered(choice: str | None) -> None:
            if choice == "discard":
                self.exit()
            elif choice == "save":
                self.run_worker(
                    self._save_then_exit(dirty), group="quit", exclusive=True, exit_on_error=False
                )

        self.push_screen(
            SaveDiscardCancelModal(
                "Save the changes before quitting?", "Unsaved changes are lost otherwise."
            ),
            answered,
        )

    async def _save_then_exit(self, screens: list[Screen[Any]]) -> None:
        for screen in reversed(screens):
            save = getattr(screen, "save", None)
            if save is None or not await save():
                return  # the errors are on screen; stay
        self.exit()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help", "Every key, by where it works (F1)", self.action_help)
        yield SystemCommand(
            "Activity",
            "Engine, queue, parked items, SFTP sessions, bans (F6)",
            self.action_activity,
        )
        commands = getattr(screen, "palette_commands", None)
        if commands is not None:
            yield from commands()

    # -- failures ---------------------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_failure(self, event)


def report_worker_failure(app: App[Any], event: Worker.StateChanged) -> None:
    """Any worker that failed shows an error modal instead of crashing the app."""
    if event.state is not WorkerState.ERROR:
        return
    error = event.worker.error
    if isinstance(error, DocbridgeError):
        app.push_screen(ErrorModal(error.title, error.hint))
    else:
        app.push_screen(
            ErrorModal(
                f"Something went wrong ({type(error).__name__}).",
                "Nothing was half-saved. Try again; if it persists, report it with the steps.",
            )
        )


def run_app(data_dir: Path) -> int:
    """Open the data directory and run the app until the user quits."""
    DocbridgeApp(data_dir, run_engine=True).run()
    return 0
