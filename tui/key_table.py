"""The table of every key of the TUI: id, default key, action, words for the footer and help.

Widgets build their ``BINDINGS`` from it through ``tui.keys``; help lists it; hints derive from it.
Single letters only copy, move focus or open a view; anything that creates, changes or deletes
needs a ctrl or function key, or asks first (keys arrive bunched over SSH).
"""

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

KEYS: tuple[KeySpec, ...] = (
    # -- everywhere ------------------------------------------------------------------------
    KeySpec(
        "app.quit",
        "ctrl+q",
        "app.quit",
        "Quit",
        "Leave docbridge (asks when there are unsaved changes)",
        EVERYWHERE,
        priority=True,
    ),
    KeySpec(
        "app.help",
        "f1",
        "app.help",
        "Help",
        "Every key, by where it works",
        EVERYWHERE,
        priority=True,
    ),
    KeySpec(
        "app.activity",
        "f6",
        "app.activity",
        "Activity",
        "Engine activity: attempts, parked items, SFTP sessions, bans",
        EVERYWHERE,
        priority=True,
    ),
    KeySpec(
        "app.command_palette",
        "ctrl+p",
        "app.command_palette",
        "Commands",
        "Every action by name",
        EVERYWHERE,
        show=False,
        priority=True,
    ),
    # -- the page, wherever the focus is -----------------------------------------------------
    KeySpec(
        "page.save",
        "ctrl+s",
        "screen.save",
        "Save",
        "Validate and save every field",
        PAGE,
        priority=True,
    ),
    KeySpec(
        "page.toggle",
        "f2",
        "screen.toggle_integration",
        "On/off",
        "Turn the integration of this mailbox on or off (immediate; off asks first)",
        PAGE,
        priority=True,
    ),
    KeySpec(
        "page.switch_mailbox",
        "f3",
        "screen.switch_mailbox",
        "Mailbox",
        "Choose another mailbox of the account",
        PAGE,
        priority=True,
    ),
    KeySpec(
        "rules.add",
        "ctrl+n",
        "screen.add_rule",
        "Add rule",
        "Add a new conversion rule",
        PAGE,
        priority=True,
    ),
    KeySpec(
        "page.leave_field",
        "escape",
        "screen.leave_field",
        "Leave field",
        "Leave a text field so that digit keys jump between blocks",
        PAGE,
        show=False,
        priority=True,  # before the keys typed after it reach the field (bunched over SSH)
    ),
    # -- the page, outside text fields -------------------------------------------------------
    KeySpec(
        "page.block1",
        "1",
        "screen.focus_block(1)",
        "Block 1",
        "Go to (1) Integration",
        PAGE_OUTSIDE_FIELDS,
        show=False,
    ),
    KeySpec(
        "page.block2",
        "2",
        "screen.focus_block(2)",
        "Block 2",
        "Go to (2) Manage integration",
        PAGE_OUTSIDE_FIELDS,
        show=False,
    ),
    KeySpec(
        "page.block3",
        "3",
        "screen.focus_block(3)",
        "Block 3",
        "Go to (3) Connection details",
        PAGE_OUTSIDE_FIELDS,
        show=False,
    ),
    KeySpec(
        "page.block4",
        "4",
        "screen.focus_block(4)",
        "Block 4",
        "Go to (4) Default rule",
        PAGE_OUTSIDE_FIELDS,
        show=False,
    ),
    KeySpec(
        "page.block5",
        "5",
        "screen.focus_block(5)",
        "Block 5",
        "Go to (5) Conversion rules",
        PAGE_OUTSIDE_FIELDS,
        show=False,
    ),
    KeySpec(
        "page.next_field",
        "down",
        "app.focus_next",
        "Next field",
        "Next field (the page scrolls with the focus)",
        PAGE_OUTSIDE_FIELDS,
        show=False,
    ),
    KeySpec(
        "page.previous_field",
        "up",
        "app.focus_previous",
        "Previous field",
        "Previous field",
        PAGE_OUTSIDE_FIELDS,
        show=False,
    ),
    # -- (3) SFTP ------------------------------------------------------------------------------
    KeySpec("sftp.copy_host", "h", "copy('host')", "Host", "Copy the host", SFTP),
    KeySpec("sftp.copy_port", "p", "copy('port')", "Port", "Copy the port", SFTP),
    KeySpec("sftp.copy_login", "l", "copy('login')", "Login", "Copy the login", SFTP),
    KeySpec(
        "sftp.copy_password",
        "w",
        "copy('password')",
        "Password",
        "Copy the password while it is shown",
        SFTP,
    ),
    KeySpec(
        "sftp.hide_password",
        "m",
        "hide_password",
        "Hide pw",
        "Mask the password now",
        SFTP,
        show=False,
    ),
    KeySpec(
        "sftp.reset_password",
        "ctrl+r",
        "reset_password",
        "Reset pw",
        "Generate a new SFTP password (asks first)",
        SFTP,
    ),
    # -- (3) AS2 -------------------------------------------------------------------------------
    KeySpec("as2.copy_url", "ctrl+l", "copy_self_url", "Copy URL", "Copy the Self URL", AS2),
    KeySpec(
        "as2.export_certificate",
        "ctrl+g",
        "export_certificate",
        "Export cert",
        "Write the self certificate to a PEM file (never overwrites)",
        AS2,
    ),
    KeySpec(
        "as2.import_certificate",
        "ctrl+o",
        "import_certificate",
        "Recipient cert",
        "Load the recipient certificate from a file or pasted PEM",
        AS2,
    ),
    # -- a value with a copy action ------------------------------------------------------------
    KeySpec(
        "field.copy",
        "enter",
        "activate",
        "Copy",
        "Copy this value (OSC 52 and the local clipboard); on a certificate: export or load it",
        COPY_ROW,
    ),
    # -- (5) rules -----------------------------------------------------------------------------
    KeySpec("rules.open", "enter", "open_rule", "Open", "Open the rule form", RULES),
    KeySpec(
        "rules.toggle",
        "ctrl+t",
        "toggle_rule",
        "On/off",
        "Enable or disable the rule",
        RULES,
    ),
    KeySpec(
        "rules.clone",
        "ctrl+d",
        "clone_rule",
        "Clone",
        "Open an unsaved copy of the rule",
        RULES,
    ),
    KeySpec(
        "rules.delete",
        "delete",
        "delete_rule",
        "Delete",
        "Delete the rule (asks first)",
        RULES,
    ),
    KeySpec("rules.up", "shift+up", "move_rule(-1)", "Up", "Move the rule up", RULES),
    KeySpec("rules.down", "shift+down", "move_rule(1)", "Down", "Move the rule down", RULES),
    # -- rule form -----------------------------------------------------------------------------
    KeySpec(
        "rule.save",
        "ctrl+s",
        "save",
        "Save",
        "Validate and save the rule",
        RULE_FORM,
        priority=True,
    ),
    KeySpec("rule.clone", "f5", "clone", "Clone", "Open an unsaved copy", RULE_FORM, priority=True),
    KeySpec(
        "rule.delete",
        "f8",
        "delete",
        "Delete",
        "Delete the rule (asks first)",
        RULE_FORM,
        priority=True,
    ),
    KeySpec(
        "rule.back", "escape", "back", "Back", "Back to the page (asks when changed)", RULE_FORM
    ),
    # -- activity ------------------------------------------------------------------------------
    KeySpec("activity.back", "escape", "back", "Back", "Back to the page", ACTIVITY),
    KeySpec(
        "activity.reprocess",
        "r",
        "reprocess",
        "Reprocess",
        "Put the selected parked item back in the queue",
        ACTIVITY,
    ),
    KeySpec(
        "activity.reprocess_all",
        "R",
        "reprocess_all",
        "Reprocess all",
        "Put every parked item back in the queue (asks first)",
        ACTIVITY,
    ),
    KeySpec(
        "activity.unban", "u", "unban", "Unban", "Lift the selected SFTP ban (asks first)", ACTIVITY
    ),
    KeySpec("activity.refresh", "g", "refresh", "Refresh", "Read everything again", ACTIVITY),
    KeySpec(
        "activity.next_section",
        "tab",
        "next_section(1)",
        "Next section",
        "Parked and retrying items, attempts, SFTP sessions, bans: the next one",
        ACTIVITY,
        show=False,
    ),
    KeySpec(
        "activity.previous_section",
        "shift+tab",
        "next_section(-1)",
        "Previous section",
        "The previous section",
        ACTIVITY,
        show=False,
    ),
    KeySpec(
        "activity.items",
        "1",
        "show_section('items')",
        "Items",
        "Parked and retrying items",
        ACTIVITY,
        show=False,
    ),
    KeySpec(
        "activity.attempts",
        "2",
        "show_section('attempts')",
        "Attempts",
        "Recent processing attempts",
        ACTIVITY,
        show=False,
    ),
    KeySpec(
        "activity.sessions",
        "3",
        "show_section('sessions')",
        "Sessions",
        "Connected SFTP sessions",
        ACTIVITY,
        show=False,
    ),
    KeySpec(
        "activity.bans",
        "4",
        "show_section('bans')",
        "Bans",
        "Banned SFTP addresses",
        ACTIVITY,
        show=False,
    ),
    # -- dialogs -------------------------------------------------------------------------------
    KeySpec("confirm.yes", "y", "answer(True)", "Yes", "Confirm", CONFIRM),
    KeySpec("confirm.no", "n", "answer(False)", "No", "Keep things as they are", CONFIRM),
    KeySpec("confirm.cancel", "escape", "answer(False)", "Cancel", "Same as No", CONFIRM),
    KeySpec("unsaved.save", "s", "choose('save')", "Save", "Save, then go on", UNSAVED),
    KeySpec("unsaved.discard", "d", "choose('discard')", "Discard", "Drop the changes", UNSAVED),
    KeySpec("unsaved.cancel", "c,escape", "choose('cancel')", "Cancel", "Stay here", UNSAVED),
    KeySpec("password.copy", "w", "copy", "Copy", "Copy the new password", PASSWORD),
    KeySpec("password.close", "enter,escape", "close", "Done", "I have copied it: go on", PASSWORD),
    KeySpec("error.close", "escape,enter", "close", "Close", "Close this message", ERROR),
    KeySpec(
        "error.copy",
        "c",
        "copy_details",
        "Copy details",
        "Copy the details for a bug report",
        ERROR,
    ),
    KeySpec("export.cancel", "escape", "cancel", "Cancel", "Export nothing", CERTIFICATES),
    KeySpec(
        "import.use", "ctrl+s", "use", "Use it", "Check and use this certificate", CERTIFICATES
    ),
    KeySpec("import.cancel", "escape", "cancel", "Cancel", "Keep the old one", CERTIFICATES),
    KeySpec("help.close", "escape,f1,q", "close", "Close", "Close the help", HELP),
)

# Keys that belong to Textual widgets themselves, listed in the help so nothing is hidden.
WIDGET_KEYS: tuple[tuple[str, str, str], ...] = (
    (EVERYWHERE, "tab / shift+tab", "Next / previous field"),
    ("Fields", "enter / space", "Open a selector, flip a switch or checkbox, press a button"),
    ("Fields", "up / down", "Move in a selector, radio set or table"),
    ("Rule form editor (conversion map)", "F7", "Select all text in the editor"),
    ("Rule form editor (conversion map)", "ctrl+z / ctrl+y", "Undo / redo"),
)
