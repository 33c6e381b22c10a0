"""Block (1): the integration's kill switch. On acts at once; off asks first."""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Static, Switch

from core.models import PageState
from tui.errors import guarded, run_guarded
from tui.keys import key_label
from tui.modals.confirm import ConfirmModal
from tui.page.block import Command, PageBlock, PageStateChanged


class KillSwitch(Switch, inherit_bindings=False):
    """The integration switch. Its key is F2 (or a click): space and enter, which a burst of
    typing can carry onto it after a block jump, must not turn an integration on."""

    BINDINGS = []


class ToggleBlock(PageBlock):
    NUMBER = 1
    TITLE = "Integration"

    def compose(self) -> ComposeResult:
        with Horizontal(classes="toggle-row"):
            yield KillSwitch(id="enabled")
            yield Static(id="enabled-label")

    def fill(self, state: PageState) -> None:
        self.state = state
        with self.prevent(Switch.Changed):
            self.query_one(Switch).value = state.integration.enabled
        self._render_label()

    def first_field(self) -> Widget:
        return self.query_one(Switch)

    def _render_label(self) -> None:
        on_ = self.state.integration.enabled
        key = key_label(self.app, "page.toggle")
        text = Text()
        text.append("ON" if on_ else "OFF", style="bold")
        text.append(
            f" - files and messages flow ({key} turns it off)"
            if on_
            else f" - nothing is delivered; envelopes wait ({key} turns it on)"
        )
        self.query_one("#enabled-label", Static).update(text)
        self.query_one(Switch).tooltip = f"{key}: turn on/off (immediate)"

    @guarded
    def toggle(self) -> None:
        """F2 from anywhere on the page: flip the switch (off still asks)."""
        self.query_one(Switch).toggle()  # the focus stays where the user is typing

    @on(Switch.Changed)
    def _switched(self, event: Switch.Changed) -> None:
        event.stop()
        if event.value:
            self._set_enabled(True)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._set_enabled(False)
            else:
                self._show_stored()

        self.app.push_screen(
            ConfirmModal(
                f"Turn off the integration of {self.state.mailbox.name}?",
                "SFTP logins and AS2 messages for this mailbox are refused at once and nothing "
                "is delivered. Incoming envelopes keep arriving and wait until it is on again.",
                yes_label="Turn off",
            ),
            answered,
        )

    def _show_stored(self) -> None:
        with self.prevent(Switch.Changed):
            self.query_one(Switch).value = self.state.integration.enabled

    def _set_enabled(self, enabled: bool) -> None:
        mailbox_uuid = self.state.mailbox.uuid

        async def work() -> None:
            try:
                integration = await self.service.set_enabled(mailbox_uuid, enabled)
            except BaseException:
                self._show_stored()
                raise
            if self.state.mailbox.uuid != mailbox_uuid:
                return
            self.state = replace(
                self.state,
                integration=replace(self.state.integration, enabled=integration.enabled),
            )
            self._render_label()
            self.post_message(
                PageStateChanged(
                    lambda s: replace(
                        s, integration=replace(s.integration, enabled=integration.enabled)
                    )
                )
            )
            self.say(
                f"Integration {'on' if enabled else 'off'}: it takes effect now.",
                title="Integration",
            )

        run_guarded(self, work(), group="toggle")

    def commands(self) -> list[Command]:
        return [
            (
                "Toggle integration on/off",
                f"Immediate kill switch for this mailbox ({key_label(self.app, 'page.toggle')})",
                self.toggle,
            )
        ]
