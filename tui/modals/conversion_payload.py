"""A conversion's input and output as kept, read-only: what the rule read and what it wrote."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static, TextArea

from core.models import ConversionPayload, ConversionRecord, ConversionStatus
from tui.keys import bindings, key_label
from tui.widgets.conversion_cells import NOTE, TEXT, payload_text, rule_label, size_text


class ConversionPayloadModal(ModalScreen[None]):
    CSS_PATH = "conversion_payload.tcss"
    BINDINGS = bindings("conversion_view.close")

    def __init__(
        self, record: ConversionRecord, payload: ConversionPayload | None, keep_bytes: int
    ) -> None:
        super().__init__(classes="modal", id="conversion-payload")
        self.record = record
        self.payload = payload
        self.keep_bytes = keep_bytes

    def compose(self) -> ComposeResult:
        record, payload = self.record, self.payload
        with Vertical(classes="modal-box wide", id="payload-box") as box:
            box.border_title = (
                f"Record {record.id} · {record.status.value} · {rule_label(record)}"
                f" · {key_label(self.app, 'conversion_view.close')} closes"
            )
            name = (payload.input_name if payload else "") or record.file_name or "input"
            in_size = payload.input_size if payload else None
            out_size = payload.output_size if payload else None
            yield Static(
                Text(f"Input: {name} ({size_text(in_size)})", style="bold"),
                classes="payload-label",
            )
            yield self._area("payload-input", payload.input if payload else b"", in_size)
            yield Static(
                Text(f"Output ({size_text(out_size)})", style="bold"), classes="payload-label"
            )
            if record.status is ConversionStatus.FAILED and not out_size:
                yield TextArea(
                    "Nothing was written: the conversion failed (the error is on the log).",
                    read_only=True,
                    id="payload-output",
                    classes="payload-area",
                )
            else:
                yield self._area("payload-output", payload.output if payload else b"", out_size)
        yield Footer()

    def _area(self, area_id: str, data: bytes, size: int | None) -> TextArea:
        text, kind = payload_text(
            data, size or 0, kept=size is not None, keep_bytes=self.keep_bytes
        )
        area = TextArea(
            text,
            read_only=True,
            show_line_numbers=kind == TEXT,
            soft_wrap=kind == NOTE,
            id=area_id,
            classes="payload-area",
        )
        return area

    def on_mount(self) -> None:
        self.query_one("#payload-input", TextArea).focus()

    def action_close(self) -> None:
        self.dismiss(None)
