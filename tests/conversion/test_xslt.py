"""The XSLT engine: both XSLT versions, exact output bytes, the sandbox, limits and the pool."""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
from collections import OrderedDict
from collections.abc import AsyncIterator

import pytest
from lxml import etree

from core.conversion import (
    CompiledStylesheet,
    TransformPool,
    XsltCompileError,
    XsltOutputTooLarge,
    XsltRefused,
    XsltRuntimeError,
    XsltTimeLimit,
    compile_stylesheet,
    transform,
    xslt,
)
from core.conversion.pool import run_job
from core.conversion.sandbox import parse_source, parse_stylesheet
from core.conversion.xslt import stylesheet_key

XSL = 'xmlns:xsl="http://www.w3.org/1999/XSL/Transform"'
PARAMETERS = {
    "SENDER_MAILBOX": "shop@example",
    "TEMPLATE_UUID": "0b8a7c1e-1111-4222-8333-944455556666",
    "TEMPLATE_VERSION": "3",
}
PARAMS_DECLARED = "".join(f'<xsl:param name="{name}"/>' for name in PARAMETERS)
ORDER = b"""<order><line sku="A" qty="2"/><line sku="B" qty="1"/><line sku="A" qty="3"/>
<date>2026-11-30</date><tags>red green blue</tags></order>"""


def sheet(version: str, body: str, *, output: str = "", extra_ns: str = "") -> str:
    return (
        f'<xsl:stylesheet version="{version}" {XSL} {extra_ns}>\n{output}{PARAMS_DECLARED}\n'
        f'<xsl:template match="/">{body}</xsl:template>\n</xsl:stylesheet>'
    )


@pytest.fixture
async def pool() -> AsyncIterator[TransformPool]:
    async with TransformPool(workers=2) as opened:
        yield opened


async def test_xslt_1_runs_on_lxml_with_the_three_parameters(pool: TransformPool) -> None:
    stylesheet = sheet(
        "1.0",
        '<out from="{$SENDER_MAILBOX}" template="{$TEMPLATE_UUID}" v="{$TEMPLATE_VERSION}">'
        '<xsl:value-of select="count(/order/line)"/></out>',
        output='<xsl:output method="xml" encoding="UTF-8"/>',
    )
    result = await pool.run_transform(stylesheet, ORDER, PARAMETERS)
    root = etree.fromstring(result.content)
    assert root.attrib == {
        "from": "shop@example",
        "template": PARAMETERS["TEMPLATE_UUID"],
        "v": "3",
    }
    assert root.text == "3"
    assert (result.method, result.media_type) == ("xml", "application/xml")


async def test_xslt_2_groups_formats_dates_and_tokenizes_on_saxon(pool: TransformPool) -> None:
    stylesheet = sheet(
        "2.0",
        '<xsl:for-each-group select="/order/line" group-by="@sku">'
        "<xsl:value-of select=\"concat(current-grouping-key(), '=', sum(current-group()/@qty))\"/>"
        "<xsl:text>;</xsl:text></xsl:for-each-group>"
        "<xsl:value-of select=\"format-date(xs:date(/order/date), '[D01].[M01].[Y0001]')\"/>"
        "<xsl:text>;</xsl:text>"
        "<xsl:value-of select=\"string-join(reverse(tokenize(/order/tags, ' ')), ',')\"/>"
        "<xsl:text>;</xsl:text>"
        '<xsl:value-of select="$SENDER_MAILBOX, $TEMPLATE_VERSION" separator="|"/>',
        output='<xsl:output method="text"/>',
        extra_ns='xmlns:xs="http://www.w3.org/2001/XMLSchema"',
    )
    result = await pool.run_transform(stylesheet, ORDER, PARAMETERS)
    assert result.content == b"A=5;B=1;30.11.2026;blue,green,red;shop@example|3"
    assert (result.method, result.media_type) == ("text", "text/plain")


def test_typed_parameters_accept_the_strings_passed_in() -> None:
    stylesheet = (
        f'<xsl:stylesheet version="2.0" {XSL} xmlns:xs="http://www.w3.org/2001/XMLSchema">'
        '<xsl:output method="text"/><xsl:param name="TEMPLATE_VERSION" as="xs:integer"/>'
        '<xsl:param name="SENDER_MAILBOX" as="xs:string"/><xsl:template match="/">'
        '<xsl:value-of select="$TEMPLATE_VERSION + 1, $SENDER_MAILBOX"/></xsl:template>'
        "</xsl:stylesheet>"
    )
    result = transform(compile_stylesheet(stylesheet), b"<a/>", PARAMETERS, max_output=100)
    assert result.content == b"4 shop@example"


@pytest.mark.parametrize("version", ["1.0", "2.0", "3.0"])
def test_text_output_is_exactly_the_declared_encoding(version: str) -> None:
    stylesheet = sheet(
        version,
        '<xsl:text>UNB+UNOC:3+Привет\'</xsl:text><xsl:value-of select="$SENDER_MAILBOX"/>',
        output='<xsl:output method="text" encoding="ISO-8859-5"/>',
    )
    result = transform(
        compile_stylesheet(stylesheet), b"<a/>", {"SENDER_MAILBOX": "Ящик"}, max_output=1000
    )
    assert result.content == "UNB+UNOC:3+Привет'Ящик".encode("iso-8859-5")
    assert result.encoding == "ISO-8859-5"


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_xml_output_declares_its_encoding(version: str) -> None:
    stylesheet = sheet(
        version,
        "<doc>Привет</doc>",
        output='<xsl:output method="xml" encoding="ISO-8859-5"/>',
    )
    result = transform(compile_stylesheet(stylesheet), b"<a/>", {}, max_output=1000)
    assert result.content.startswith(b"<?xml version")
    assert b'encoding="ISO-8859-5"' in result.content.split(b"?>")[0]
    assert "<doc>Привет</doc>".encode("iso-8859-5") in result.content


REFUSED = {
    "xsl:include": '</xsl:template><xsl:include href="other.xsl"/><xsl:template name="x">',
    "xsl:import": '</xsl:template><xsl:import href="file:///etc/passwd"/><xsl:template name="x">',
    "document()": "<xsl:copy-of select=\"document('file:///etc/passwd')\"/>",
    "doc()": "<xsl:copy-of select=\"doc('file:///etc/hostname')\"/>",
    "doc-available()": "<xsl:value-of select=\"doc-available('http://example.com/')\"/>",
    "unparsed-text()": "<xsl:value-of select=\"unparsed-text('/etc/hostname')\"/>",
    "unparsed-text-available()": "<xsl:value-of select=\"unparsed-text-available('/x')\"/>",
    "collection()": "<xsl:value-of select=\"count(collection('file:///etc/'))\"/>",
    "xsl:result-document": '<xsl:result-document href="/tmp/x"><a/></xsl:result-document>',
    "environment-variable()": "<xsl:value-of select=\"environment-variable('HOME')\"/>",
    "function-lookup()": "<xsl:value-of select=\"function-lookup(xs:QName('fn:doc'), 1)\"/>",
}


@pytest.mark.parametrize("version", ["1.0", "2.0"])
@pytest.mark.parametrize("construct", sorted(REFUSED))
def test_each_construct_reaching_outside_is_refused_with_its_line(
    construct: str, version: str
) -> None:
    stylesheet = sheet(version, "\n" + REFUSED[construct])
    with pytest.raises(XsltRefused) as caught:
        compile_stylesheet(stylesheet)
    assert caught.value.line == 4
    assert construct in caught.value.title
    assert "line 4" in caught.value.title


@pytest.mark.parametrize(
    "expression",
    [
        "fn:doc('x')",
        "Q{http://www.w3.org/2005/xpath-functions}doc('x')",
        "doc#1('x')",
        "doc ('x')",
        "{document('x')}",
    ],
)
def test_prefixed_and_referenced_forms_are_refused(expression: str) -> None:
    body = (
        f'<out a="{{{expression}}}"/>'
        if not expression.startswith("{")
        else (f'<out a="{expression}"/>')
    )
    stylesheet = sheet("3.0", body, extra_ns='xmlns:fn="http://www.w3.org/2005/xpath-functions"')
    with pytest.raises(XsltRefused):
        compile_stylesheet(stylesheet)


def test_extension_functions_that_evaluate_or_reach_outside_are_refused() -> None:
    stylesheet = sheet(
        "1.0",
        "\n<xsl:value-of select=\"dyn:evaluate(concat('docu', 'ment(1)'))\"/>",
        extra_ns='xmlns:dyn="http://exslt.org/dynamic"',
    )
    with pytest.raises(XsltRefused, match=r"dyn:evaluate\(\) \(line 4\)"):
        compile_stylesheet(stylesheet)


def test_shadow_attributes_are_refused() -> None:
    body = "\n<xsl:value-of _select=\"{'do' || 'c'}('file:///etc/hostname')\"/>"
    with pytest.raises(XsltRefused, match=r"shadow attribute _select \(line 4\)"):
        compile_stylesheet(sheet("3.0", body))


async def test_parse_xml_reads_no_file_through_a_doctype(pool: TransformPool) -> None:
    entity = '<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/hostname">]><a>&e;</a>'
    escaped = entity.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    stylesheet = sheet("3.0", f"\n<xsl:value-of select=\"parse-xml('{escaped}')\"/>")
    with pytest.raises(XsltRuntimeError, match="DOCTYPE is disallowed") as caught:
        await pool.run_transform(stylesheet, b"<a/>", PARAMETERS)
    assert caught.value.line == 4
    plain = sheet("3.0", "<xsl:value-of select=\"parse-xml('&lt;a&gt;x&lt;/a&gt;')\"/>")
    assert (await pool.run_transform(plain, b"<a/>", PARAMETERS)).content.endswith(b"x")


def test_names_that_only_look_alike_are_allowed() -> None:
    stylesheet = sheet(
        "2.0",
        '<xsl:value-of select="count(/doc/document), my:doc(1)"/>',
        extra_ns='xmlns:my="urn:my"',
    ).replace(
        "</xsl:stylesheet>",
        '<xsl:function name="my:doc"><xsl:param name="n"/><xsl:sequence select="$n"/>'
        "</xsl:function></xsl:stylesheet>",
    )
    result = transform(compile_stylesheet(stylesheet), b"<doc/>", {}, max_output=100)
    assert result.content.endswith(b"0 1")


def test_a_stylesheet_with_a_doctype_is_refused() -> None:
    stylesheet = '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n' + sheet("1.0", "&e;")
    with pytest.raises(XsltRefused, match="DOCTYPE"):
        compile_stylesheet(stylesheet)


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_entities_in_the_source_are_not_expanded(version: str) -> None:
    source = b'<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>'
    compiled = compile_stylesheet(sheet(version, '<xsl:value-of select="/a"/>'))
    with pytest.raises(XsltRuntimeError, match="entity"):
        transform(compiled, source, {}, max_output=1000)


@pytest.mark.parametrize("version", ["1.0", "2.0"])
async def test_a_compile_error_names_its_line(pool: TransformPool, version: str) -> None:
    stylesheet = sheet(version, '\n\n<xsl:value-of select="1 +"/>')
    with pytest.raises(XsltCompileError) as caught:
        await pool.run_transform(stylesheet, b"<a/>", PARAMETERS)
    assert caught.value.line == 5
    assert "line 5" in str(caught.value)


@pytest.mark.parametrize("version", ["1.0", "2.0"])
async def test_xsl_message_terminate_is_a_clear_error(pool: TransformPool, version: str) -> None:
    stylesheet = sheet(version, '<xsl:message terminate="yes">No buyer in the order</xsl:message>')
    with pytest.raises(XsltRuntimeError, match="No buyer in the order"):
        await pool.run_transform(stylesheet, b"<a/>", PARAMETERS)


async def test_a_dynamic_error_names_its_line(pool: TransformPool) -> None:
    stylesheet = sheet("2.0", '\n<xsl:value-of select="1 idiv count(/none)"/>')
    with pytest.raises(XsltRuntimeError) as caught:
        await pool.run_transform(stylesheet, b"<a/>", PARAMETERS)
    assert caught.value.line == 4
    assert "division by zero" in str(caught.value)
    assert "file:" not in str(caught.value)


RUNAWAY = {
    # Saxon turns tail recursion into a loop: this never ends (nor overflows).
    "2.0": sheet(
        "2.0",
        '<xsl:value-of select="f:spin(1)"/>',
        extra_ns='xmlns:f="urn:f"',
    ).replace(
        "</xsl:stylesheet>",
        '<xsl:function name="f:spin"><xsl:param name="n"/>'
        '<xsl:sequence select="if ($n lt 0) then 0 else f:spin($n + 1)"/></xsl:function>'
        "</xsl:stylesheet>",
    ),
    # libxslt stops deep recursion, so fan out instead: 2^40 calls.
    "1.0": sheet(
        "1.0",
        '<xsl:call-template name="fan"><xsl:with-param name="d" select="40"/></xsl:call-template>',
    ).replace(
        "</xsl:stylesheet>",
        '<xsl:template name="fan"><xsl:param name="d"/><xsl:if test="$d &gt; 0">'
        '<xsl:call-template name="fan"><xsl:with-param name="d" select="$d - 1"/>'
        '</xsl:call-template><xsl:call-template name="fan">'
        '<xsl:with-param name="d" select="$d - 1"/></xsl:call-template></xsl:if></xsl:template>'
        "</xsl:stylesheet>",
    ),
}


@pytest.mark.parametrize("version", ["1.0", "2.0"])
async def test_a_runaway_is_stopped_while_others_complete_and_its_worker_is_replaced(
    pool: TransformPool, version: str
) -> None:
    quick = sheet("1.0", "<ok/>")
    # Both workers up first, so that the race below measures transforms, not process starts.
    await asyncio.gather(*(pool.run_transform(quick, b"<a/>", PARAMETERS) for _ in range(2)))
    runaway = asyncio.create_task(
        pool.run_transform(RUNAWAY[version], b"<a/>", PARAMETERS, time_limit=1.0)
    )
    other = asyncio.create_task(pool.run_transform(quick, b"<a/>", PARAMETERS))
    done, _ = await asyncio.wait({runaway, other}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {other}, "the other slot kept serving while the runaway spun"
    assert b"<ok/>" in other.result().content
    with pytest.raises(XsltTimeLimit, match="longer than 1 s"):
        await runaway
    started = pool.started
    # Both slots are usable again: two transforms at once need a fresh process for the killed one.
    results = await asyncio.gather(
        *(pool.run_transform(quick, b"<a/>", PARAMETERS) for _ in range(2))
    )
    assert all(b"<ok/>" in result.content for result in results)
    assert pool.started == started + 1


@pytest.mark.parametrize("version", ["1.0", "2.0"])
async def test_output_is_capped(pool: TransformPool, version: str) -> None:
    stylesheet = sheet(
        version,
        '<xsl:for-each select="(//node())[1]"><xsl:call-template name="many"/></xsl:for-each>',
        output='<xsl:output method="text"/>',
    ).replace(
        "</xsl:stylesheet>",
        '<xsl:template name="many"><xsl:param name="n" select="200"/>'
        '<xsl:if test="$n &gt; 0"><xsl:value-of select="$TEMPLATE_UUID"/>'
        '<xsl:call-template name="many"><xsl:with-param name="n" select="$n - 1"/>'
        "</xsl:call-template></xsl:if></xsl:template></xsl:stylesheet>",
    )
    with pytest.raises(XsltOutputTooLarge, match="more than 1,000 bytes"):
        await pool.run_transform(stylesheet, b"<a/>", PARAMETERS, max_output=1000)
    result = await pool.run_transform(stylesheet, b"<a/>", PARAMETERS, max_output=100_000)
    assert len(result.content) == 200 * 36


async def test_a_worker_that_runs_out_of_memory_is_replaced() -> None:
    bomb = sheet(
        "3.0",
        "<xsl:value-of select=\"string-length(string-join((1 to 100000000) ! 'xxxxxxxxxxxx'))\"/>",
    )
    async with TransformPool(workers=1, max_memory=300 * 1024 * 1024) as pool:
        with pytest.raises(XsltRuntimeError, match="ended unexpectedly"):
            await pool.run_transform(bomb, b"<a/>", PARAMETERS)
        result = await pool.run_transform(sheet("2.0", "<ok/>"), b"<a/>", PARAMETERS)
        assert b"<ok/>" in result.content
        assert pool.started == 2


def test_a_worker_compiles_each_stylesheet_revision_once() -> None:
    cache: OrderedDict[str, CompiledStylesheet] = OrderedDict()
    first = sheet("2.0", "<one/>")
    second = sheet("2.0", "<two/>")
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    replies = [
        run_job((text, b"<a/>", PARAMETERS, 100_000), cache, hard)
        for text in (first, second, first)
    ]
    assert [reply[0] for reply in replies] == ["ok", "ok", "ok"]
    assert list(cache) == [stylesheet_key(second), stylesheet_key(first)]
    compiled = cache[stylesheet_key(first)]
    run_job((first, b"<a/>", PARAMETERS, 100_000), cache, hard)
    assert cache[stylesheet_key(first)] is compiled


async def test_a_cancelled_transform_frees_its_slot_and_close_ends_every_worker() -> None:
    quick = sheet("1.0", "<ok/>")
    async with TransformPool(workers=2) as pool:
        runaway = asyncio.create_task(
            pool.run_transform(RUNAWAY["2.0"], b"<a/>", PARAMETERS, time_limit=60)
        )
        await pool.run_transform(quick, b"<a/>", PARAMETERS)
        runaway.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runaway
        results = await asyncio.gather(
            *(pool.run_transform(quick, b"<a/>", PARAMETERS) for _ in range(2))
        )
        assert all(b"<ok/>" in result.content for result in results)
        busy = asyncio.create_task(
            pool.run_transform(RUNAWAY["2.0"], b"<a/>", PARAMETERS, time_limit=60)
        )
        await pool.run_transform(quick, b"<a/>", PARAMETERS)
    # Closing killed the busy worker: its caller hears of it at once, not after 60 s.
    with pytest.raises(XsltRuntimeError, match="ended unexpectedly"):
        await busy
    names = [child.name for child in multiprocessing.active_children()]
    assert "docbridge-xslt" not in names


def test_lxml_reads_no_file_even_past_the_static_check() -> None:
    """The second line of defence: libxslt's access control, should the static check miss."""
    text = sheet("1.0", "\n<xsl:value-of select=\"document('file:///etc/hostname')\"/>")
    engine = xslt._compile_lxml(parse_stylesheet(text))
    with pytest.raises(XsltRuntimeError, match="read rights for file:///etc/hostname denied"):
        xslt._transform_lxml(engine, parse_source(b"<a/>"), {})
