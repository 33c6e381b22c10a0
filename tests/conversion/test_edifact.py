"""The EDIFACT / EANCOM view of sources: real EANCOM samples, separators, encodings, broken files,
and a DESADV written by an IN-rule stylesheet in ISO-8859-5 that reads back through the view."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from core.conversion import compile_stylesheet, transform
from core.conversion.sources import SourceKind, source_view
from core.errors import InvalidInput

SAMPLES = Path(__file__).parent / "samples" / "edifact"


def view_of(data: bytes, name: str = "interchange.edi") -> etree._Element:
    view = source_view(data, name)
    assert view.kind is SourceKind.EDIFACT
    return etree.fromstring(view.xml)


def texts(root: etree._Element, path: str) -> list[str]:
    """The text of each element ``path`` selects."""
    return [element.text or "" for element in root.xpath(path)]


def error_of(data: bytes, name: str = "interchange.edi") -> str:
    with pytest.raises(InvalidInput) as caught:
        source_view(data, name)
    return caught.value.title


# --- real EANCOM samples ----------------------------------------------------------------------


def test_eancom_orders_d96a_has_the_directory_group_numbers() -> None:
    data = (SAMPLES / "orders-d96a-eancom.edi").read_bytes()
    view = source_view(data, "order.txt")  # recognised by content, whatever the name
    root = etree.fromstring(view.xml)
    assert view.kind is SourceKind.EDIFACT
    assert view.details == (
        'EANCOM, syntax UNOA version 4, encoding ASCII, UNA separators ":+,? \'", '
        "1 message: ORDERS D96A"
    )
    assert root.tag == "EANCOM"
    assert [child.tag for child in root] == ["UNB", "ORDERS", "UNZ"]
    order = root.find("ORDERS")
    assert order is not None
    assert texts(order, "BGM/BGM02/BGM0201") == ["801715918011"]
    assert texts(order, "../UNB/UNB03/UNB0301") == ["WBDZDD"]
    # D.96A ORDERS: SG1 = RFF-DTM, SG2 = NAD-..., SG25 = LIN-..., SG29 = RFF-DTM inside SG25.
    assert texts(order, "GROUP_1/RFF/RFF01/RFF0102") == ["50515"]
    assert texts(order, "GROUP_2/NAD/NAD01/NAD0101") == ["SU", "BY", "DP"]
    assert texts(order, "GROUP_2/NAD/NAD02/NAD0203") == ["9", "9", "9"]
    assert texts(order, "GROUP_25/LIN/LIN03/LIN0301") == ["5020436373085", "5020436373108"]
    assert texts(order, "GROUP_25/QTY/QTY01/QTY0102") == ["8", "8"]
    assert texts(order, "GROUP_25/GROUP_29/RFF/RFF01/RFF0102") == ["99", "99"]
    assert [child.tag for child in order] == (
        ["UNH", "BGM", "DTM", "DTM", "GROUP_1"]
        + ["GROUP_2"] * 3
        + ["GROUP_25"] * 2
        + ["UNS", "UNT"]
    )


def test_eancom_orders_d01b_numbers_its_groups_by_the_d01b_directory() -> None:
    root = view_of((SAMPLES / "orders-d01b-eancom.edi").read_bytes())
    assert root.tag == "EANCOM"
    first, second = root.findall("ORDERS")
    # D.01B renumbered the detail section: LIN is SG28 (SG25 in D.96A); CUX is SG7 in both.
    assert texts(first, "GROUP_28/LIN/LIN03/LIN0301") == ["4000862141404"]
    assert texts(first, "GROUP_28/QTY/QTY01/QTY0102") == ["48"]
    assert first.find("GROUP_25") is None
    assert texts(first, "GROUP_7/CUX/CUX01/CUX0102") == ["EUR"]
    assert texts(first, "GROUP_1/RFF/RFF01/RFF0101") == ["CT", "PL"]
    assert texts(second, "GROUP_1/RFF/RFF01/RFF0101") == ["CT", "PL", "VN"]
    assert texts(second, "GROUP_2/NAD/NAD02/NAD0201") == ["5412345000013", "4012345500004"]
    assert texts(first, "BGM/BGM01/BGM0101") == ["22E"]
    assert texts(second, "UNT/UNT01/UNT0101") == ["15"]


def test_a_release_without_a_directory_table_is_flat() -> None:
    view = source_view((SAMPLES / "invoic-d97a.edi").read_bytes(), "invoice.edi")
    root = etree.fromstring(view.xml)
    assert root.tag == "EDIFACT"  # UNH has no EAN association code
    assert view.details.endswith("1 message: INVOIC D97A (flat)")
    invoice = root.find("INVOIC")
    assert invoice is not None
    assert not invoice.xpath("*[starts-with(name(), 'GROUP_')]")
    assert texts(invoice, "NAD/NAD02/NAD0201") == ["VAUXHALL MOTORS LTD", "2002993", "023"]
    assert texts(invoice, "PRI/PRI01/PRI0102") == ["3630.1724"]


def test_an_xslt_reads_the_view_as_on_the_platform() -> None:
    view = source_view((SAMPLES / "orders-d96a-eancom.edi").read_bytes(), "order.edi")
    stylesheet = compile_stylesheet(
        '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        '<xsl:output method="text"/>'
        '<xsl:template match="/"><xsl:for-each select="EANCOM/ORDERS/GROUP_25">'
        "<xsl:value-of select=\"concat(LIN/LIN03/LIN0301, '=', QTY/QTY01/QTY0102, ';')\"/>"
        "</xsl:for-each></xsl:template></xsl:stylesheet>"
    )
    output = transform(stylesheet, view.xml, {}, max_output=10_000)
    assert output.content == b"5020436373085=8;5020436373108=8;"


# --- syntax: separators, release character, encodings ----------------------------------------


def interchange(
    *segments: str, syntax: str = "UNOC:3", association: str = "", una: str = ""
) -> str:
    message = [f"UNH+1+ORDERS:D:96A:UN{association}'", *segments]
    message.append(f"UNT+{len(message) + 1}+1'")
    return "\n".join([una + f"UNB+{syntax}+SENDER+RECEIVER+240101:1200+R1'", *message, "UNZ+1+R1'"])


def test_plain_edifact_gets_the_edifact_root() -> None:
    root = view_of(interchange("BGM+220+PO1+9'").encode())
    assert root.tag == "EDIFACT"
    assert texts(root, "ORDERS/BGM/BGM02/BGM0201") == ["PO1"]


def test_una_sets_other_separators_and_the_release_character() -> None:
    # component >, element *, decimal ',', release !, terminator ~ ; the data holds all of them.
    text = (
        "UNA>*,! ~\r\n"
        "UNB*UNOC>3*SENDER*RECEIVER*240101>1200*R1~\r\n"
        "UNH*1*ORDERS>D>96A>UN>EAN008~BGM*220*A!*B!~C!!D!>E*9~\r\n"
        "FTX*AAI***first line>continued~UNT*4*1~UNZ*1*R1~"
    )
    view = source_view(text.encode(), "custom.edifact")
    root = etree.fromstring(view.xml)
    assert "UNA separators '>*,! ~'" in view.details
    assert texts(root, "ORDERS/BGM/BGM02/BGM0201") == ["A*B~C!D>E"]
    assert texts(root, "ORDERS/FTX/FTX04/FTX0402") == ["continued"]
    assert texts(root, "UNB/UNB01/UNB0102") == ["3"]


def test_the_default_release_character_keeps_markup_characters_as_text() -> None:
    root = view_of(interchange("FTX+AAI+++Smith ?& Sons <1?+1?:2?'s>'").encode())
    assert texts(root, "ORDERS/FTX/FTX04/FTX0401") == ["Smith & Sons <1+1:2's>"]


def test_unoe_is_read_as_iso_8859_5_cyrillic() -> None:
    text = interchange("FTX+AAI+++Доставка до склада №3'", syntax="UNOE:3")
    view = source_view(text.encode("iso8859-5"), "cyrillic.edi")
    assert "encoding ISO-8859-5" in view.details
    root = etree.fromstring(view.xml)
    assert texts(root, "ORDERS/FTX/FTX04/FTX0401") == ["Доставка до склада №3"]


def test_unow_is_read_as_utf_8() -> None:
    text = interchange("FTX+AAI+++Łódź – 東京'", syntax="UNOW:4")
    root = view_of(text.encode("utf-8"))
    assert texts(root, "ORDERS/FTX/FTX04/FTX0401") == ["Łódź – 東京"]


def test_a_byte_outside_the_declared_character_set_is_refused_with_its_offset() -> None:
    data = interchange("FTX+AAI+++Müller'", syntax="UNOA:3").encode("latin-1")
    message = error_of(data)
    offset = data.index("ü".encode("latin-1"))
    assert message == (
        f"EDIFACT source declares UNOA (ASCII) but byte 0xFC at byte {offset} (segment 3) is "
        "not in that character set"
    )


def test_an_unknown_syntax_identifier_is_refused() -> None:
    message = error_of(interchange("BGM+220+PO1+9'", syntax="IATB:1").encode())
    assert message.startswith("EDIFACT source has an unknown syntax identifier 'IATB' in UNB")


def test_functional_groups_sit_beside_the_messages_and_blanks_may_end_the_file() -> None:
    text = (
        "UNB+UNOC:3+SENDER+RECEIVER+240101:1200+R1'\r\n"
        "UNG+ORDERS+SENDER+RECEIVER+240101:1200+G1+UN+D:96A'\r\n"
        "UNH+1+ORDERS:D:96A:UN'BGM+220+PO1+9'UNT+3+1'\r\n"
        "UNE+1+G1'\r\nUNZ+1+R1'\r\n  \x1a"
    )
    root = view_of(text.encode())
    assert [child.tag for child in root] == ["UNB", "UNG", "ORDERS", "UNE", "UNZ"]


# --- segments the directory does not expect -------------------------------------------------


def test_a_segment_out_of_place_is_kept_where_it_stood_and_counted() -> None:
    text = interchange(
        "BGM+220+PO1+9'", "LIN+1++4000862141404:SRV'", "BGM+220+PO2+9'", "ZZZ+1'", "QTY+21:4'"
    )
    view = source_view(text.encode(), "odd.edi")
    root = etree.fromstring(view.xml)
    assert view.details.endswith(
        "; 2 segments outside the directory's structure kept where they stood"
    )
    line = root.find("ORDERS/GROUP_25")
    assert line is not None
    assert [child.tag for child in line] == ["LIN", "BGM", "ZZZ", "QTY"]


def test_a_csv_whose_first_cell_starts_with_una_or_unb_stays_a_csv() -> None:
    for text in (b"UNAVAILABLE;Qty\nPump;2\n", b"UNB,Qty\nPump,2\n"):
        assert source_view(text, "stock.csv").kind is SourceKind.CSV


# --- broken interchanges ----------------------------------------------------------------------


def test_a_file_cut_inside_a_segment_names_the_segment_and_byte() -> None:
    data = (SAMPLES / "orders-d96a-eancom.edi").read_bytes()
    cut = data.index(b"QTY+21:8") + 5
    message = error_of(data[:cut])
    start = data.index(b"QTY+21:8")
    assert message == (
        f"EDIFACT source ends inside segment 11 ('QTY', byte {start}): it has no segment "
        'terminator "\'"'
    )


def test_a_missing_trailer_is_refused() -> None:
    data = (SAMPLES / "orders-d96a-eancom.edi").read_bytes()
    message = error_of(data[: data.index(b"UNZ")])
    assert message == "EDIFACT source ends without the interchange trailer UNZ"


def test_a_message_without_unt_is_refused() -> None:
    data = (SAMPLES / "orders-d01b-eancom.edi").read_bytes()
    first_unt = data.index(b"UNT+14")
    broken = data[:first_unt] + data[data.index(b"\n", first_unt) + 1 :]
    message = error_of(broken)
    assert message.startswith("EDIFACT segment 15 (UNH), byte ")
    assert message.endswith("comes while message 'ME000001' (UNH at segment 2) has no UNT yet")


def test_a_unt_count_that_does_not_match_is_refused() -> None:
    data = (SAMPLES / "orders-d96a-eancom.edi").read_bytes().replace(b"UNT+16+1", b"UNT+17+1")
    message = error_of(data)
    assert message.startswith("EDIFACT segment 17 (UNT), byte ")
    assert message.endswith("says message '1' has 17 segments, but it has 16 (UNH at segment 2)")


def test_a_unz_count_that_does_not_match_is_refused() -> None:
    data = (SAMPLES / "orders-d01b-eancom.edi").read_bytes().replace(b"UNZ+2+", b"UNZ+3+")
    assert error_of(data).endswith("counts 3 messages, but the interchange has 2")


def test_binary_junk_after_the_header_is_refused_with_its_byte() -> None:
    data = b"UNB+UNOC:3+A+B+240101:1200+R1'\nUNH+1+ORDERS:D:96A:UN'\x00\x9c\xff\x01junk"
    message = error_of(data)
    assert message == (
        f"EDIFACT source contains binary data: a NUL byte at byte {data.index(0)} (segment 3)"
    )


def test_a_control_character_is_refused_with_its_segment() -> None:
    data = interchange("BGM+220+PO\x011+9'").encode()
    assert error_of(data).startswith(
        f"EDIFACT source holds a character XML cannot carry: U+0001 in segment 3, byte "
        f"{data.index(b'BGM')}"
    )


def test_a_file_named_edi_that_is_not_edifact_says_so() -> None:
    message = error_of(b"ISA*00*          *00*junk~", "order.edi")
    assert message == (
        "EDIFACT source does not start with an interchange header: expected UNB at byte 0, "
        "found 'ISA'"
    )


# --- size -------------------------------------------------------------------------------------


# The peak resident size of a fresh interpreter before and during the view of a 5 MB interchange.
MEASURE_PEAK_RSS = """
import gc, resource, sys
from core.conversion.sources import source_view
lines = ["BGM+220+PO1+9'", "NAD+BY+5412345000013::9'"]
for number in range(1, 55_000):
    lines += [f"LIN+{number}++4000862141404:SRV'", "IMD+F++:::Hydraulic pump HP-40 ?+ seal kit'",
              f"QTY+21:{number}'", "PRI+AAA:14.58'"]
message = ["UNH+1+ORDERS:D:96A:UN'", *lines, f"UNT+{len(lines) + 2}+1'"]
data = "\\n".join(["UNB+UNOC:3+A+B+240101:1200+R1'", *message, "UNZ+1+R1'"]).encode()
del lines, message
gc.collect()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
view = source_view(data, "big.edi")
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert view.xml.count(b"<GROUP_25>") == 54_999, "not every line got its group"
print(len(data), (after - before) * 1024)
"""


def test_a_5_mb_interchange_needs_less_than_ten_times_its_size_in_memory() -> None:
    result = subprocess.run(
        [sys.executable, "-c", MEASURE_PEAK_RSS],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    size, grown = map(int, result.stdout.split())
    assert size > 5_000_000
    assert grown < 10 * size


# --- an IN rule writes a DESADV in ISO-8859-5 -------------------------------------------------

DESPATCH_ENVELOPE = """<?xml version='1.0' encoding='UTF-8'?>
<envelope templateUuid="9631509a-3c58-465e-a541-d79151dedc11" templateVersion="1"
          uuid="0238cdda-4fd2-473c-a584-bdb1d484f397">
  <documents>
    <document id="despatch">
      <field name="despatchNumber">DN-2024-0042</field>
      <field name="despatchDate">2024-03-18</field>
      <field name="orderNumber">PO-2024-0117</field>
      <field name="supplierGln">4012345500004</field>
      <field name="buyerGln">5412345000013</field>
      <fieldgroup name="lines">
        <fieldset index="0">
          <field name="articleNumber">AC-1001</field>
          <field name="description">Насос HP-40</field>
          <field name="quantity">2</field>
        </fieldset>
        <fieldset index="1">
          <field name="articleNumber">AC-2040</field>
          <field name="description">Уплотнение 'A'+B: 10?</field>
          <field name="quantity">10</field>
        </fieldset>
      </fieldgroup>
    </document>
  </documents>
</envelope>
""".encode()

DESADV_STYLESHEET = """<xsl:stylesheet version="2.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:xs="http://www.w3.org/2001/XMLSchema"
    xmlns:f="urn:local" exclude-result-prefixes="xs f">
  <xsl:output method="text" encoding="ISO-8859-5"/>
  <!-- EDIFACT's release character goes before ? + : and ' in data. -->
  <xsl:function name="f:edi" as="xs:string">
    <xsl:param name="value" as="xs:string"/>
    <xsl:sequence select="replace($value, &quot;([?+:'])&quot;, '?$1')"/>
  </xsl:function>
  <xsl:template match="/">
    <xsl:variable name="d" select="envelope/documents/document[@id='despatch']"/>
    <xsl:variable name="lines" select="$d/fieldgroup[@name='lines']/fieldset"/>
    <xsl:variable name="date" select="replace($d/field[@name='despatchDate'], '-', '')"/>
    <xsl:variable name="segments" as="xs:string*">
      <xsl:sequence select="'UNH+1+DESADV:D:96A:UN:EAN005'"/>
      <xsl:sequence select="concat('BGM+351+', f:edi($d/field[@name='despatchNumber']), '+9')"/>
      <xsl:sequence select="concat('DTM+137:', $date, ':102')"/>
      <xsl:sequence select="concat('RFF+ON:', f:edi($d/field[@name='orderNumber']))"/>
      <xsl:sequence select="concat('NAD+SU+', $d/field[@name='supplierGln'], '::9')"/>
      <xsl:sequence select="concat('NAD+BY+', $d/field[@name='buyerGln'], '::9')"/>
      <xsl:sequence select="'CPS+1'"/>
      <xsl:sequence select="concat('PAC+', count($lines), '++CT')"/>
      <xsl:for-each select="$lines">
        <xsl:sequence select="concat('LIN+', position(), '++',
            f:edi(field[@name='articleNumber']), ':SA')"/>
        <xsl:sequence select="concat('IMD+F++:::', f:edi(field[@name='description']))"/>
        <xsl:sequence select="concat('QTY+12:', field[@name='quantity'])"/>
      </xsl:for-each>
      <xsl:sequence select="concat('CNT+2:', count($lines))"/>
    </xsl:variable>
    <xsl:value-of select="concat('UNA:+.? ''&#10;UNB+UNOE:3+', $d/field[@name='supplierGln'],
        ':14+', $d/field[@name='buyerGln'], ':14+', substring($date, 3), ':0900+',
        f:edi($d/field[@name='despatchNumber']), '''&#10;')"/>
    <xsl:for-each select="$segments">
      <xsl:value-of select="concat(., '''&#10;')"/>
    </xsl:for-each>
    <xsl:value-of select="concat('UNT+', count($segments) + 1, '+1''&#10;UNZ+1+',
        f:edi($d/field[@name='despatchNumber']), '''&#10;')"/>
  </xsl:template>
</xsl:stylesheet>
"""

EXPECTED_DESADV = """UNA:+.? '
UNB+UNOE:3+4012345500004:14+5412345000013:14+240318:0900+DN-2024-0042'
UNH+1+DESADV:D:96A:UN:EAN005'
BGM+351+DN-2024-0042+9'
DTM+137:20240318:102'
RFF+ON:PO-2024-0117'
NAD+SU+4012345500004::9'
NAD+BY+5412345000013::9'
CPS+1'
PAC+2++CT'
LIN+1++AC-1001:SA'
IMD+F++:::Насос HP-40'
QTY+12:2'
LIN+2++AC-2040:SA'
IMD+F++:::Уплотнение ?'A?'?+B?: 10??'
QTY+12:10'
CNT+2:2'
UNT+16+1'
UNZ+1+DN-2024-0042'
"""


def test_an_in_rule_writes_a_desadv_in_iso_8859_5_that_reads_back_through_the_view() -> None:
    output = transform(
        compile_stylesheet(DESADV_STYLESHEET), DESPATCH_ENVELOPE, {}, max_output=100_000
    )
    assert output.encoding.upper() == "ISO-8859-5"
    assert output.content == EXPECTED_DESADV.encode("iso8859-5")
    assert b"\xbd\xd0\xe1\xde\xe1" in output.content  # "Насос", one byte per letter

    view = source_view(output.content, "desadv.edi")
    assert view.details.startswith("EANCOM, syntax UNOE version 3, encoding ISO-8859-5")
    desadv = etree.fromstring(view.xml).find("DESADV")
    assert desadv is not None
    # D.96A DESADV: SG1 = RFF, SG2 = NAD, SG10 = CPS holding SG11 = PAC and SG15 = LIN.
    assert texts(desadv, "GROUP_1/RFF/RFF01/RFF0102") == ["PO-2024-0117"]
    assert texts(desadv, "GROUP_2/NAD/NAD01/NAD0101") == ["SU", "BY"]
    assert texts(desadv, "GROUP_10/CPS/CPS01/CPS0101") == ["1"]
    assert texts(desadv, "GROUP_10/GROUP_11/PAC/PAC01/PAC0101") == ["2"]
    assert texts(desadv, "GROUP_10/GROUP_15/IMD/IMD03/IMD0304") == [
        "Насос HP-40",
        "Уплотнение 'A'+B: 10?",
    ]
    assert texts(desadv, "GROUP_10/GROUP_15/QTY/QTY01/QTY0102") == ["2", "10"]
