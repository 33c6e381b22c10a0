"""What a key of the TUI is (``KeySpec``) and the places where keys work (help's sections)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class KeySpec:
    id: str
    key: str
    action: str
    description: str
    tooltip: str
    where: str
    show: bool = True
    priority: bool = False

    def binding(self) -> Binding:
        return Binding(
            self.key,
            self.action,
            self.description,
            show=self.show,
            priority=self.priority,
            id=self.id,
            tooltip=self.tooltip,
        )


EVERYWHERE = "Everywhere"
PAGE = "Integrations page (also inside text fields)"
PAGE_OUTSIDE_FIELDS = "Integrations page (outside text fields)"
SFTP = "(3) SFTP connection details"
AS2 = "(3) AS2 connection details"
COPY_ROW = "A value with a copy action"
RULES = "(5) Conversion rules table"
RULE_FORM = "Rule form"
ACTIVITY = "Activity (F6)"
CONFIRM = "Confirmation questions"
UNSAVED = "Unsaved changes question"
PASSWORD = "New password dialog"
ERROR = "Error message"
CERTIFICATES = "Certificate dialogs"
HELP = "Help (F1)"
