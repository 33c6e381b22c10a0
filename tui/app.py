"""The docbridge TUI: the Integrations page (SPEC §3) on top of the service API.

The app owns what outlives a screen: the service, the in-process engine, the engine-status poll,
and the one error path (a failed worker or guarded action shows a modal; the app, its engine and
its SFTP listener keep running).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from textual import events
from textual.app import App, SystemCommand
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Input, TextArea
from textual.worker import Worker

from core.errors import DocbridgeError
from core.models import EngineStatus
from core.service import Service, default_actor
from tui.errors import LogFile, guarded, report_worker_failure, run_guarded
from tui.keys import bindings, key_label, load_keymap, read_escape_digit_as_two_keys
from tui.modals.choice import SaveDiscardCancelModal
from tui.modals.error import ErrorModal
from tui.toast import say
from tui.widgets.fields import FormField


class RunningEngine(Protocol):
    """What the app needs of the engine the service started in this process."""

    async def stop(self) -> None: ...


read_escape_digit_as_two_keys()

ENGINE_POLL_SECONDS = 2.0
LOG_FILE = "logs/tui.log"


class DocbridgeApp(App[None]):
    TITLE = "docbridge"
    SUB_TITLE = "Integrations"
    CSS_PATH = "app.tcss"
    BINDINGS = bindings(
        "app.quit", "app.help", "app.activity", "app.conversions", "app.command_palette"
    )

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
        self.engine: RunningEngine | None = None
        self.log_file: LogFile | None = None
        self.theme = "textual-dark"

    async def on_mount(self) -> None:
        self.set_keymap(await asyncio.to_thread(load_keymap, self.data_dir))
        try:
            self.service = await Service.open(self.data_dir, self.actor)
            state = await self.service.page_state()
        except DocbridgeError as exc:
            await self.push_screen(ErrorModal(exc.title, exc.hint), lambda _: self.exit())
            return
        self.log_file = await LogFile.open(self.service.config.data_dir / LOG_FILE)
        from tui.screens.integrations import IntegrationsScreen

        await self.push_screen(IntegrationsScreen(self.service, state))
        if self.run_engine:
            # After the page: the user sees it while the engine (SFTP host key, listener) starts.
            self.call_after_refresh(self._start_engine_in_background)
        await self.refresh_engine_status()
        if self.poll_engine:
            self.set_interval(ENGINE_POLL_SECONDS, self.refresh_engine_status)

    def _start_engine_in_background(self) -> None:
        run_guarded(self, self._engine_then_host_key(), group="engine")

    async def _engine_then_host_key(self) -> None:
        await self.start_engine()
        await self._show_host_key()
        await self.refresh_engine_status()

    async def start_engine(self) -> None:
        """Run the engine in this process unless another process already does (then this
        window is a client of the same store and the header names the engine's pid)."""
        assert self.service is not None
        from tui.subprocesses import prepare_worker_processes

        # The engine's transform pool spawns processes from inside the app (OUT and IN rules).
        await prepare_worker_processes()
        try:
            engine = await self.service.start_engine()
        except (DocbridgeError, OSError) as exc:
            config_file = self.service.config.data_dir / "docbridge.toml"
            say(
                self,
                f"The engine could not start: {exc}. Settings can still be edited here. If "
                f"another program holds the port, choose a free one in {config_file} "
                "([sftp] port or [as2] port) and start docbridge again.",
                title="Engine not running",
                severity="error",
                timeout=20,
            )
            return
        if engine is None:
            status = await self.service.engine_status()
            say(
                self,
                f"The engine runs in pid {status.pid}; this window works as its client.",
                title="Engine",
            )
            return
        self.engine = engine

    async def _show_host_key(self) -> None:
        """The engine may just have generated the host key: put its fingerprint on the page."""
        assert self.service is not None
        fingerprint = await self.service.sftp_host_key_fingerprint()
        for screen in self.screen_stack:
            show = getattr(screen, "show_host_key", None)
            if show is not None:
                show(fingerprint)

    async def on_unmount(self) -> None:
        try:
            if self.engine is not None:
                await self.engine.stop()
            if self.service is not None:
                await self.service.close()
        finally:
            if self.log_file is not None:  # last: what is logged while stopping is kept
                await self.log_file.close()
                self.log_file = None

    @guarded
    async def refresh_engine_status(self) -> None:
        if self.service is None:
            return
        try:
            self.engine_status = await self.service.engine_status()
        except DocbridgeError:
            self.engine_status = None  # the header says "engine: ?" until the store answers

    # -- keys and commands ----------------------------------------------------------------

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_activity(self) -> None:
        from tui.screens.activity import ActivityScreen
        from tui.screens.conversions import ConversionsScreen

        if self.service is not None and not isinstance(self.screen, ActivityScreen):
            if isinstance(self.screen, ConversionsScreen):
                self.screen.dismiss(None)  # F4 and F6 switch between the two views
            self.push_screen(ActivityScreen(self.service))

    def action_conversions(self) -> None:
        from tui.screens.activity import ActivityScreen
        from tui.screens.conversions import ConversionsScreen, open_conversions

        if self.service is None or isinstance(self.screen, ConversionsScreen):
            return
        from_page = True
        if isinstance(self.screen, ActivityScreen):
            from_page = False  # every mailbox's attempts, as Activity shows them
            self.screen.dismiss(None)
        open_conversions(self, self.service, from_page=from_page)

    async def action_quit(self) -> None:
        dirty = [s for s in self.screen_stack if getattr(s, "dirty", False)]
        if not dirty:
            self.exit()
            return

        def answered(choice: str | None) -> None:
            if choice == "discard":
                self.exit()
            elif choice == "save":
                run_guarded(self, self._save_then_exit(dirty), group="quit")

        self.push_screen(
            SaveDiscardCancelModal(
                "Save the changes before quitting?", "Unsaved changes are lost otherwise."
            ),
            answered,
        )

    async def _save_then_exit(self, screens: list[Screen[Any]]) -> None:
        for screen in reversed(screens):
            save = getattr(screen, "save", None)
            # leaving=True: a password this Save generates is shown before the app exits.
            if save is None or not await save(leaving=True):
                return  # the errors are on screen; stay
        self.exit()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        # Of Textual's own commands only Theme and Quit (ours, which asks about unsaved
        # changes); the others (screenshot into the working folder, maximize) are noise here.
        for command in super().get_system_commands(screen):
            if command.title in ("Theme", "Quit"):
                yield command
        help_key, activity_key = key_label(self, "app.help"), key_label(self, "app.activity")
        yield SystemCommand("Help", f"Every key, by where it works ({help_key})", self.action_help)
        yield SystemCommand(
            "Activity",
            f"Engine, queue, parked items, SFTP sessions, bans ({activity_key})",
            self.action_activity,
        )
        yield SystemCommand(
            "Conversion log",
            f"Every conversion attempt, its input and output, reprocess "
            f"({key_label(self, 'app.conversions')})",
            self.action_conversions,
        )
        commands = getattr(screen, "palette_commands", None)
        if commands is not None:
            yield from commands()

    def _typed_before_question(self, event: events.Key) -> bool:
        """A key typed before the question on screen appeared (the rest of a burst) is no
        answer to it: checked when the key arrives and again when it comes back unhandled."""
        shown_at = getattr(self.screen, "shown_at", None)
        return shown_at is not None and event.time < shown_at

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and self._typed_before_question(event):
            return
        await super().on_event(event)

    async def _on_key(self, event: events.Key) -> None:
        """Keys typed fast are queued at the widget focused when the terminal delivered them,
        so an earlier key of the burst (a block jump, tab) may have moved the focus into a
        text field by the time this one arrives here unhandled. It belongs to that field: a
        letter is text for it, and its own editing keys (backspace, left, ctrl+u) must run in
        its queue, after the letters before them, not here ahead of them."""
        if self._typed_before_question(event):
            event.stop()
            event.prevent_default()
            return
        focused = self.focused
        if getattr(event, "handed_over", False) or not isinstance(focused, Input | TextArea):
            return  # (handed over once already: never twice, whatever the field did with it)
        if focused.disabled:
            return
        # Only form fields run their own editing bindings in their queue (FormField).
        own = isinstance(focused, FormField) and any(
            not binding.priority for binding in focused._bindings.key_to_bindings.get(event.key, ())
        )
        if event.is_printable or own:
            event.stop()
            event.prevent_default()  # not App's own binding check: the field does it
            key = events.Key(event.key, event.character)
            key.handed_over = True  # type: ignore[attr-defined]
            focused._forward_event(key)

    # -- failures ---------------------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_failure(self, event)


def run_app(data_dir: Path) -> int:
    """Open the data directory and run the app until the user quits."""
    DocbridgeApp(data_dir, run_engine=True).run()
    return 0
