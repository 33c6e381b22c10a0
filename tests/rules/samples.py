"""Conversion maps and sources the rule tests share: a CSV order list that becomes purchase
order envelopes (XSLT 1.0 and 2.0), and an IN map that writes an order as a CSV line."""

from __future__ import annotations

from dataclasses import replace

from core.models import Direction, MatchTarget, RuleForm

PURCHASE_ORDER = "9631509a-3c58-465e-a541-d79151dedc11"
ACME = "0dbfa4db-e126-445e-a164-dac5593117c1"

ORDERS_CSV = (
    b"orderNumber;orderDate;currency;article;quantity;price\n"
    b"PO-1;2026-11-01;EUR;A-100;2;10.50\n"
    b"PO-2;2026-11-02;EUR;B-200;1;99.00\n"
)

_ENVELOPE_BODY = f"""
      <info><subject>Order <xsl:value-of select="col[@index=0]"/></subject></info>
      <flow><roles>
        <role id="sender" mailboxUuid="{{$SENDER_MAILBOX}}"/>
        <role id="recipient" mailboxUuid="{ACME}"/>
      </roles></flow>
      <documents><document id="order">
        <field name="orderNumber"><xsl:value-of select="col[@index=0]"/></field>
        <field name="orderDate"><xsl:value-of select="col[@index=1]"/></field>
        <field name="currency"><xsl:value-of select="col[@index=2]"/></field>
        <field name="totalAmount"><xsl:value-of select="col[@index=4] * col[@index=5]"/></field>
        <fieldgroup name="lines"><fieldset index="0">
          <field name="lineNumber">1</field>
          <field name="articleNumber"><xsl:value-of select="col[@index=3]"/></field>
          <field name="quantity"><xsl:value-of select="col[@index=4]"/></field>
          <field name="unitPrice"><xsl:value-of select="col[@index=5]"/></field>
        </fieldset></fieldgroup>
      </document></documents>"""

# One envelope per data row, under one root (the rule may produce multiple envelopes).
CSV_TO_ORDERS_1_0 = f"""<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:param name="SENDER_MAILBOX"/>
  <xsl:param name="TEMPLATE_UUID"/>
  <xsl:param name="TEMPLATE_VERSION"/>
  <xsl:template match="/">
    <envelopes>
      <xsl:for-each select="xml/sheet[@index=0]/row[@index &gt; 0]">
        <envelope templateUuid="{{$TEMPLATE_UUID}}" templateVersion="{{$TEMPLATE_VERSION}}">
        {_ENVELOPE_BODY}
        </envelope>
      </xsl:for-each>
    </envelopes>
  </xsl:template>
</xsl:stylesheet>
"""

# The same in XSLT 2.0, grouping rows by order number (the platform's examples use 2.0).
CSV_TO_ORDERS_2_0 = f"""<?xml version="1.0"?>
<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:param name="SENDER_MAILBOX"/>
  <xsl:param name="TEMPLATE_UUID"/>
  <xsl:param name="TEMPLATE_VERSION"/>
  <xsl:template match="/">
    <envelopes>
      <xsl:for-each-group select="xml/sheet[@index=0]/row[@index &gt; 0]"
                          group-by="col[@index=0]">
        <envelope templateUuid="{{$TEMPLATE_UUID}}" templateVersion="{{$TEMPLATE_VERSION}}">
        {_ENVELOPE_BODY}
        </envelope>
      </xsl:for-each-group>
    </envelopes>
  </xsl:template>
</xsl:stylesheet>
"""

# An IN map: the order as one CSV line, "<orderNumber>;<currency>;<totalAmount>".
ORDER_TO_CSV_1_0 = """<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="text" encoding="UTF-8"/>
  <xsl:param name="SENDER_MAILBOX"/>
  <xsl:template match="/">
    <xsl:for-each select="envelope/documents/document[@id='order']">
      <xsl:value-of select="field[@name='orderNumber']"/>;<xsl:value-of
        select="field[@name='currency']"/>;<xsl:value-of select="field[@name='totalAmount']"/>
      <xsl:text>&#10;</xsl:text>
    </xsl:for-each>
  </xsl:template>
</xsl:stylesheet>
"""

# The smallest valid map: copies its input (what rule-table tests need, not a conversion).
IDENTITY_MAP = """<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/"><xsl:copy-of select="."/></xsl:template>
</xsl:stylesheet>
"""

BROKEN_AT_LINE_4 = """<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/">
    <xsl:value-of select="1 +"/>
  </xsl:template>
</xsl:stylesheet>
"""


def out_rule(
    name: str, conversion_map: str, pattern: str = r"\.csv$", **changes: object
) -> RuleForm:
    form = RuleForm(
        name=name,
        direction=Direction.OUT,
        template_uuid=PURCHASE_ORDER,
        enabled=True,
        match_pattern=pattern,
        match_target=MatchTarget.NAME,
        conversion_map=conversion_map,
        multiple_envelopes=True,
    )
    return replace(form, **changes)  # type: ignore[arg-type]


def in_rule(name: str, conversion_map: str = ORDER_TO_CSV_1_0, **changes: object) -> RuleForm:
    form = RuleForm(
        name=name,
        direction=Direction.IN,
        template_uuid=PURCHASE_ORDER,
        enabled=True,
        naming_pattern="{envelopeUuid}.csv",
        conversion_map=conversion_map,
    )
    return replace(form, **changes)  # type: ignore[arg-type]
