"""The XML view of OUT-rule sources: real XLSX, XLS, CSV and XML files made at test time."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import openpyxl
import pytest
import xlwt
from lxml import etree

from core.conversion.sources import SourceKind, source_view
from core.errors import InvalidInput

DECL = b"<?xml version='1.0' encoding='UTF-8'?>\n"


def view(*sheets: bytes) -> bytes:
    return DECL + b"<xml>" + b"".join(sheets) + b"</xml>"


def csv_view(rows: bytes) -> bytes:
    return view(b'<sheet index="0" name="Sheet1">' + rows + b"</sheet>")


HEADER_AND_ROW = (
    b'<row index="0"><col index="0">Name</col><col index="1">City</col>'
    b'<col index="2">Qty</col></row>'
    b'<row index="1"><col index="0">M\xc3\xbcller</col><col index="1">K\xc3\xb6ln</col>'
    b'<col index="2">42</col></row>'
)


def xlsx_bytes() -> bytes:
    workbook = openpyxl.Workbook()
    first = workbook.active
    assert first is not None
    first.title = "Orders"
    first["B2"] = "Müller"  # data starting at B2: indexes stay the sheet's own
    first["D2"] = 42.0  # an integer-valued float
    first["B3"] = dt.date(2024, 3, 5)
    first["C3"] = dt.datetime(2024, 3, 5, 13, 4, 5)
    first["D3"] = 0.1
    first["E3"] = True
    first["F3"] = -7
    first["G3"] = dt.time(8, 30)
    first["H3"] = "a & b <c>"
    second = workbook.create_sheet("Leer")
    second["A1"] = "only"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


XLSX_VIEW = view(
    b'<sheet index="0" name="Orders">'
    b'<row index="1"><col index="1">M\xc3\xbcller</col><col index="3">42</col></row>'
    b'<row index="2"><col index="1">2024-03-05</col><col index="2">2024-03-05T13:04:05</col>'
    b'<col index="3">0.1</col><col index="4">true</col><col index="5">-7</col>'
    b'<col index="6">08:30:00</col><col index="7">a &amp; b &lt;c&gt;</col></row>'
    b"</sheet>",
    b'<sheet index="1" name="Leer"><row index="0"><col index="0">only</col></row></sheet>',
)


def xls_bytes() -> bytes:
    workbook = xlwt.Workbook()
    sheet = workbook.add_sheet("Daten")
    sheet.write(0, 0, "Müller")
    sheet.write(0, 2, 42.0)
    sheet.write(1, 1, dt.date(2024, 3, 5), xlwt.easyxf(num_format_str="YYYY-MM-DD"))
    date_time = xlwt.easyxf(num_format_str="YYYY-MM-DD HH:MM:SS")
    sheet.write(1, 3, dt.datetime(2024, 3, 5, 13, 4, 5), date_time)
    sheet.write(2, 1, 1.5)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


XLS_VIEW = view(
    b'<sheet index="0" name="Daten">'
    b'<row index="0"><col index="0">M\xc3\xbcller</col><col index="2">42</col></row>'
    b'<row index="1"><col index="1">2024-03-05</col><col index="3">2024-03-05T13:04:05</col>'
    b"</row>"
    b'<row index="2"><col index="1">1.5</col></row>'
    b"</sheet>"
)


# --- workbooks --------------------------------------------------------------------------------


def test_xlsx_view_keeps_indexes_dates_and_numbers_as_the_sheet_shows_them() -> None:
    result = source_view(xlsx_bytes(), "orders.xlsx")
    assert result.xml == XLSX_VIEW
    assert result.kind == SourceKind.XLSX == "xlsx"
    assert result.details == "XLSX, 2 sheets"


def test_content_decides_the_kind_and_the_extension_tells_xlsm() -> None:
    data = xlsx_bytes()
    assert source_view(data, "orders.csv").kind == SourceKind.XLSX
    macro = source_view(data, "orders.xlsm")
    assert (macro.kind, macro.xml, macro.details) == (SourceKind.XLSM, XLSX_VIEW, "XLSM, 2 sheets")


def test_xls_view() -> None:
    result = source_view(xls_bytes(), "daten.xls")
    assert result.xml == XLS_VIEW
    assert (result.kind, result.details) == (SourceKind.XLS, "XLS, 1 sheet")


def test_truncated_xlsx_names_the_zip_directory() -> None:
    data = xlsx_bytes()
    with pytest.raises(InvalidInput) as caught:
        source_view(data[: len(data) // 2], "orders.xlsx")
    assert caught.value.title.startswith(
        "XLSX workbook cannot be read: the zip's central directory at the end of the file is "
        "missing or damaged"
    )
    assert "export it again" in caught.value.hint


def test_damaged_xlsx_member_is_named() -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in range(1, 200):
        sheet.cell(row, 1, f"value {row} " * 5)
    buffer = io.BytesIO()
    workbook.save(buffer)
    data = bytearray(buffer.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
    body = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for offset in range(body + 20, body + 60):
        data[offset] ^= 0x55
    with pytest.raises(InvalidInput) as caught:
        source_view(bytes(data), "orders.xlsx")
    assert caught.value.title.startswith(
        "XLSX workbook cannot be read in zip member xl/worksheets/sheet1.xml (sheet 'Sheet'): "
    )


def test_zip_that_is_no_workbook() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("content.xml", "<office/>")
    with pytest.raises(InvalidInput) as caught:
        source_view(buffer.getvalue(), "sheet.xlsx")
    assert caught.value.title == (
        "Zip file is not an XLSX/XLSM workbook: it has no xl/workbook.xml member"
    )


def test_truncated_xls_says_where() -> None:
    data = xls_bytes()
    with pytest.raises(InvalidInput) as caught:
        source_view(data[:600], "daten.xls")
    assert caught.value.title == (
        "XLS workbook cannot be read in its OLE2 container: Cannot detect file format "
        "(the file ends in the middle of a 512-byte sector at byte 600: it is truncated)"
    )


def test_binary_junk_named_as_a_workbook() -> None:
    with pytest.raises(InvalidInput) as caught:
        source_view(b"\x01\x02\x00\x03junk", "orders.xlsx")
    assert caught.value.title == (
        "orders.xlsx is not a readable XLSX workbook: it starts with neither the zip nor the "
        "OLE2 signature"
    )


# --- CSV --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delimiter", "shown"), [(",", "','"), (";", "';'"), ("\t", "tab"), ("|", "'|'")]
)
def test_csv_each_delimiter(delimiter: str, shown: str) -> None:
    text = f"Name{delimiter}City{delimiter}Qty\r\nMüller{delimiter}Köln{delimiter}42\r\n"
    result = source_view(text.encode(), "orders.csv")
    assert result.xml == csv_view(HEADER_AND_ROW)
    assert result.kind == SourceKind.CSV
    assert result.details == f"CSV, delimiter {shown}, encoding UTF-8"


def test_csv_utf8_with_bom() -> None:
    data = "\ufeffName;City;Qty\nMüller;Köln;42\n".encode()
    result = source_view(data, "orders.csv")
    assert result.xml == csv_view(HEADER_AND_ROW)
    assert result.details == "CSV, delimiter ';', encoding UTF-8 with BOM"


def test_csv_cp1252() -> None:
    data = "Name;City;Qty\nMüller;Köln;42\n".encode("cp1252")
    assert b"M\xfcller" in data
    result = source_view(data, "orders.csv")
    assert result.xml == csv_view(HEADER_AND_ROW)
    assert result.details == "CSV, delimiter ';', encoding cp1252"


def test_csv_quotes_empty_cells_and_blank_lines() -> None:
    data = b'a;"b;c";\n\n;"x ""y"""\n'
    result = source_view(data, "q.csv")
    assert result.xml == csv_view(
        b'<row index="0"><col index="0">a</col><col index="1">b;c</col></row>'
        b'<row index="2"><col index="1">x "y"</col></row>'
    )


def test_csv_markup_characters_are_escaped_and_survive_a_parse() -> None:
    data = b'id,text\r\n1,"a & b <c> \'d\' ""e"" line\r\nnext"\r\n'
    result = source_view(data, "t.csv")
    assert result.xml == csv_view(
        b'<row index="0"><col index="0">id</col><col index="1">text</col></row>'
        b'<row index="1"><col index="0">1</col>'
        b'<col index="1">a &amp; b &lt;c&gt; \'d\' "e" line&#13;\nnext</col></row>'
    )
    col = etree.fromstring(result.xml).find("sheet/row[@index='1']/col[@index='1']")
    assert col is not None
    assert col.text == "a & b <c> 'd' \"e\" line\r\nnext"


def test_sheet_names_with_quotes_survive_a_parse() -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = 'Q"1 & <2>'
    sheet["A1"] = 1
    buffer = io.BytesIO()
    workbook.save(buffer)
    result = source_view(buffer.getvalue(), "q.xlsx")
    assert result.xml == view(
        b'<sheet index="0" name="Q&quot;1 &amp; &lt;2&gt;">'
        b'<row index="0"><col index="0">1</col></row></sheet>'
    )
    assert etree.fromstring(result.xml).find("sheet").get("name") == 'Q"1 & <2>'


def test_csv_single_column_falls_back_to_comma() -> None:
    result = source_view(b"only\nvalues\n", "list.txt")
    assert result.xml == csv_view(
        b'<row index="0"><col index="0">only</col></row>'
        b'<row index="1"><col index="0">values</col></row>'
    )
    assert result.details == "CSV, delimiter ',', encoding UTF-8"


def test_csv_named_as_xls_is_read_as_csv() -> None:
    result = source_view(b"a;b\n1;2\n", "export.xls")
    assert result.kind == SourceKind.CSV
    assert result.details == (
        "CSV, delimiter ';', encoding UTF-8 (named .xls, but its content is CSV text)"
    )


def test_csv_cut_inside_a_quoted_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        source_view(b'id;text\n1;"complete"\n2;"cut\nshort', "orders.csv")
    assert caught.value.title == (
        "CSV source ends inside a quoted field: the record that starts at line 3 "
        "(row index 2) has no closing quote"
    )


def test_csv_text_after_a_closing_quote_is_read_as_excel_does() -> None:
    result = source_view(b'a;b\n"ab"c;d\n', "odd.csv")
    assert result.xml == csv_view(
        b'<row index="0"><col index="0">a</col><col index="1">b</col></row>'
        b'<row index="1"><col index="0">abc</col><col index="1">d</col></row>'
    )


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b" \r\n\t"])
def test_empty_source_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        source_view(data, "orders.csv")
    assert caught.value.title == "orders.csv is empty"


def test_csv_binary_junk_names_the_line() -> None:
    with pytest.raises(InvalidInput) as caught:
        source_view(b"a;b\n1;2\n\x89\x00\x13\xff", "orders.csv")
    assert caught.value.title == "CSV source contains binary data: a NUL byte at line 3"


def test_csv_neither_utf8_nor_cp1252() -> None:
    with pytest.raises(InvalidInput) as caught:
        source_view(b"a;b\n\x81;2\n", "orders.csv")
    assert caught.value.title == (
        "CSV source is neither UTF-8 nor cp1252 text: byte 0x81 at line 2"
    )


def test_csv_control_character_names_row_and_col() -> None:
    with pytest.raises(InvalidInput) as caught:
        source_view(b"a;b\n1;2\x01\n", "orders.csv")
    assert caught.value.title == (
        "Source holds a character XML cannot carry: U+0001 at sheet 'Sheet1', row index 1, "
        "col index 1"
    )


# --- XML --------------------------------------------------------------------------------------


def test_xml_is_kept_as_is() -> None:
    data = b"\xef\xbb\xbf<?xml version='1.0'?>\n  <order><line qty='1'/></order>"
    result = source_view(data, "order.dat")
    assert (result.xml, result.kind, result.details) == (data, SourceKind.XML, "XML")


def test_xml_with_doctype_is_refused() -> None:
    data = b'<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>'
    with pytest.raises(InvalidInput) as caught:
        source_view(data, "order.xml")
    assert caught.value.title == "XML source must not contain a DOCTYPE or entity declarations"


def test_truncated_xml_names_the_line() -> None:
    with pytest.raises(InvalidInput) as caught:
        source_view(b"<order>\n<line>\n", "order.xml")
    assert caught.value.title.startswith("XML source is not well-formed: ")
    assert caught.value.title.endswith("(line 3)")
