"""Naming patterns of IN rules (SPEC §7): the file names a user sees in cinbox/."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from core.envelope_xml import (
    EnvelopeDocument,
    EnvelopeField,
    EnvelopeFieldgroup,
    EnvelopeFieldset,
    EnvelopeXml,
)
from core.naming import (
    NamingContext,
    NamingPatternError,
    format_date,
    name_with_conversion_time,
    render_file_name,
)

MAILBOX = "0dbfa4db-e126-445e-a164-dac5593117c1"
ENVELOPE = "5f1c2a9e-8d7b-4c3a-9e21-77a0b1c2d3e4"
TEMPLATE = "9631509a-3c58-465e-a541-d79151dedc11"
RECEIVED = "2026-11-30T07:05:09.042Z"


def order_envelope(**fields: str) -> EnvelopeXml:
    """An order with top-level fields and one table row holding ``lineNote``."""
    table = EnvelopeFieldgroup(
        "lines", (EnvelopeFieldset(1, (EnvelopeField("lineNote", "in a table"),)),)
    )
    document = EnvelopeDocument(
        "order", tuple(EnvelopeField(k, v) for k, v in fields.items()), (table,)
    )
    return EnvelopeXml(TEMPLATE, 1, ENVELOPE, "Order", "", (), (document,))


def context(**fields: str) -> NamingContext:
    return NamingContext.for_envelope(
        order_envelope(**fields), mailbox_uuid=MAILBOX, received_at=RECEIVED
    )


def test_the_uuid_variables_name_the_mailbox_envelope_and_template() -> None:
    name = render_file_name("{mailboxUuid}_{envelopeUuid}_{templateUuid}.xml", context())
    assert name == f"{MAILBOX}_{ENVELOPE}_{TEMPLATE}.xml"


def test_random_number_is_eight_digits_and_differs_between_files() -> None:
    names = {render_file_name("order-{randomNumber}.xml", context()) for _ in range(20)}
    assert all(re.fullmatch(r"order-\d{8}\.xml", name) for name in names)
    assert len(names) > 1


def test_random_number_is_the_same_everywhere_in_one_name() -> None:
    name = render_file_name("{randomNumber}-{randomNumber}", context())
    first, second = name.split("-")
    assert first == second


@pytest.mark.parametrize(
    ("date_format", "expected"),
    [
        ("DDMMYYYY", "30112026"),
        ("DD.MM.YY", "30.11.26"),
        ("yyyy-MM-dd_HH-mm-ss", "2026-11-30_07-05-09"),
        ("yyyyMMdd HHmmss.SSS", "20261130 070509.042"),
        ("hh mm", "07 05"),
    ],
)
def test_both_date_styles_show_the_receive_date(date_format: str, expected: str) -> None:
    assert render_file_name(f"{{date {date_format}}}.csv", context()) == f"{expected}.csv"


def test_mm_is_the_month_and_lower_mm_the_minutes() -> None:
    when = datetime(2026, 3, 4, 15, 42, 7, tzinfo=UTC)
    assert format_date(when, "MM") == "03"
    assert format_date(when, "mm") == "42"
    assert format_date(when, "hh") == "03"  # 12-hour clock
    assert format_date(when, "HH") == "15"


def test_the_receive_date_may_be_a_datetime() -> None:
    ctx = NamingContext(
        MAILBOX, ENVELOPE, TEMPLATE, datetime(2026, 1, 2, 3, 4, 5), lambda _d, _f: None
    )
    assert render_file_name("{date yyyy-MM-dd_HH-mm-ss}", ctx) == "2026-01-02_03-04-05"


def test_a_field_value_goes_into_the_name() -> None:
    ctx = context(orderNumber="PO-4711", buyer="ACME")
    assert render_file_name('{"order":"orderNumber"}_{"order":"buyer"}.xml', ctx) == (
        "PO-4711_ACME.xml"
    )


def test_an_empty_optional_field_is_an_empty_string() -> None:
    ctx = context(orderNumber="PO-4711", buyerReference="")
    name = render_file_name('{"order":"orderNumber"}{"order":"buyerReference"}.xml', ctx)
    assert name == "PO-4711.xml"


def test_an_absent_field_or_document_is_empty_too() -> None:
    ctx = context(orderNumber="PO-4711")
    pattern = '{"order":"orderNumber"}{"order":"missing"}{"invoice":"orderNumber"}.xml'
    assert render_file_name(pattern, ctx) == "PO-4711.xml"


def test_fields_inside_tables_are_not_reached() -> None:
    assert render_file_name('{"order":"lineNote"}.xml', context()) == "filename_empty.xml"


@pytest.mark.parametrize("value", ["", "   ", "\n"])
def test_nothing_filled_gives_filename_empty_with_the_extension(value: str) -> None:
    ctx = context(buyerReference=value)
    assert render_file_name('{"order":"buyerReference"}.xml', ctx) == "filename_empty.xml"
    assert render_file_name('{"order":"buyerReference"}', ctx) == "filename_empty"
    assert render_file_name('{"order":"buyerReference"}_.xml', ctx) == "filename_empty.xml"


def test_a_name_of_literals_only_is_kept() -> None:
    assert render_file_name("orders.xml", context()) == "orders.xml"


def test_a_name_that_would_be_only_dots_is_filename_empty() -> None:
    assert render_file_name('{"order":"ref"}.xml', context(ref="..")) == "filename_empty.xml"


def test_forbidden_characters_in_the_pattern_are_refused() -> None:
    with pytest.raises(NamingPatternError, match="'/' at position 4"):
        render_file_name("out/{envelopeUuid}.xml", context())


def test_forbidden_and_control_characters_in_field_values_become_underscores() -> None:
    ctx = context(ref='a\\b/c:d?e*f<g>h|i"j\tk\x00l', path="../../etc/passwd")
    assert render_file_name('{"order":"ref"}.xml', ctx) == 'a_b_c_d_e_f_g_h_i"j_k_l.xml'
    assert render_file_name('{"order":"path"}.xml', ctx) == ".._.._etc_passwd.xml"


def test_field_values_are_trimmed() -> None:
    assert render_file_name('{"order":"ref"}.xml', context(ref="  PO 1 \n")) == "PO 1.xml"


def test_an_over_long_name_is_cut_to_255_bytes_keeping_the_extension() -> None:
    ctx = context(note="ż" * 300)  # two bytes each
    name = render_file_name('{"order":"note"}.xml', ctx)
    assert name.endswith("ż.xml")
    assert len(name.encode("utf-8")) <= 255
    assert len(name.encode("utf-8")) >= 253


def test_a_clash_appends_the_conversion_time_before_the_extension() -> None:
    when = datetime(2026, 11, 30, 12, 45, 1)
    assert name_with_conversion_time("order.xml", when) == "order_20261130-124501.xml"
    assert name_with_conversion_time("order.v2.xml", when) == "order.v2_20261130-124501.xml"
    assert name_with_conversion_time("README", when) == "README_20261130-124501"
    assert name_with_conversion_time("order.xml", when, attempt=2) == (
        "order_20261130-124501-2.xml"
    )


def test_a_clash_name_stays_within_255_bytes() -> None:
    long_name = "a" * 251 + ".xml"
    renamed = name_with_conversion_time(long_name, datetime(2026, 11, 30, 12, 45, 1))
    assert renamed.endswith("_20261130-124501.xml")
    assert len(renamed.encode("utf-8")) == 255


@pytest.mark.parametrize(
    "pattern",
    ["{unknown}.xml", "{date QQ}", '{"order"}', "{envelopeUuid", "a}b"],
)
def test_a_broken_pattern_is_refused_before_any_name_is_made(pattern: str) -> None:
    with pytest.raises(NamingPatternError):
        render_file_name(pattern, context())
