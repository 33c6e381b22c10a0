"""Checks of an envelope shared by every way one enters: against the account's templates, and
against the mailbox it enters through (a mailbox only ever speaks as itself, SPEC §9)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Any

from core.envelope_xml import EnvelopeField, EnvelopeXml, serialize_envelope_xml
from core.errors import InvalidInput
from core.storage import accounts
from core.storage.connection import Tx

SENDER_ROLE = "sender"
RECIPIENT_ROLE = "recipient"


def check_sender_is(parsed: EnvelopeXml, mailbox_uuid: str) -> None:
    """An envelope a mailbox sends (a customer's upload, an AS2 payload) must name that mailbox
    in its ``sender`` role: naming it in any role is not enough, or a mailbox could send as
    another."""
    _check_role(parsed, SENDER_ROLE, mailbox_uuid, "sent by")


def check_recipient_is(parsed: EnvelopeXml, mailbox_uuid: str, name: str = "") -> None:
    """An envelope a mailbox receives must name that mailbox in its ``recipient`` role, or an
    envelope could be planted in a mailbox it was not sent to."""
    _check_role(parsed, RECIPIENT_ROLE, mailbox_uuid, "addressed to", name)


def _check_role(
    parsed: EnvelopeXml, role_id: str, mailbox_uuid: str, meaning: str, name: str = ""
) -> None:
    expected = mailbox_uuid.lower()
    if parsed.role_mailbox(role_id) == expected:
        return
    shown = ", ".join(f"{role.id}={role.mailbox_uuid}" for role in parsed.roles[:6])
    if len(parsed.roles) > 6:
        shown += f" and {len(parsed.roles) - 6} more"
    raise InvalidInput(
        f"This envelope is not {meaning} mailbox {_shown(expected, name)}: its roles are {shown}.",
        f"Name this mailbox in the {role_id} role: "
        f'<role id="{role_id}" mailboxUuid="{expected}"/>.',
    )


def check_envelope_against_template(conn: Tx, parsed: EnvelopeXml) -> None:
    version = accounts.get_template_version(conn, parsed.template_uuid, parsed.template_version)
    if version is None:
        raise _unknown_template_or_version(conn, parsed)
    known_documents = {d["id"] for d in version.documents}
    for document in parsed.documents:
        if document.id not in known_documents:
            raise InvalidInput(
                f"Document '{document.id}' is not part of template "
                f"'{_template_name(conn, parsed)}' version {version.version}.",
                f"Its documents are: {', '.join(sorted(known_documents))}.",
            )
        allowed = version.field_names(document.id)
        unknown = sorted({f.name for f in document.fields} - allowed)
        for group in document.fieldgroups:
            group_allowed = version.group_field_names(document.id, group.name)
            for fieldset in group.fieldsets:
                unknown += sorted({f.name for f in fieldset.fields} - group_allowed)
        if unknown:
            raise InvalidInput(
                f"Document '{document.id}' has fields that template "
                f"'{_template_name(conn, parsed)}' version {version.version} does not define: "
                f"{', '.join(unknown)}.",
                "Use the field names of the template version the envelope names.",
            )


def _unknown_template_or_version(conn: Tx, parsed: EnvelopeXml) -> InvalidInput:
    template = accounts.get_template(conn, parsed.template_uuid)
    if template is None:
        return InvalidInput(
            f"Unknown template {parsed.template_uuid}.",
            "The envelope must name a template of this account (see 'docbridge mailbox list').",
        )
    versions = ", ".join(str(v) for v in template.versions)
    return InvalidInput(
        f"Template '{template.name}' has no version {parsed.template_version}.",
        f"Known versions: {versions}.",
    )


def _template_name(conn: Tx, parsed: EnvelopeXml) -> str:
    """Looked up only for an error message: the check itself needs the version alone."""
    template = accounts.get_template(conn, parsed.template_uuid)
    return template.name if template is not None else parsed.template_uuid


def stored_xml(data: bytes, parsed: EnvelopeXml) -> str:
    """The envelope XML as it is kept and delivered: the sender's bytes when they are UTF-8,
    else the same envelope re-serialised as UTF-8 (so no declaration ever lies about it)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return serialize_envelope_xml(parsed).decode("utf-8")


def _shown(mailbox_uuid: str, name: str) -> str:
    return f"{name} ({mailbox_uuid})" if name else mailbox_uuid


_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_BOOLEAN = ("true", "false")


def check_field_values(conn: Tx, parsed: EnvelopeXml) -> None:
    """An envelope a mailbox sends must fill its template version's required fields and give
    each typed field a value of its type (date ``YYYY-MM-DD``, number ``-12.50``, boolean
    ``true``/``false``), in every document and every row of every table. Run after
    :func:`check_envelope_against_template`, which knows the template exists."""
    version = accounts.get_template_version(conn, parsed.template_uuid, parsed.template_version)
    if version is None:
        return
    problems: list[str] = []
    for document in parsed.documents:
        definition = next(d for d in version.documents if d["id"] == document.id)
        problems += _value_problems(definition.get("fields", []), document.fields, document.id)
        for group in document.fieldgroups:
            fields: list[dict[str, Any]] = next(
                (
                    g.get("fields", [])
                    for g in definition.get("fieldgroups", [])
                    if g["name"] == group.name
                ),
                [],
            )
            for fieldset in group.fieldsets:
                where = f"{document.id} / {group.name} row {fieldset.index}"
                problems += _value_problems(fields, fieldset.fields, where)
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise InvalidInput(
            f"Fields do not hold what the template asks: {shown}.",
            "Fill every required field and give dates as YYYY-MM-DD and numbers as -12.50.",
        )


def _value_problems(
    definitions: list[dict[str, Any]], fields: Sequence[EnvelopeField], where: str
) -> list[str]:
    values = {field.name: field.value.strip() for field in fields}
    problems: list[str] = []
    for definition in definitions:
        name = definition["name"]
        value = values.get(name, "")
        if not value:
            if definition.get("required"):
                problems.append(f"{where}: '{name}' is required and empty")
            continue
        kind = definition.get("type", "text")
        if not _has_type(value, kind):
            problems.append(f"{where}: '{name}' is {value[:40]!r}, not a {kind}")
    return problems


def _has_type(value: str, kind: str) -> bool:
    if kind == "number":
        return _NUMBER.fullmatch(value) is not None
    if kind == "boolean":
        return value in _BOOLEAN
    if kind == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
        return len(value) == 10
    return True
