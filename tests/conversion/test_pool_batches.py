"""Batches of transforms (``TransformPool.run_transforms``): one outcome per item, in order, and
each item fails alone — a compile error, a dynamic error, an output over the cap, a runaway.
Also how the IN path reads the stored envelopes it batches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from core.conversion import (
    TransformPool,
    XsltCompileError,
    XsltOutput,
    XsltOutputTooLarge,
    XsltRuntimeError,
    XsltTimeLimit,
)
from core.conversion import pool as pool_module
from core.conversion.pool import BATCH_ITEMS, RAW_SOURCE_BYTES, TransformItem, _chunks
from core.demo import demo_envelope_files
from core.envelope_xml import parse_envelope_xml, parse_stored_envelope_xml
from core.errors import InvalidInput
from tests.conversion.test_xslt import PARAMETERS, RUNAWAY, sheet

# Each item says which way it goes: <n/> echoes n, <fail/> stops with a dynamic error,
# <loop/> spins forever, <big/> writes more than a small cap.
STEERED = sheet(
    "3.0",
    '<xsl:choose><xsl:when test="/fail"><xsl:message terminate="yes">no</xsl:message></xsl:when>'
    '<xsl:when test="/loop"><xsl:call-template name="spin"/></xsl:when>'
    '<xsl:when test="/big"><xsl:value-of select="string-join((1 to 1000) ! \'xxxxxxxxxx\')"/>'
    '</xsl:when><xsl:otherwise><out n="{name(/*)}" from="{$SENDER_MAILBOX}"/></xsl:otherwise>'
    "</xsl:choose>",
).replace(
    "</xsl:stylesheet>",
    '<xsl:template name="spin"><xsl:param name="d" select="0"/>'
    '<xsl:call-template name="spin"><xsl:with-param name="d" select="$d + 1"/>'
    "</xsl:call-template></xsl:template></xsl:stylesheet>",
)


async def until(condition: Callable[[], bool], within_s: float = 30.0) -> None:
    """Until ``condition()`` holds (AssertionError after ``within_s``): no fixed pause."""
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def item(name: str, **parameters: str) -> TransformItem:
    return TransformItem(f"<{name}/>".encode(), dict(PARAMETERS, **parameters))


def echoed(outcome: XsltOutput | Exception) -> str:
    assert isinstance(outcome, XsltOutput), outcome
    return outcome.content.decode()


@pytest.fixture
async def pool() -> AsyncIterator[TransformPool]:
    async with TransformPool(workers=2) as opened:
        yield opened


async def test_outcomes_come_in_order_with_each_items_parameters(pool: TransformPool) -> None:
    items = [item(f"n{i}", SENDER_MAILBOX=f"s{i}") for i in range(50)]
    outcomes = await pool.run_transforms(STEERED, items)
    assert [f'<out n="n{i}" from="s{i}"/>' in echoed(o) for i, o in enumerate(outcomes)] == [
        True
    ] * 50
    assert await pool.run_transforms(STEERED, []) == []


async def test_one_items_error_does_not_fail_the_others(pool: TransformPool) -> None:
    items = [item("a"), item("fail"), item("b"), item("big"), item("c")]
    outcomes = await pool.run_transforms(STEERED, items, max_output=2000)
    assert 'n="a"' in echoed(outcomes[0])
    assert isinstance(outcomes[1], XsltRuntimeError)
    assert "no" in str(outcomes[1])
    assert 'n="b"' in echoed(outcomes[2])
    assert isinstance(outcomes[3], XsltOutputTooLarge)
    assert "more than 2,000 bytes" in str(outcomes[3])
    assert 'n="c"' in echoed(outcomes[4])
    # the cap is per item: the same item fits under a larger one
    (fits,) = await pool.run_transforms(STEERED, [item("big")], max_output=20_000)
    assert echoed(fits).count("x" * 10) == 1000
    assert pool.started <= 2, "no worker was lost to an error the map reported itself"


async def test_a_compile_error_is_every_items_outcome(pool: TransformPool) -> None:
    outcomes = await pool.run_transforms(
        sheet("1.0", '<xsl:value-of select="1 +"/>'), [item("a")] * 3
    )
    assert all(isinstance(o, XsltCompileError) for o in outcomes)


async def test_a_runaway_fails_alone_and_its_worker_is_replaced() -> None:
    async with TransformPool(workers=1) as pool:
        items = [item("a"), item("loop"), item("b"), item("c")]
        began = time.monotonic()
        outcomes = await pool.run_transforms(STEERED, items, time_limit=1.0)
        # one time limit, not one per item left behind the runaway
        assert time.monotonic() - began < 10
        assert 'n="a"' in echoed(outcomes[0])
        assert isinstance(outcomes[1], XsltTimeLimit)
        assert "longer than 1 s" in str(outcomes[1])
        # the items after it ran in a fresh process, not failed with the runaway
        assert ['n="b"' in echoed(outcomes[2]), 'n="c"' in echoed(outcomes[3])] == [True, True]
        assert pool.started == 2
        (again,) = await pool.run_transforms(STEERED, [item("d")])
        assert 'n="d"' in echoed(again)
        assert pool.started == 2


async def test_a_worker_ending_mid_batch_fails_only_its_item() -> None:
    bomb = sheet(
        "3.0",
        '<xsl:choose><xsl:when test="/bomb"><xsl:value-of select="string-length(string-join('
        "(1 to 100000000) ! 'xxxxxxxxxxxx'))\"/></xsl:when><xsl:otherwise><ok/></xsl:otherwise>"
        "</xsl:choose>",
    )
    async with TransformPool(workers=1, max_memory=300 * 1024 * 1024) as pool:
        outcomes = await pool.run_transforms(bomb, [item("a"), item("bomb"), item("b")])
        assert isinstance(outcomes[1], XsltRuntimeError)
        assert "ended unexpectedly" in str(outcomes[1])
        assert [b"<ok/>" in o.content for o in outcomes if isinstance(o, XsltOutput)] == [
            True,
            True,
        ]


async def test_a_single_transform_is_not_held_up_by_a_large_batch(
    pool: TransformPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch holds a slot per message, not for all its items: a transform queued behind a
    long batch runs after one message, long before the batch ends."""
    slow = sheet(
        "1.0",
        '<xsl:call-template name="count"/>',
    ).replace(
        "</xsl:stylesheet>",
        '<xsl:template name="count"><xsl:param name="n" select="1000"/>'
        '<xsl:if test="$n &gt; 0"><xsl:call-template name="count">'
        '<xsl:with-param name="n" select="$n - 1"/></xsl:call-template></xsl:if>'
        "</xsl:template></xsl:stylesheet>",
    )
    quick = sheet("1.0", "<ok/>")
    await asyncio.gather(*(pool.run_transform(quick, b"<a/>", PARAMETERS) for _ in range(2)))
    # how long one full message per worker takes
    await pool.run_transforms(slow, [item("a")] * 2)
    began = time.monotonic()
    await pool.run_transforms(slow, [item("a")] * (BATCH_ITEMS * 2))
    message = time.monotonic() - began
    batch = asyncio.create_task(pool.run_transforms(slow, [item("a")] * (BATCH_ITEMS * 20)))
    await until(lambda: pool.busy == pool.size)  # the batch holds both slots now
    began = time.monotonic()
    single = await pool.run_transform(quick, b"<a/>", PARAMETERS)
    waited = time.monotonic() - began
    assert b"<ok/>" in single.content
    assert not batch.done(), "the batch ran too fast to show anything"
    assert waited < message * 4, (waited, message)
    assert all(isinstance(o, XsltOutput) for o in await batch)


def test_chunks_spread_over_workers_and_respect_the_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    small = [TransformItem(b"x" * 100, {}) for _ in range(100)]
    chunks = _chunks(small, list(range(100)), 2)
    assert [len(c) for c in chunks] == [BATCH_ITEMS] * 6 + [4]
    assert [i for c in chunks for i in c] == list(range(100))
    assert [len(c) for c in _chunks(small, list(range(4)), 2)] == [2, 2]
    monkeypatch.setattr(pool_module, "BATCH_BYTES", 250)
    assert [len(c) for c in _chunks(small, list(range(5)), 1)] == [2, 2, 1]


async def test_a_large_source_goes_on_its_own(pool: TransformPool) -> None:
    large = TransformItem(b"<big>" + b"x" * RAW_SOURCE_BYTES + b"</big>", PARAMETERS)
    count = sheet("1.0", '<n><xsl:value-of select="string-length(/big)"/></n>')
    outcomes = await pool.run_transforms(count, [item("a"), large, item("b")])
    assert [echoed(o).rsplit("?>", 1)[-1].strip() for o in outcomes] == [
        "<n>0</n>",
        f"<n>{RAW_SOURCE_BYTES}</n>",
        "<n>0</n>",
    ]


async def test_a_cancelled_batch_frees_its_slots(pool: TransformPool) -> None:
    batch = asyncio.create_task(pool.run_transforms(RUNAWAY["2.0"], [item("a")] * 4, time_limit=60))
    await until(lambda: pool.busy > 0)  # running: its workers hold slots
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    results = await asyncio.wait_for(
        pool.run_transforms(sheet("1.0", "<ok/>"), [item("a")] * 4), 30
    )
    assert all(b"<ok/>" in echoed(o).encode() for o in results)


# --- what the IN path batches: stored envelopes, read without a second schema check ----------


@pytest.mark.parametrize("path", demo_envelope_files(), ids=lambda p: p.name)
def test_a_stored_envelope_reads_as_the_full_parse_does(path: Path) -> None:
    data = path.read_bytes()
    full = parse_envelope_xml(data)
    stored = parse_stored_envelope_xml(data)
    assert (stored.template_uuid, stored.template_version, stored.uuid, stored.sender) == (
        full.template_uuid,
        full.template_version,
        full.uuid,
        full.role_mailbox("sender"),
    )
    for document in full.documents:
        for field in document.fields:
            assert stored.field_value(document.id, field.name) == document.field_value(field.name)
        assert stored.field_value(document.id, "no such field") is None
    assert stored.field_value("no such document", "orderNumber") is None


def test_a_damaged_stored_envelope_is_an_input_error_and_entities_stay_unread() -> None:
    with pytest.raises(InvalidInput, match="damaged"):
        parse_stored_envelope_xml(b'<order templateUuid="x" templateVersion="1"/>')
    with pytest.raises(InvalidInput, match="damaged"):
        parse_stored_envelope_xml(b'<envelope templateUuid="x" templateVersion="one"/>')
    with pytest.raises(InvalidInput, match="not well-formed"):
        parse_stored_envelope_xml(b"<envelope")
    sneaky = (
        b'<!DOCTYPE envelope [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
        b'<envelope templateUuid="A" templateVersion="1"><documents><document id="d">'
        b'<field name="f">&x;</field></document></documents></envelope>'
    )
    assert parse_stored_envelope_xml(sneaky).field_value("d", "f") == ""
