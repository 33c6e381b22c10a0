"""The fields of the rule form (SPEC §7), laid out from a rule's form; the screen reads them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Button, Select, Static

from core.models import Direction, MatchTarget, RuleForm, Template
from tui.widgets.example_source import ExampleSource
from tui.widgets.fields import FieldError, FieldRow, FormInput
from tui.widgets.marks import MarkedCheckbox
from tui.widgets.rule_texts import ExampleEnvelope, MapEditor

if TYPE_CHECKING:
    from core.service import Service

LATEST = "latest"
NAMING_HELP = (
    "Variables: {mailboxUuid} {envelopeUuid} {randomNumber} {templateUuid} {date yyyy-MM-dd} "
    '{"documentId":"fieldName"}.  Not allowed: \\ / : ? * < > |'
)


def version_options(template: Template | None, current: int | None) -> list[tuple[str, str]]:
    """ "latest" and each version of the template (plus a stored one it no longer has)."""
    versions = list(template.versions) if template else []
    if current is not None and current not in versions:
        versions.append(current)  # shown so the error next to it makes sense
    latest = f"latest ({template.latest_version})" if template else "latest"
    return [(latest, LATEST)] + [(f"version {v}", str(v)) for v in sorted(versions)]


def rule_fields(
    form: RuleForm, templates: Mapping[str, Template], service: Service, mailbox_uuid: str
) -> Iterator[Widget]:
    template_options: list[tuple[Text, str]] = [(Text(t.name), t.uuid) for t in templates.values()]
    if form.template_uuid and form.template_uuid not in templates:
        template_options.append(
            (Text(f"unknown template {form.template_uuid}"), form.template_uuid)
        )
    yield FieldRow("Name", FormInput("name", form.name, id="rule-name"))
    yield FieldError("name", id="err-name")
    yield FieldRow(
        "State",
        MarkedCheckbox("Rule is on", form.enabled, id="rule-enabled", compact=True),
    )
    yield FieldRow(
        "Direction",
        Select[str](
            [
                ("IN  - In (My incoming envelopes)", Direction.IN.value),
                ("OUT - Out (Envelopes I sent)", Direction.OUT.value),
            ],
            value=form.direction.value,
            allow_blank=False,
            id="rule-direction",
            compact=True,
        ),
    )
    yield FieldRow(
        "Template",
        Select[str](
            template_options,
            value=form.template_uuid if form.template_uuid else Select.NULL,
            allow_blank=True,
            prompt="choose a template",
            id="rule-template",
            compact=True,
        ),
    )
    yield FieldError("template_uuid", id="err-template_uuid")
    yield FieldRow(
        "Version",
        Select[str](
            version_options(templates.get(form.template_uuid), form.template_version),
            value=str(form.template_version) if form.template_version else LATEST,
            allow_blank=False,
            id="rule-version",
            compact=True,
        ),
    )
    yield FieldError("template_version", id="err-template_version")
    # Only the chosen direction's fields are built; the other group fills when it is chosen.
    is_in = form.direction is Direction.IN
    yield Vertical(
        *(in_fields(form, service, mailbox_uuid, templates) if is_in else ()), id="rule-in"
    )
    yield Vertical(*(() if is_in else out_fields(form, service, mailbox_uuid)), id="rule-out")
    yield MapEditor(service, form.conversion_map)


def form_buttons(key: Callable[[str], str]) -> Horizontal:
    """Run, Save, Clone, Delete, Back, each naming its key as the keymap has it."""
    return Horizontal(
        Button(f"Run ({key('rule.run')})", id="rule-run", compact=True),
        Button(f"Save ({key('rule.save')})", id="rule-save", variant="primary", compact=True),
        Button(f"Clone ({key('rule.clone')})", id="rule-clone", compact=True),
        Button(f"Delete ({key('rule.delete')})", id="rule-delete", variant="error", compact=True),
        Button(f"Back ({key('rule.back')})", id="rule-back", compact=True),
        classes="form-buttons",
    )


def in_fields(
    form: RuleForm, service: Service, mailbox_uuid: str, templates: Mapping[str, Template]
) -> list[Widget]:
    """IN (envelope -> file): how the produced file is named."""
    return [
        FieldRow(
            "Naming pattern",
            FormInput(
                "naming_pattern",
                form.naming_pattern,
                id="rule-naming_pattern",
                placeholder="e.g. {date yyyy-MM-dd}_{envelopeUuid}.xml",
            ),
        ),
        Static(Text(NAMING_HELP, style="dim"), classes="under-field"),
        FieldError("naming_pattern", id="err-naming_pattern"),
        ExampleEnvelope(
            service,
            mailbox_uuid,
            templates,
            form.example_source.decode("utf-8", errors="replace")
            if form.direction is Direction.IN
            else "",
        ),
    ]


def out_fields(form: RuleForm, service: Service, mailbox_uuid: str) -> list[Widget]:
    """OUT (file -> envelope): which files the rule takes, an example, one or many envelopes."""
    return [
        FieldRow(
            "Matching pattern",
            FormInput(
                "match_pattern",
                form.match_pattern,
                id="rule-match_pattern",
                placeholder=r"regular expression, e.g. ^orders_.*\.csv$",
            ),
        ),
        FieldError("match_pattern", id="err-match_pattern"),
        FieldRow(
            "Match in",
            Select[str](
                [
                    ("file name", MatchTarget.NAME.value),
                    ("file content", MatchTarget.CONTENT.value),
                ],
                value=form.match_target.value,
                allow_blank=False,
                id="rule-match_target",
                compact=True,
            ),
        ),
        FieldRow(
            "Envelopes",
            MarkedCheckbox(
                "Rule can produce multiple envelopes",
                form.multiple_envelopes,
                id="rule-multiple",
                compact=True,
            ),
        ),
        ExampleSource(
            service,
            mailbox_uuid,
            form.example_source_name if form.direction is Direction.OUT else "",
            form.example_source if form.direction is Direction.OUT else b"",
        ),
    ]
