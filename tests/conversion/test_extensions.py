"""The platform's extension functions (namespace java:com.whitedoc.xslt.extensions.WdExtensions)
answer from the account's data, so its conversion maps run unchanged, on lxml and on Saxon."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lxml import etree

from core.config import load_config
from core.conversion import TransformPool, XsltCompileError, XsltRuntimeError
from core.conversion.extensions import LookupContext
from core.demo import demo_envelope_files
from core.service import Service

WD = "java:com.whitedoc.xslt.extensions.WdExtensions"
ACCOUNT = "4081180a-0ee2-4aea-a82e-f1208774a596"  # data/demo/account.json
PURCHASING = "26c79f73-753d-4148-b26a-5d3e9abbc6fb"
ORDER_TEMPLATE = "9631509a-3c58-465e-a541-d79151dedc11"
INVOICE_TEMPLATE = "541f89fe-2367-4ea2-85b8-a80e387ecfbc"
ORDER_PO_2024_0117 = "0238cdda-4fd2-473c-a584-bdb1d484f397"
INVOICE_90031877 = "c2cc6449-faec-4285-b97d-314756218f61"
VERSIONS = ["1.0", "2.0", "3.0"]

SOURCE = b"""<request><mailbox>Purchasing</mailbox><order>PO-2024-0117</order>
<invoice>90031877</invoice></request>"""


def sheet(version: str, results: dict[str, str], extra: str = "") -> str:
    """A map writing each XPath expression of ``results`` into an element of that name."""
    body = "".join(f'<{n}><xsl:value-of select="{e}"/></{n}>' for n, e in results.items())
    return (
        f'<xsl:stylesheet version="{version}" '
        f'xmlns:xsl="http://www.w3.org/1999/XSL/Transform" xmlns:wd="{WD}" '
        f'exclude-result-prefixes="wd">\n'
        f'<xsl:template match="/">{extra}<result>{body}</result></xsl:template>\n'
        "</xsl:stylesheet>"
    )


def values(content: bytes) -> dict[str, str]:
    return {child.tag: child.text or "" for child in etree.fromstring(content)}


@pytest.fixture
async def lookups(data_dir: Path) -> LookupContext:
    """The demo account's database, as the engine would name it for a rule of Purchasing."""
    config = await asyncio.to_thread(load_config, data_dir)
    return LookupContext(config.lookup_database, ACCOUNT)


@pytest.fixture
async def pool() -> AsyncIterator[TransformPool]:
    async with TransformPool(workers=1) as opened:
        yield opened


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_platform_map_finds_a_mailbox_and_envelopes(
    pool: TransformPool, lookups: LookupContext, version: str
) -> None:
    stylesheet = sheet(
        version,
        {
            "mailbox": "wd:getMailboxUuidByAlias(/request/mailbox)",
            "order": f"wd:findEnvelopeUuidByField('{ORDER_TEMPLATE}', 'orderNumber', "
            "/request/order)",
            "invoice": f"wd:findEnvelopeUuidByField('{INVOICE_TEMPLATE}', 'invoiceNumber', "
            "string(/request/invoice))",
        },
    )
    output = await pool.run_transform(stylesheet, SOURCE, {}, lookups=lookups)
    assert values(output.content) == {
        "mailbox": PURCHASING,
        "order": ORDER_PO_2024_0117,
        "invoice": INVOICE_90031877,
    }
    assert b"docbridge" not in output.content  # no namespace of ours leaks into the result


@pytest.mark.parametrize("version", VERSIONS)
async def test_what_matches_nothing_or_several_is_empty(
    pool: TransformPool, lookups: LookupContext, version: str
) -> None:
    stylesheet = sheet(
        version,
        {
            "unknown_alias": "wd:getMailboxUuidByAlias('Nobody')",
            "other_case": "wd:getMailboxUuidByAlias('purchasing')",
            # Nine demo orders are in EUR: which one is meant is anybody's guess.
            "several": f"wd:findEnvelopeUuidByField('{ORDER_TEMPLATE}', 'currency', 'EUR')",
            "no_value": f"wd:findEnvelopeUuidByField('{ORDER_TEMPLATE}', 'orderNumber', 'X')",
            # The invoice carries PO-2024-0117 too, but it is of the invoice template.
            "other_template": f"wd:findEnvelopeUuidByField('{INVOICE_TEMPLATE}', "
            "'orderNumber', 'PO-2024-0117')",
            # AC-1001 is an article number inside the order's lines table.
            "in_a_table": f"wd:findEnvelopeUuidByField('{ORDER_TEMPLATE}', 'articleNumber', "
            "'AC-1001')",
        },
    )
    output = await pool.run_transform(stylesheet, SOURCE, {}, lookups=lookups)
    found = values(output.content)
    assert found["other_template"] == INVOICE_90031877
    del found["other_template"]
    assert found == dict.fromkeys(found, "")


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_map_that_stops_when_a_lookup_fails_runs_when_it_succeeds(
    pool: TransformPool, lookups: LookupContext, version: str
) -> None:
    guard = (
        "<xsl:if test=\"wd:getMailboxUuidByAlias('Logistics') = ''\">"
        '<xsl:message terminate="yes">Logistics is missing</xsl:message></xsl:if>'
    )
    stylesheet = sheet(version, {"ok": "'yes'"}, extra=guard)
    output = await pool.run_transform(stylesheet, SOURCE, {}, lookups=lookups)
    assert values(output.content) == {"ok": "yes"}

    missing = stylesheet.replace("'Logistics'", "'Shipping'")
    with pytest.raises(XsltRuntimeError) as error:
        await pool.run_transform(missing, SOURCE, {}, lookups=lookups)
    assert "Logistics is missing" in error.value.hint + error.value.title


async def test_a_lookup_may_use_the_answer_of_another(
    pool: TransformPool, lookups: LookupContext
) -> None:
    """Saxon runs such a map once per level of dependency; the answer is the same as lxml's."""
    chained = (
        f"wd:findEnvelopeUuidByField('{ORDER_TEMPLATE}', 'orderNumber', "
        "substring-before(concat('PO-2024-0117 ', wd:getMailboxUuidByAlias('Purchasing')), ' '))"
    )
    for version in VERSIONS:
        output = await pool.run_transform(
            sheet(version, {"order": chained}), SOURCE, {}, lookups=lookups
        )
        assert values(output.content) == {"order": ORDER_PO_2024_0117}


@pytest.mark.parametrize("version", VERSIONS)
async def test_without_an_account_a_lookup_says_what_it_needs(
    pool: TransformPool, version: str
) -> None:
    stylesheet = sheet(version, {"mailbox": "wd:getMailboxUuidByAlias('Purchasing')"})
    with pytest.raises(XsltRuntimeError, match="needs the mailbox's account"):
        await pool.run_transform(stylesheet, SOURCE, {})


@pytest.mark.parametrize("version", VERSIONS)
async def test_another_function_of_the_platform_is_named_before_running(
    pool: TransformPool, lookups: LookupContext, version: str
) -> None:
    stylesheet = sheet(version, {"x": "wd:getDocumentPdf('a')"})
    with pytest.raises(XsltCompileError) as error:
        await pool.run_transform(stylesheet, SOURCE, {}, lookups=lookups)
    assert "wd:getDocumentPdf()" in error.value.title
    assert error.value.line == 2  # the template, on the line after xsl:stylesheet
    assert "getMailboxUuidByAlias(name)" in error.value.hint


@pytest.mark.parametrize("version", VERSIONS)
async def test_other_java_extension_functions_are_named_before_running(
    pool: TransformPool, version: str
) -> None:
    stylesheet = sheet(version, {"x": "rt:exec('id')"}).replace(
        'xmlns:wd="', 'xmlns:rt="java:java.lang.Runtime" xmlns:wd="'
    )
    with pytest.raises(XsltCompileError, match=r"rt:exec\(\)") as error:
        await pool.run_transform(stylesheet, SOURCE, {})
    assert "Java extension functions" in error.value.hint


@pytest.mark.parametrize("version", VERSIONS)
async def test_functions_of_an_unknown_namespace_are_named_before_running(
    pool: TransformPool, version: str
) -> None:
    stylesheet = sheet(version, {"x": "foo:bar(1)"}).replace(
        'xmlns:wd="', 'xmlns:foo="http://example.com/foo" xmlns:wd="'
    )
    with pytest.raises(XsltCompileError, match=r"foo:bar\(\) \(line 2\)") as error:
        await pool.run_transform(stylesheet, SOURCE, {})
    assert "http://example.com/foo" in error.value.hint


async def test_functions_the_stylesheet_declares_itself_still_run(pool: TransformPool) -> None:
    declared = {
        "1.0": '<func:function xmlns:func="http://exslt.org/functions" name="my:twice">'
        '<xsl:param name="n"/><func:result select="$n * 2"/></func:function>',
        "2.0": '<xsl:function name="my:twice"><xsl:param name="n"/>'
        '<xsl:sequence select="$n * 2"/></xsl:function>',
    }
    for version, function in declared.items():
        stylesheet = (
            sheet(version, {"x": "my:twice(21)", "y": "math:sqrt(16)" if version == "2.0" else "4"})
            .replace('xmlns:wd="', 'xmlns:my="urn:my" xmlns:wd="')
            .replace(
                'xmlns:wd="',
                'xmlns:math="http://www.w3.org/2005/xpath-functions/math" '
                'extension-element-prefixes="func" xmlns:func="http://exslt.org/functions" '
                'xmlns:wd="',
            )
            .replace("</xsl:stylesheet>", function + "</xsl:stylesheet>")
        )
        output = await pool.run_transform(stylesheet, SOURCE, {})
        assert values(output.content) == {"x": "42", "y": "4"}


async def test_an_envelope_received_later_is_found_by_the_same_worker(
    pool: TransformPool, lookups: LookupContext, service: Service
) -> None:
    """The worker keeps its read-only connection open; it still sees what arrives after."""
    stylesheet = sheet(
        "2.0", {"order": f"wd:findEnvelopeUuidByField('{ORDER_TEMPLATE}', 'orderNumber', 'PO-9')"}
    )
    before = await pool.run_transform(stylesheet, SOURCE, {}, lookups=lookups)
    assert values(before.content) == {"order": ""}

    first_order = sorted(await asyncio.to_thread(demo_envelope_files))[0]
    data = (
        (await asyncio.to_thread(first_order.read_bytes))
        .replace(ORDER_PO_2024_0117.encode(), b"11111111-2222-4333-8444-555555555555")
        .replace(b">PO-2024-0117<", b">PO-9<")
    )
    await service.receive_envelope(PURCHASING, data)

    after = await pool.run_transform(stylesheet, SOURCE, {}, lookups=lookups)
    assert values(after.content) == {"order": "11111111-2222-4333-8444-555555555555"}
