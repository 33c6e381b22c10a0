"""CMS CompressedData (zlib): compress as pyas2lib does, decompress within a limit.

Compression emits the DER header and zlib's output as pieces, never joined. Decompression
stops as soon as the output passes its limit, so a compression bomb never inflates.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from core.as2.cms.asn1 import (
    OID_COMPRESSED_DATA,
    OID_DATA,
    OID_ZLIB,
    children,
    content_info,
    der_len,
    element,
    octet_ranges,
    seq,
)
from core.as2.cms.buffer import CHUNK, Filler
from core.as2.cms.mime import Entity, parse_entity
from core.as2.cms.outcome import Failure
from core.as2.messages import DECOMPRESSION_FAILED


def compressed_data(pieces: Iterable[bytes]) -> list[bytes]:
    """A CMS CompressedData (zlib) of the pieces, DER as pyas2lib writes it, in pieces: its
    header, then the compressed stream as zlib produced it (not joined)."""
    compressor = zlib.compressobj()
    out = []
    for piece in pieces:
        view = memoryview(piece)
        for offset in range(0, len(view), CHUNK):
            out.append(compressor.compress(view[offset : offset + CHUNK]))
    out.append(compressor.flush())
    length = sum(len(piece) for piece in out)
    octets = b"\x04" + der_len(length)
    encap_len = len(OID_DATA) + 1 + len(der_len(len(octets) + length)) + len(octets) + length
    encap = b"\x30" + der_len(encap_len) + OID_DATA + b"\xa0" + der_len(len(octets) + length)
    algorithm = seq(OID_ZLIB)
    inner_len = 3 + len(algorithm) + len(encap) + len(octets) + length
    inner = b"\x30" + der_len(inner_len) + b"\x02\x01\x00" + algorithm + encap + octets
    # [0] EXPLICIT wraps the whole CompressedData, its own header included
    wrapped_len = len(inner) + length
    explicit = b"\xa0" + der_len(wrapped_len)
    info_len = len(OID_COMPRESSED_DATA) + len(explicit) + wrapped_len
    head = b"\x30" + der_len(info_len) + OID_COMPRESSED_DATA + explicit + inner
    return [head, *(piece for piece in out if piece)]


TOO_MUCH = "Decompression failed with cause: the content decompresses beyond the limit."


def decompress(data: bytes, start: int, end: int, limit: int) -> Entity:
    try:
        _kind, compressed = content_info(data, start, end)
        fields = children(data, compressed, end)
        algorithm = element(data, children(data, fields[1], end)[0], end)
        if algorithm != OID_ZLIB:
            raise ValueError("Unsupported compression algorithm")
        encap = children(data, fields[2], end)
        chunks = octet_ranges(data, children(data, encap[1], end)[0], end)
        decompressor = zlib.decompressobj()
        out = Filler()
        view = memoryview(data)
        too_much = TOO_MUCH
        for begin, stop in chunks:
            for offset in range(begin, stop, CHUNK):
                pending: bytes | memoryview = view[offset : min(stop, offset + CHUNK)]
                while pending:
                    out.append(decompressor.decompress(pending, 8 * CHUNK))
                    if out.position > limit:
                        raise Failure(DECOMPRESSION_FAILED, too_much)
                    pending = decompressor.unconsumed_tail
        out.append(decompressor.flush())
        if out.position > limit:
            raise Failure(DECOMPRESSION_FAILED, too_much)
        if not decompressor.eof:
            raise ValueError("incomplete zlib stream")
    except Failure:
        raise
    except Exception as error:
        raise Failure(DECOMPRESSION_FAILED, f"Decompression failed with cause: {error}") from error
    plain = out.result()
    return parse_entity(plain, 0, len(plain), out)
