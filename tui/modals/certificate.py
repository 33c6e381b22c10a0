"""Exporting our AS2 certificate to a file, importing the partner's from a file or pasted PEM."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

from core.as2.certificates import CertificateInfo, inspect_certificate, load_certificate_text
from core.errors import DocbridgeError, InvalidInput


@dataclass(frozen=True)
class ImportedCertificate:
    pem: str
    info: CertificateInfo


def write_public_file(name: str, text: str) -> Path:
    """Write a public certificate without replacing an existing file; returns its path."""
    path = Path(name).expanduser()
    try:
        with path.open("x", encoding="ascii") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        return path
    except FileExistsError as exc:
        raise InvalidInput(
            f"{path} already exists.", "Choose another file name; nothing was overwritten."
        ) from exc
    except FileNotFoundError as exc:
        raise InvalidInput(
            f"The folder {path.parent} does not exist.", "Create it first or choose another path."
        ) from exc
    except OSError as exc:
        raise InvalidInput(
            f"{path} cannot be written ({exc.strerror or exc}).", "Choose another path."
        ) from exc


class ExportCertificateModal(ModalScreen[Path | None]):
    """Ask for the path to write our certificate (PEM) to; writes it and returns the path."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="export.cancel", tooltip="Export nothing"),
    ]

    def __init__(self, certificate_pem: str, suggested: str) -> None:
        super().__init__(classes="modal")
        self.certificate_pem = certificate_pem
        self.suggested = suggested

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box"):
            yield Static(Text("Export the self certificate (PEM)", style="bold"))
            yield Label("File path (enter to write it, escape to cancel):")
            yield Input(self.suggested, id="export-path", compact=True)
            yield Static("", id="export-error", classes="field-error")
            with Horizontal(classes="modal-buttons"):
                yield Button("Export (enter)", id="export", variant="primary", compact=True)
                yield Button("Cancel (escape)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        await self._export()

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "export":
            await self._export()
        else:
            self.dismiss(None)

    async def _export(self) -> None:
        raw = self.query_one("#export-path", Input).value.strip()
        error = self.query_one("#export-error", Static)
        if not raw:
            error.update(Text("✗ Enter a file path."))
            return
        try:
            path = await asyncio.to_thread(write_public_file, raw, self.certificate_pem)
        except DocbridgeError as exc:
            error.update(Text(f"✗ {exc}"))
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ImportCertificateModal(ModalScreen[ImportedCertificate | None]):
    """The recipient's certificate from a file path or pasted PEM, checked before use."""

    BINDINGS = [
        Binding("ctrl+s", "use", "Use it", id="import.use", tooltip="Check and use this"),
        Binding("escape", "cancel", "Cancel", id="import.cancel", tooltip="Keep the old one"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box wide"):
            yield Static(Text("Recipient certificate", style="bold"))
            yield Label("Path of a PEM file:")
            yield Input(placeholder="/path/to/partner.pem", id="import-path", compact=True)
            yield Label("…or paste the PEM text (-----BEGIN CERTIFICATE----- …):")
            yield TextArea(id="import-pem", soft_wrap=False, classes="pem-area")
            yield Static("", id="import-error", classes="field-error")
            with Horizontal(classes="modal-buttons"):
                yield Button("Use it (ctrl+s)", id="use", variant="primary", compact=True)
                yield Button("Cancel (escape)", id="cancel", compact=True)

    def __init__(self) -> None:
        super().__init__(classes="modal")

    def on_mount(self) -> None:
        self.query_one("#import-path", Input).focus()

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        await self.action_use()

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "use":
            await self.action_use()
        else:
            self.dismiss(None)

    async def action_use(self) -> None:
        path = self.query_one("#import-path", Input).value.strip()
        pasted = self.query_one("#import-pem", TextArea).text.strip()
        error = self.query_one("#import-error", Static)
        source = pasted or path
        try:
            pem = await asyncio.to_thread(load_certificate_text, source)
            info = await asyncio.to_thread(inspect_certificate, pem)
        except DocbridgeError as exc:
            error.update(Text(f"✗ {exc}"))
            return
        self.dismiss(ImportedCertificate(pem=pem, info=info))

    def action_cancel(self) -> None:
        self.dismiss(None)
