"""Exporting our AS2 certificate to a file, importing the partner's from a file or pasted PEM.

Reading, writing and checking happen in the core (``Service``); these dialogs only ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static, TextArea

from core.errors import DocbridgeError
from tui.keys import bindings, key_label

if TYPE_CHECKING:
    from core.service import CertificateInfo, Service


@dataclass(frozen=True)
class ImportedCertificate:
    pem: str
    info: CertificateInfo


class ExportCertificateModal(ModalScreen[Path | None]):
    """Ask for the path to write our certificate (PEM) to; writes it and returns the path."""

    BINDINGS = bindings("export.cancel")

    def __init__(self, service: Service, certificate_pem: str, suggested: str) -> None:
        super().__init__(classes="modal")
        self.service = service
        self.certificate_pem = certificate_pem
        self.suggested = suggested

    def compose(self) -> ComposeResult:
        cancel = key_label(self.app, "export.cancel")
        with Vertical(classes="modal-box"):
            yield Static(Text("Export the self certificate (PEM)", style="bold"))
            yield Label(f"File path (enter writes it, {cancel} cancels; never overwrites):")
            yield Input(self.suggested, id="export-path", compact=True)
            yield Static("", id="export-error", classes="field-error")
            with Horizontal(classes="modal-buttons"):
                yield Button("Export (enter)", id="export", variant="primary", compact=True)
                yield Button(f"Cancel ({cancel})", id="cancel", compact=True)
        yield Footer()

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
            path = await self.service.export_certificate(raw, self.certificate_pem)
        except DocbridgeError as exc:
            error.update(Text(f"✗ {exc}"))
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ImportCertificateModal(ModalScreen[ImportedCertificate | None]):
    """The recipient's certificate from a file path or pasted PEM, checked before use."""

    BINDINGS = bindings("import.use", "import.cancel")

    def __init__(self, service: Service) -> None:
        super().__init__(classes="modal")
        self.service = service

    def compose(self) -> ComposeResult:
        use, cancel = key_label(self.app, "import.use"), key_label(self.app, "import.cancel")
        with Vertical(classes="modal-box wide"):
            yield Static(Text("Recipient certificate", style="bold"))
            yield Label("Path of a PEM file:")
            yield Input(placeholder="/path/to/partner.pem", id="import-path", compact=True)
            yield Label("…or paste the PEM text (-----BEGIN CERTIFICATE----- …):")
            yield TextArea(id="import-pem", soft_wrap=False, classes="pem-area")
            yield Static("", id="import-error", classes="field-error")
            with Horizontal(classes="modal-buttons"):
                yield Button(f"Use it ({use})", id="use", variant="primary", compact=True)
                yield Button(f"Cancel ({cancel})", id="cancel", compact=True)
        yield Footer()

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
        try:
            pem, info = await self.service.load_certificate(pasted or path)
        except DocbridgeError as exc:
            error.update(Text(f"✗ {exc}"))
            return
        self.dismiss(ImportedCertificate(pem=pem, info=info))

    def action_cancel(self) -> None:
        self.dismiss(None)
