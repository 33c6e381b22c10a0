"""The one form base of the TUI: the Integrations page and the rule form both stand on it.

It owns what every form does the same way: which errors show (touched fields while typing, every
field after a Save), the summary line, the header with the unsaved-changes marker, toasts, and
what a failed Save looks like. A subclass says what its form is (``form_errors``), whether it
differs from what is stored (``dirty``), and where each field lives (``field_widget``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from rich.text import Text
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Static

from core.errors import DocbridgeError, FieldErrors
from tui.errors import report_error
from tui.toast import say
from tui.widgets.fields import FieldError, FormInput, FormTextArea
from tui.widgets.header import FormHeader

ResultT = TypeVar("ResultT")
T = TypeVar("T")


class FormScreen(Screen[ResultT]):
    """A screen that edits one form and saves it as a whole."""

    FIELD_LABELS: ClassVar[dict[str, str]] = {}
    SUMMARY_ID: ClassVar[str] = "form-summary"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.touched: set[str] = set()
        self.show_all_errors = False
        self.loaded = False
        self._shown_dirty: bool | None = None

    # -- what a subclass says ----------------------------------------------------------------

    def form_errors(self) -> dict[str, str]:
        raise NotImplementedError

    @property
    def dirty(self) -> bool:
        raise NotImplementedError

    def header_text(self) -> Text:
        raise NotImplementedError

    def field_widget(self, key: str) -> Widget | None:
        """The widget to focus when ``key`` is invalid (None when it is not shown)."""
        return None

    def dirty_changed(self, dirty: bool) -> None:
        """Hook: the unsaved state flipped (e.g. the Save bar's marker)."""

    # -- shared behaviour ----------------------------------------------------------------------

    def say(self, message: str, *, title: str = "", severity: Any = "information") -> None:
        say(self.app, message, title=title, severity=severity)

    def field_edited(self, key: str | None) -> None:
        """A user edit: from now on this field's error shows while typing."""
        if key is not None:
            self.touched.add(key)
        self.refresh_form()

    def refresh_form(self) -> None:
        """Errors next to fields (touched ones, or all after a Save) and the unsaved marker."""
        if not self.loaded:
            return
        errors = self.form_errors()
        self._show_field_errors(errors)
        if self.show_all_errors:
            self.render_summary(errors)
        elif self.dirty:
            self.query_one(f"#{self.SUMMARY_ID}", Static).update("")  # "Saved." no longer holds
        self.render_header()

    def render_header(self) -> None:
        dirty = self.dirty
        self.query_one(FormHeader).show(self.header_text(), dirty)
        if dirty != self._shown_dirty:
            self._shown_dirty = dirty
            self.dirty_changed(dirty)

    def _show_field_errors(self, errors: dict[str, str]) -> None:
        for widget in self.query(FieldError):
            key = widget.field_key
            shown = self.show_all_errors or key in self.touched
            widget.show(errors.get(key) if shown else None)
        for field in self.query(FormInput):
            self._mark(field, field.field_key, errors)
        for area in self.query(FormTextArea):
            self._mark(area, area.field_key, errors)

    def _mark(self, widget: Widget, key: str, errors: dict[str, str]) -> None:
        shown = self.show_all_errors or key in self.touched
        widget.set_class(shown and key in errors, "-invalid")

    def render_summary(self, errors: dict[str, str]) -> None:
        summary = self.query_one(f"#{self.SUMMARY_ID}", Static)
        if not errors:
            summary.update(Text("All fields are valid.") if self.dirty else "")
            return
        summary.update(
            Text(f"✗ {len(errors)} field(s) need attention: {self.names(errors)}. Nothing saved.")
        )

    def names(self, errors: dict[str, str]) -> str:
        return ", ".join(self.FIELD_LABELS.get(key, key) for key in errors)

    def show_save_errors(self, errors: dict[str, str]) -> None:
        """Save refused: every error next to its field, a summary, focus on the first."""
        self.show_all_errors = True
        self._show_field_errors(errors)
        self.render_summary(errors)
        self.render_header()
        self.say(f"Fix: {self.names(errors)}.", title="Nothing saved", severity="error")
        for key in errors:
            target = self.field_widget(key)
            if target is not None:
                target.focus()
                break

    async def persist(self, save: Callable[[], Awaitable[T]]) -> T | None:
        """Run a Save against the service: field errors go next to the fields, other errors to
        the error modal; None means nothing was saved."""
        try:
            return await save()
        except FieldErrors as exc:
            self.show_save_errors(exc.errors)
        except DocbridgeError as exc:
            report_error(self.app, exc)
        return None
