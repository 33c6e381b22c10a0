"""The keys of the other screens and dialogs (rule form, activity, questions, help): the second
half of the key table (``tui.key_table``), kept apart so each file stays readable."""

from __future__ import annotations

from tui.key_spec import (
    ACTIVITY,
    CERTIFICATES,
    CONFIRM,
    ERROR,
    HELP,
    PASSWORD,
    RULE_FORM,
    UNSAVED,
    KeySpec,
)

CONVERSIONS = "Conversion log (F4)"
CONVERSION_VIEW = "A conversion's input and output"

SCREEN_KEYS: tuple[KeySpec, ...] = (
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
    KeySpec(
        "rule.run",
        "ctrl+r",
        "run",
        "Run",
        "Run the rule on its example and show the Result (Save needs a successful run)",
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
        "Parked and retrying items, attempts, SFTP sessions, bans, AS2 messages: the next one",
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
    KeySpec(
        "activity.as2",
        "5",
        "show_section('as2')",
        "AS2 messages",
        "Recent AS2 messages in and out, with their MDNs",
        ACTIVITY,
        show=False,
    ),
    KeySpec(
        "activity.conversions",
        "c",
        "app.conversions",
        "Conversions",
        "Switch to the conversion log",
        ACTIVITY,
        show=False,  # named in the details' title: the footer at 80 columns keeps Quit and Help
    ),
    # -- conversion log ------------------------------------------------------------------------
    KeySpec("conversions.back", "escape", "back", "Back", "Back to the page", CONVERSIONS),
    KeySpec(
        "conversions.view",
        "v",
        "view",
        "View",
        "Input and output of the selected record (enter too)",
        CONVERSIONS,
    ),
    KeySpec(
        "conversions.mark",
        "space",
        "mark",
        "Mark",
        "Mark or unmark the selected record for reprocessing, then go to the next",
        CONVERSIONS,
        show=False,  # named in the details' title (the footer keeps Quit and Help at 80)
    ),
    KeySpec(
        "conversions.reprocess",
        "r",
        "reprocess",
        "Reprocess",
        "Run the marked records (else the selected one) through the rules again (asks first)",
        CONVERSIONS,
    ),
    KeySpec(
        "conversions.more",
        "m",
        "more",
        "More",
        "Show the next records of a long log (the summary line says when there are more)",
        CONVERSIONS,
        show=False,
    ),
    KeySpec(
        "conversions.filters",
        "f",
        "filters",
        "Filters",
        "Go to the filters (rule, mailbox, status, keyword)",
        CONVERSIONS,
    ),
    KeySpec(
        "conversions.refresh",
        "g",
        "refresh",
        "Refresh",
        "Read the log again",
        CONVERSIONS,
        show=False,
    ),
    KeySpec(
        "conversion_view.close",
        "escape",
        "close",
        "Close",
        "Back to the conversion log",
        CONVERSION_VIEW,
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
