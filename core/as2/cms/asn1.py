"""Just enough DER/BER for AS2's CMS, by hand and by offset.

Writing: the few DER encoders (lengths, TLVs, SEQUENCEs, INTEGERs, OIDs) that the builders
use to emit exactly the bytes pyas2lib emits, and the OIDs they name. Reading: walking a
DER or BER (indefinite lengths, constructed OCTET STRINGs) structure by offsets into the
received bytes, so a large encrypted or compressed content is located without being copied;
asn1crypto is used only for the small structures around it (recipient and signer infos).
"""

from __future__ import annotations

# --- writing ------------------------------------------------------------------------------------


def der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + der_len(len(content)) + content


def seq(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def der_int(value: int) -> bytes:
    return tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def der_oid(dotted: str) -> bytes:
    numbers = [int(x) for x in dotted.split(".")]
    out = bytearray((numbers[0] * 40 + numbers[1],))
    for number in numbers[2:]:
        chunk = [number & 0x7F]
        number >>= 7
        while number:
            chunk.append(0x80 | (number & 0x7F))
            number >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


NULL = b"\x05\x00"


OID_DATA = der_oid("1.2.840.113549.1.7.1")


OID_SIGNED_DATA = der_oid("1.2.840.113549.1.7.2")


OID_ENVELOPED_DATA = der_oid("1.2.840.113549.1.7.3")


OID_COMPRESSED_DATA = der_oid("1.2.840.113549.1.9.16.1.9")


OID_ZLIB = der_oid("1.2.840.113549.1.9.16.3.8")


OID_RSA = der_oid("1.2.840.113549.1.1.1")


OID_CONTENT_TYPE = der_oid("1.2.840.113549.1.9.3")


OID_MESSAGE_DIGEST = der_oid("1.2.840.113549.1.9.4")


OID_SIGNING_TIME = der_oid("1.2.840.113549.1.9.5")


# --- reading by offset (large contents are never copied) ---------------------------------------


class _Asn1Error(ValueError):
    pass


def _header(data: bytes, pos: int, limit: int) -> tuple[int, int, int]:
    """(tag, content start, content length or -1 for indefinite) of the TLV at ``pos``."""
    if pos + 2 > limit:
        raise _Asn1Error("truncated ASN.1")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise _Asn1Error("high tag numbers are not used in CMS")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        return tag, pos, first
    if first == 0x80:
        if not tag & 0x20:
            raise _Asn1Error("indefinite length on a primitive")
        return tag, pos, -1
    count = first & 0x7F
    if count > 8 or pos + count > limit:
        raise _Asn1Error("bad ASN.1 length")
    length = int.from_bytes(data[pos : pos + count], "big")
    if pos + count + length > limit:
        raise _Asn1Error("ASN.1 length beyond the data")
    return tag, pos + count, length


def _end(data: bytes, pos: int, limit: int) -> int:
    """The offset just after the TLV at ``pos`` (walks indefinite lengths)."""
    _tag, start, length = _header(data, pos, limit)
    if length >= 0:
        return start + length
    while True:
        if data[start : start + 2] == b"\x00\x00":
            return start + 2
        start = _end(data, start, limit)


def children(data: bytes, pos: int, limit: int) -> list[int]:
    """Offsets of the elements inside the constructed TLV at ``pos``."""
    _tag, start, length = _header(data, pos, limit)
    stop = start + length if length >= 0 else limit
    out = []
    while start < stop:
        if length < 0 and data[start : start + 2] == b"\x00\x00":
            break
        out.append(start)
        start = _end(data, start, stop)
    return out


def octet_ranges(data: bytes, pos: int, limit: int) -> list[tuple[int, int]]:
    """The (start, end) ranges of an OCTET STRING's content, primitive or constructed (BER)."""
    tag, start, length = _header(data, pos, limit)
    if not tag & 0x20:
        return [(start, start + length)]
    out: list[tuple[int, int]] = []
    for child in children(data, pos, limit):
        out.extend(octet_ranges(data, child, limit))
    return out


def element(data: bytes, pos: int, limit: int) -> bytes:
    return data[pos : _end(data, pos, limit)]


def content_info(data: bytes, start: int, limit: int) -> tuple[bytes, int]:
    """The content type OID (DER) of a CMS ContentInfo and the offset of its inner content."""
    oid_pos, explicit = children(data, start, limit)[:2]
    (inner,) = children(data, explicit, limit)[:1]
    return element(data, oid_pos, limit), inner
