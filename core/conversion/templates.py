"""What a template version offers a rule form to start from: an example envelope (IN) and a
skeleton conversion map (OUT), both listing every field and field group of the version."""

from __future__ import annotations

import uuid as uuid_module
from xml.sax.saxutils import quoteattr

from core.clock import utc_datetime
from core.envelope_xml import (
    EnvelopeDocument,
    EnvelopeField,
    EnvelopeFieldgroup,
    EnvelopeFieldset,
    EnvelopeRole,
    EnvelopeXml,
    serialize_envelope_xml,
)
from core.models import TemplateVersion

# A partner mailbox for the example: any uuid; the example is edited, never sent.
EXAMPLE_PARTNER = "00000000-0000-4000-8000-000000000001"


def placeholder(field: dict[str, object]) -> str:
    kind = str(field.get("type", "text"))
    if kind == "date":
        return utc_datetime().date().isoformat()
    if kind == "number":
        return "1"
    return f"{field['name']} example"


def example_envelope_xml(version: TemplateVersion, template_name: str, mailbox_uuid: str) -> str:
    """An envelope a partner could send this mailbox, every field filled with a placeholder."""
    documents = []
    for document in version.documents:
        fields = tuple(EnvelopeField(f["name"], placeholder(f)) for f in document.get("fields", []))
        groups = tuple(
            EnvelopeFieldgroup(
                group["name"],
                (
                    EnvelopeFieldset(
                        0,
                        tuple(
                            EnvelopeField(f["name"], placeholder(f))
                            for f in group.get("fields", [])
                        ),
                    ),
                ),
            )
            for group in document.get("fieldgroups", [])
        )
        documents.append(EnvelopeDocument(document["id"], fields, groups))
    envelope = EnvelopeXml(
        template_uuid=version.template_uuid,
        template_version=version.version,
        uuid=str(uuid_module.uuid4()),
        subject=f"Example {template_name}",
        message="",
        roles=(EnvelopeRole("sender", EXAMPLE_PARTNER), EnvelopeRole("recipient", mailbox_uuid)),
        documents=tuple(documents),
    )
    return serialize_envelope_xml(envelope).decode("utf-8")


def skeleton_stylesheet(version: TemplateVersion) -> str:
    """An XSLT 2.0 map producing one envelope of this version: each field's value is a
    placeholder expression to replace with a path into the source's XML view."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">',
        '  <xsl:output method="xml" indent="yes"/>',
        '  <xsl:param name="SENDER_MAILBOX"/>',
        '  <xsl:param name="TEMPLATE_UUID"/>',
        '  <xsl:param name="TEMPLATE_VERSION"/>',
        '  <xsl:template match="/">',
        '    <envelope templateUuid="{$TEMPLATE_UUID}" templateVersion="{$TEMPLATE_VERSION}">',
        "      <info><subject>TODO subject</subject></info>",
        "      <flow><roles>",
        '        <role id="sender" mailboxUuid="{$SENDER_MAILBOX}"/>',
        "        <!-- TODO: the recipient's mailbox uuid -->",
        f'        <role id="recipient" mailboxUuid="{EXAMPLE_PARTNER}"/>',
        "      </roles></flow>",
        "      <documents>",
    ]
    for document in version.documents:
        lines.append(f"        <document id={quoteattr(document['id'])}>")
        lines += [_field_line(f, "          ") for f in document.get("fields", [])]
        for group in document.get("fieldgroups", []):
            lines += [
                f"          <fieldgroup name={quoteattr(group['name'])}>",
                "            <!-- TODO: one source element per row -->",
                '            <xsl:for-each select="xml/sheet[1]/row[position() &gt; 1]">',
                '              <fieldset index="{position() - 1}">',
                *[_field_line(f, "                ") for f in group.get("fields", [])],
                "              </fieldset>",
                "            </xsl:for-each>",
                "          </fieldgroup>",
            ]
        lines.append("        </document>")
    lines += ["      </documents>", "    </envelope>", "  </xsl:template>", "</xsl:stylesheet>", ""]
    return "\n".join(lines)


def _field_line(field: dict[str, object], indent: str) -> str:
    required = "required" if field.get("required") else "optional"
    name = quoteattr(str(field["name"]))
    value = quoteattr(f"'{placeholder(field)}'")
    return (
        f"{indent}<field name={name}><xsl:value-of select={value}/></field>"
        f"<!-- {required} {field.get('type', 'text')} -->"
    )
