"""Block (3) for SFTP: host, port, login, the password's one-time reveal, the host key."""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.timer import Timer
from textual.widget import Widget

from core.models import PageState
from tui.clipboard import copy_text
from tui.errors import guarded, run_guarded
from tui.keys import bindings, key_label
from tui.modals.confirm import ConfirmModal
from tui.page.block import Command, PageStateChanged
from tui.toast import say
from tui.widgets.fields import CopyRow

PASSWORD_MASK = "•" * 12
DEFAULT_REVEAL_SECONDS = 60.0


class SftpDetails(Vertical):
    """The SFTP half of block (3); its letter keys only copy (there is no text field here)."""

    BINDINGS = bindings(
        "sftp.copy_host",
        "sftp.copy_port",
        "sftp.copy_login",
        "sftp.copy_password",
        "sftp.hide_password",
        "sftp.reset_password",
    )

    def __init__(self, service, *, id: str) -> None:  # type: ignore[no-untyped-def]
        super().__init__(id=id)
        self.service = service
        self.state: PageState | None = None
        self.revealed_password: str | None = None
        self.host_key: str | None = None
        self._mask_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield CopyRow("Host", "host", id="sftp-host")
        yield CopyRow("Port", "port", id="sftp-port")
        yield CopyRow("Login", "login", id="sftp-login")
        yield CopyRow("Password", "password", id="sftp-password")
        yield CopyRow("Host key", "host_key", id="sftp-hostkey")

    def fill(self, state: PageState) -> None:
        self.state = state
        self.mask_password()
        key = lambda binding_id: key_label(self.app, binding_id)  # noqa: E731
        self.query_one("#sftp-host", CopyRow).set_value(
            state.sftp.host, f"{key('sftp.copy_host')} copy"
        )
        self.query_one("#sftp-port", CopyRow).set_value(
            str(state.sftp.port), f"{key('sftp.copy_port')} copy"
        )
        self.query_one("#sftp-login", CopyRow).set_value(
            state.sftp.login, f"{key('sftp.copy_login')} copy"
        )
        self.show_host_key(state.sftp.host_key_fingerprint or self.host_key)

    def first_field(self) -> Widget:
        return self.query_one("#sftp-host")

    def show_host_key(self, fingerprint: str | None) -> None:
        self.host_key = fingerprint or self.host_key
        row = self.query_one("#sftp-hostkey", CopyRow)
        if self.host_key is None:
            row.set_value(
                Text("not available yet (created on the SFTP server's first start)", style="dim"),
                "",
            )
        else:
            row.set_value(self.host_key, "enter copy")

    # -- the password: shown once, then masked ---------------------------------------------

    def _render_password(self) -> None:
        row = self.query_one("#sftp-password", CopyRow)
        if self.revealed_password is not None:
            value = Text(self.revealed_password, style="bold")
            value.append("  shown once: copy it now", style="reverse")
            copy, hide = (
                key_label(self.app, "sftp.copy_password"),
                key_label(self.app, "sftp.hide_password"),
            )
            row.set_value(value, f"{copy} copy  {hide} hide")
        elif self.state is not None and self.state.integration.password_set:
            row.set_value(
                Text(PASSWORD_MASK), f"{key_label(self.app, 'sftp.reset_password')} reset"
            )
        else:
            save = key_label(self.app, "page.save")
            row.set_value(Text(f"generated on first Save ({save})", style="italic"), "")

    def reveal_password(self, password: str) -> None:
        """Show a new password in clear for a short time (``[tui] password_reveal_seconds``)."""
        self.revealed_password = password
        if self._mask_timer is not None:
            self._mask_timer.stop()
        self._mask_timer = self.set_timer(self._reveal_seconds(), self.mask_password)
        self._render_password()
        self.screen.set_focus(self.query_one("#sftp-password"))

    def _reveal_seconds(self) -> float:
        tui = getattr(self.service.config, "tui", None)
        return float(getattr(tui, "password_reveal_seconds", DEFAULT_REVEAL_SECONDS))

    def mask_password(self) -> None:
        self.revealed_password = None
        if self._mask_timer is not None:
            self._mask_timer.stop()
            self._mask_timer = None
        if self.is_mounted:
            self._render_password()

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        # Leaving the block masks the password (a modal on top is not leaving).
        self.call_after_refresh(self._mask_if_left)

    def _mask_if_left(self) -> None:
        if self.revealed_password is None or not self.is_mounted:
            return
        if self.app.screen is not self.screen:
            return
        focused = self.screen.focused
        if focused is None or self not in focused.ancestors:
            self.mask_password()

    # -- actions ----------------------------------------------------------------------------

    @guarded
    def action_copy(self, name: str) -> None:
        state = self.state
        if state is None:
            return
        values = {
            "host": ("Host", state.sftp.host),
            "port": ("Port", str(state.sftp.port)),
            "login": ("Login", state.sftp.login),
            "host_key": ("Host key fingerprint", self.host_key or ""),
        }
        if name == "password":
            if self.revealed_password is None:
                self._password_not_shown()
                return
            label, value = "Password", self.revealed_password
        elif name in values and values[name][1]:
            label, value = values[name]
        else:
            return
        copy_text(self.app, value)
        say(
            self.app,
            f"{label} copied (it stays visible here if your terminal ignores OSC 52).",
            title="Copied",
        )

    def _password_not_shown(self) -> None:
        assert self.state is not None
        if self.state.integration.password_set:
            reset = key_label(self.app, "sftp.reset_password")
            hint = f"It is stored only as a hash. Press {reset} to reset it and get a new one."
        else:
            hint = f"There is none yet: Save ({key_label(self.app, 'page.save')}) generates it."
        say(self.app, hint, title="Password not shown", severity="warning")

    def on_copy_row_activated(self, event: CopyRow.Activated) -> None:
        event.stop()
        self.action_copy(event.row.field_name)

    def action_hide_password(self) -> None:
        self.mask_password()

    @guarded
    def action_reset_password(self) -> None:
        state = self.state
        if state is None:
            return
        if not state.integration.password_set:
            save = key_label(self.app, "page.save")
            say(
                self.app,
                f"There is no password yet: Save ({save}) generates the first one.",
                title="Reset password",
                severity="warning",
            )
            return
        mailbox_uuid = state.mailbox.uuid

        async def work() -> None:
            password = await self.service.reset_password(mailbox_uuid)
            if self.state is not None and self.state.mailbox.uuid == mailbox_uuid:
                self.reveal_password(password)
                copy = key_label(self.app, "sftp.copy_password")
                say(
                    self.app,
                    f"New password generated: copy it now ({copy}).",
                    title="Password reset",
                )

        def answered(yes: bool | None) -> None:
            if yes:
                run_guarded(self, work(), group="password")

        self.app.push_screen(
            ConfirmModal(
                f"Reset the SFTP password of {state.mailbox.name}?",
                "The old password stops working at once and open SFTP sessions of this mailbox "
                "are closed. The new one is shown once.",
                yes_label="Reset",
            ),
            answered,
        )

    def password_saved(self) -> None:
        """Save stored a password: the row offers reset from now on."""
        if self.state is not None:
            integration = replace(self.state.integration, password_set=True)
            self.state = replace(self.state, integration=integration)
        self._render_password()
        self.post_message(
            PageStateChanged(
                lambda s: replace(s, integration=replace(s.integration, password_set=True))
            )
        )

    def commands(self) -> list[Command]:
        key = lambda binding_id: key_label(self.app, binding_id)  # noqa: E731
        commands: list[Command] = [
            ("Copy host", f"SFTP host ({key('sftp.copy_host')})", lambda: self.action_copy("host")),
            ("Copy port", f"SFTP port ({key('sftp.copy_port')})", lambda: self.action_copy("port")),
            (
                "Copy login",
                f"SFTP login ({key('sftp.copy_login')})",
                lambda: self.action_copy("login"),
            ),
        ]
        if self.revealed_password is not None:
            commands += [
                (
                    "Copy password",
                    f"While it is shown ({key('sftp.copy_password')})",
                    lambda: self.action_copy("password"),
                ),
                ("Hide password", f"Mask it now ({key('sftp.hide_password')})", self.mask_password),
            ]
        if self.state is not None and self.state.integration.password_set:
            commands.append(
                (
                    "Reset password",
                    f"New SFTP password, asks first ({key('sftp.reset_password')})",
                    self.action_reset_password,
                )
            )
        if self.host_key:
            commands.append(
                (
                    "Copy host key fingerprint",
                    "For customers to pin",
                    lambda: self.action_copy("host_key"),
                )
            )
        return commands
