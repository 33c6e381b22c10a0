"""The AS2 (RFC 4130) CMS hot path on ``cryptography``: build and parse AS2 messages, fast.

Byte-compatible with pyas2lib (which stays the interop oracle, see :mod:`core.as2.messages`):
the same MIME structure, the same CMS structures (signed attributes, S/MIME capabilities,
enveloped data with RSA PKCS#1 v1.5 key transport), the same MIC (RFC 4130 §7.3.1) and the same
dispositions (RFC 4130 §7.5.3) with the same reasons. What differs on purpose:

* Every payload travels with ``Content-Transfer-Encoding: binary`` (pyas2lib does so only for
  ``application/octet-stream`` and rewrites the line ends of other types): payloads of any type
  arrive byte-identical.
* Signatures are checked over the signed part exactly as received first (RFC 1847), then over
  pyas2lib's re-serialised form; a message either accepts verifies with the same digest, so
  the MIC is the same.
* Several partner certificates (rollover) and several of our keys (old and new) are accepted.
* A large payload is held about twice (input and output), not several times: CMS structures
  are read and written by offset, digests are computed over the parts in place, and content is
  encrypted and decrypted straight into the buffer that becomes the result. (Compressed
  content is the exception: it is decompressed in memory, bounded by ``max_decompressed``.)

Every function here is blocking and pure (no I/O; parsed keys and certificates are cached by
their bytes): callers on an event loop run them in a thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
import secrets
import sys
import time
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email import message_from_bytes
from email import policy as email_policy
from email import utils as email_utils
from email.generator import BytesGenerator
from email.message import Message as MimeMessage
from functools import lru_cache
from typing import Any

from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.ciphers import Cipher, CipherAlgorithm, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs12

from core.as2.messages import (
    AUTHENTICATION_FAILED,
    DECOMPRESSION_FAILED,
    DECRYPTION_FAILED,
    INSUFFICIENT_SECURITY,
    INTEGRITY_CHECK_FAILED,
    PROCESSED,
    UNEXPECTED_ERROR,
    InboundMessage,
    OurIdentity,
    OutboundMdn,
    PartnerIdentity,
)

__all__ = [
    "DIGESTS",
    "ENCRYPTIONS",
    "BuiltMessage",
    "OwnConfigurationError",
    "build_message",
    "parse_message",
]

DIGESTS = ("sha1", "sha224", "sha256", "sha384", "sha512")
ENCRYPTIONS = ("tripledes_192_cbc", "aes_128_cbc", "aes_192_cbc", "aes_256_cbc")
DEFAULT_MAX_DECOMPRESSED = 2 << 30
AS2_VERSION = "1.2"
EDIINT_FEATURES = "CMS"
# The texts pyas2lib puts in its MDNs (pyas2lib.constants): partners see the same either way.
MDN_CONFIRM_TEXT = (
    "The AS2 message has been successfully processed. "
    "Thank you for exchanging AS2 messages with pyAS2."
)
MDN_FAILED_TEXT = (
    "The AS2 message could not be processed. The "
    "disposition-notification report has additional details."
)
REPORTING_UA = "pyAS2 Open Source AS2 Software"
_SMIME_SUFFIXES = (".p7m", ".p7s", ".p7z")
_CHUNK = 1 << 20
_MAX_LAYERS = 8
_MAX_HEADERS = 1 << 16  # bytes of MIME headers read before the body is assumed to start

# --- DER writing --------------------------------------------------------------------------------


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _der_len(len(content)) + content


def _seq(*parts: bytes) -> bytes:
    return _tlv(0x30, b"".join(parts))


def _der_int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _oid(dotted: str) -> bytes:
    numbers = [int(x) for x in dotted.split(".")]
    out = bytearray((numbers[0] * 40 + numbers[1],))
    for number in numbers[2:]:
        chunk = [number & 0x7F]
        number >>= 7
        while number:
            chunk.append(0x80 | (number & 0x7F))
            number >>= 7
        out += bytes(reversed(chunk))
    return _tlv(0x06, bytes(out))


_NULL = b"\x05\x00"
OID_DATA = _oid("1.2.840.113549.1.7.1")
OID_SIGNED_DATA = _oid("1.2.840.113549.1.7.2")
OID_ENVELOPED_DATA = _oid("1.2.840.113549.1.7.3")
OID_COMPRESSED_DATA = _oid("1.2.840.113549.1.9.16.1.9")
OID_ZLIB = _oid("1.2.840.113549.1.9.16.3.8")
OID_RSA = _oid("1.2.840.113549.1.1.1")
OID_CONTENT_TYPE = _oid("1.2.840.113549.1.9.3")
OID_MESSAGE_DIGEST = _oid("1.2.840.113549.1.9.4")
OID_SIGNING_TIME = _oid("1.2.840.113549.1.9.5")
# The S/MIME capabilities attribute pyas2lib signs (aes256, aes128, 3des, rc2/128, rc4/128).
_SMIME_CAPABILITIES = base64.b64decode(
    "MFUGCSqGSIb3DQEJDzFIMEYwCwYJYIZIAWUDBAEqMAsGCWCGSAFlAwQBAjAKBggqhkiG9w0DBzAOBggqhkiG9w0DAg"
    "ICAIAwDgYIKoZIhvcNAwQCAgCA"
)
_DIGEST_OIDS = {
    "md5": _oid("1.2.840.113549.2.5"),
    "sha1": _oid("1.3.14.3.2.26"),
    "sha224": _oid("2.16.840.1.101.3.4.2.4"),
    "sha256": _oid("2.16.840.1.101.3.4.2.1"),
    "sha384": _oid("2.16.840.1.101.3.4.2.2"),
    "sha512": _oid("2.16.840.1.101.3.4.2.3"),
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "md5": hashes.MD5,
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
# name -> (OID, key bytes, block size)
_CIPHERS = {
    "tripledes_192_cbc": (_oid("1.2.840.113549.3.7"), 24, 8),
    "aes_128_cbc": (_oid("2.16.840.1.101.3.4.1.2"), 16, 16),
    "aes_192_cbc": (_oid("2.16.840.1.101.3.4.1.22"), 24, 16),
    "aes_256_cbc": (_oid("2.16.840.1.101.3.4.1.42"), 32, 16),
}


def _cipher(name: str, key: bytes) -> CipherAlgorithm:
    return TripleDES(key) if name.startswith("tripledes") else algorithms.AES(key)


# --- DER/BER reading by offset (large contents are never copied) --------------------------------


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


def _children(data: bytes, pos: int, limit: int) -> list[int]:
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


def _octets(data: bytes, pos: int, limit: int) -> list[tuple[int, int]]:
    """The (start, end) ranges of an OCTET STRING's content, primitive or constructed (BER)."""
    tag, start, length = _header(data, pos, limit)
    if not tag & 0x20:
        return [(start, start + length)]
    out: list[tuple[int, int]] = []
    for child in _children(data, pos, limit):
        out.extend(_octets(data, child, limit))
    return out


def _element(data: bytes, pos: int, limit: int) -> bytes:
    return data[pos : _end(data, pos, limit)]


def _content_info(data: bytes, start: int, limit: int) -> tuple[bytes, int]:
    """The content type OID (DER) of a CMS ContentInfo and the offset of its inner content."""
    oid_pos, explicit = _children(data, start, limit)[:2]
    (inner,) = _children(data, explicit, limit)[:1]
    return _element(data, oid_pos, limit), inner


# --- keys and certificates ----------------------------------------------------------------------


class OwnConfigurationError(ValueError):
    """Our private key or a partner's configured certificate cannot be read: not the sender's
    fault, so :func:`parse_message` raises this instead of answering with a disposition."""


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.S)


@dataclass(frozen=True, slots=True)
class _Certificate:
    certificate: x509.Certificate
    der: bytes
    issuer_and_serial: bytes  # DER IssuerAndSerialNumber
    subject_key_id: bytes | None


@dataclass(frozen=True, slots=True)
class _KeyPair:
    key: Any  # a cryptography private key
    certificate: _Certificate | None


def _wrap_certificate(certificate: x509.Certificate) -> _Certificate:
    try:
        ski: bytes | None = certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value.digest
    except x509.ExtensionNotFound:
        ski = None
    issuer = certificate.issuer.public_bytes()
    return _Certificate(
        certificate=certificate,
        der=certificate.public_bytes(serialization.Encoding.DER),
        issuer_and_serial=_seq(issuer, _der_int(certificate.serial_number)),
        subject_key_id=ski,
    )


@lru_cache(maxsize=256)
def _certificates(blob: bytes) -> tuple[_Certificate, ...]:
    """Every certificate in a PEM bundle (or one DER certificate)."""
    if b"-----BEGIN" not in blob:
        return (_wrap_certificate(x509.load_der_x509_certificate(blob)),)
    found = [
        _wrap_certificate(x509.load_pem_x509_certificate(match.group(0)))
        for match in _PEM_BLOCK.finditer(blob)
        if match.group(1) in (b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE")
    ]
    if not found:
        raise ValueError("No certificate found.")
    return tuple(found)


@lru_cache(maxsize=64)
def _key_pair(key_blob: bytes, password: str | None, certificate_pem: bytes) -> _KeyPair:
    secret = password.encode() if password else None
    certificate: _Certificate | None = None
    if b"-----BEGIN" in key_blob:
        key: Any = None
        for match in _PEM_BLOCK.finditer(key_blob):
            if match.group(1).endswith(b"PRIVATE KEY"):
                key = serialization.load_pem_private_key(match.group(0), secret)
            elif match.group(1) == b"CERTIFICATE" and certificate is None:
                certificate = _certificates(match.group(0))[0]
        if key is None:
            raise ValueError("No private key found.")
    else:
        key, cert, _extra = pkcs12.load_key_and_certificates(key_blob, secret)
        if key is None:
            raise ValueError("No private key in the PKCS#12 file.")
        certificate = _wrap_certificate(cert) if cert is not None else None
    if certificate is None and certificate_pem:
        certificate = _certificates(certificate_pem)[0]
    return _KeyPair(key=key, certificate=certificate)


def _our_key(identity: OurIdentity) -> _KeyPair:
    return _key_pair(identity.private_key, identity.private_key_password, identity.certificate_pem)


@dataclass(frozen=True, slots=True)
class _Keys:
    """What a message is checked with: our key pairs (the first signs the MDN) and the
    partner's certificates."""

    ours: list[_KeyPair]
    certificates: list[_Certificate]


def _load_keys(ours: list[OurIdentity], partners: list[PartnerIdentity]) -> _Keys:
    try:
        pairs = [_our_key(identity) for identity in ours]
    except Exception as error:
        raise OwnConfigurationError(f"Our private key could not be read: {error}") from error
    try:
        certificates = [c for p in partners for c in _certificates(p.certificate_pem)]
    except Exception as error:
        raise OwnConfigurationError(
            f"The partner's certificate could not be read: {error}"
        ) from error
    return _Keys(ours=pairs, certificates=certificates)


# --- building -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuiltMessage:
    """An AS2 message ready to POST: HTTP headers and body, and the MIC to expect in the MDN.

    ``mic`` is over the signed part's canonical bytes when signed; when unsigned, over the MIME
    entity that was encrypted (RFC 4130 §7.3.1), or over the payload alone when sent in clear.
    """

    headers: tuple[tuple[str, str], ...]
    body: bytes
    mic: str
    mic_algorithm: str
    message_id: str


def build_message(
    payload: bytes,
    *,
    as2_from: str,
    as2_to: str,
    message_id: str,
    filename: str | None,
    content_type: str = "application/octet-stream",
    sign_key_pem: bytes | None = None,
    sign_cert_pem: bytes | None = None,
    sign_key_password: str | None = None,
    digest: str | None = None,
    encrypt_cert_pem: bytes | None = None,
    encryption: str | None = None,
    compress: bool = False,
    mdn_to: str | None = None,
    mdn_signed_digest: str | None = None,
    receipt_delivery_option: str | None = None,
    subject: str = "AS2 Message",
) -> BuiltMessage:
    """Compress, then sign, then encrypt ``payload`` as pyas2lib does, much faster.

    Signing needs ``sign_key_pem`` (PEM, may include the certificate and be encrypted with
    ``sign_key_password``; PKCS#12 works too), ``sign_cert_pem`` (unless the key carries it)
    and ``digest``; encryption needs ``encrypt_cert_pem`` and ``encryption``.
    ``mdn_to`` asks for an MDN (Disposition-Notification-To), signed when ``mdn_signed_digest``
    is set, asynchronous when ``receipt_delivery_option`` is set.
    """
    if not isinstance(payload, bytes):
        raise TypeError("payload must be bytes")
    message_id = message_id.strip().lstrip("<").rstrip(">")
    for value in (as2_from, as2_to, message_id, filename or "", content_type, subject):
        if "\r" in value or "\n" in value:
            raise ValueError("Header values must not contain line breaks.")
    signing = sign_key_pem is not None
    if signing and (digest is None or _digest_name(digest) not in DIGESTS):
        raise ValueError(f"Signing needs a digest, one of {DIGESTS}.")
    if encrypt_cert_pem is not None and encryption not in _CIPHERS:
        raise ValueError(f"Encryption needs an algorithm, one of {ENCRYPTIONS}.")

    head = f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: binary\r\n"
    if filename:
        head += f"Content-Disposition: {_disposition(filename)}\r\n"
    # The current MIME entity, as pieces (its headers first) that are never joined needlessly.
    entity: list[bytes] = [(head + "\r\n").encode("utf-8"), payload]
    top: list[tuple[str, str]] = [
        ("Content-Type", content_type),
        ("Content-Transfer-Encoding", "binary"),
    ]
    if filename:
        top.append(("Content-Disposition", _disposition(filename)))

    if compress:
        entity = [_COMPRESSED_HEAD_MIME, *_compress(entity)]
        top = [("MIME-Version", "1.0"), *_COMPRESSED_TOP]

    mic_algorithm = _digest_name(digest or mdn_signed_digest or "sha256")
    if mic_algorithm not in _HASHES:
        mic_algorithm = "sha256"
    body_pieces: list[bytes]
    if signing:
        assert sign_key_pem is not None
        pair = _key_pair(sign_key_pem, sign_key_password, sign_cert_pem or b"")
        if pair.certificate is None:
            raise ValueError("Signing needs the certificate of the signing key.")
        hasher = hashlib.new(mic_algorithm)
        for piece in entity:
            hasher.update(piece)
        message_digest = hasher.digest()
        signature = _sign(message_digest, mic_algorithm, pair)
        boundary = _boundary()
        content_type_signed = (
            'multipart/signed; protocol="application/pkcs7-signature"; '
            f'micalg="{mic_algorithm}"; boundary="{boundary}"'
        )
        delimiter = f"--{boundary}\r\n".encode()
        body_pieces = [
            delimiter,
            *entity,
            b"\r\n" + delimiter,
            _SIGNATURE_HEAD,
            base64.encodebytes(signature).replace(b"\n", b"\r\n"),
            f"\r\n--{boundary}--\r\n".encode(),
        ]
        top = [("Content-Type", content_type_signed)]
        entity = [f"Content-Type: {content_type_signed}\r\n\r\n".encode(), *body_pieces]
    else:
        message_digest = b""

    if encrypt_cert_pem is not None:
        assert encryption is not None
        if not signing:
            # RFC 4130 §7.3.1: an unsigned encrypted message's MIC is over the decrypted entity.
            hasher = hashlib.new(mic_algorithm)
            for piece in entity:
                hasher.update(piece)
            message_digest = hasher.digest()
        body = _envelope(entity, encryption, _certificates(encrypt_cert_pem)[0])
        top = [("MIME-Version", "1.0"), *_ENVELOPED_TOP]
    else:
        if signing:
            body = b"".join(body_pieces)
        else:
            body = entity[1] if len(entity) == 2 else b"".join(entity[1:])
            if not compress:
                message_digest = hashlib.new(mic_algorithm, payload).digest()
            else:
                hasher = hashlib.new(mic_algorithm)
                for piece in entity:
                    hasher.update(piece)
                message_digest = hasher.digest()

    headers = [
        *top,
        ("AS2-Version", AS2_VERSION),
        ("ediint-features", EDIINT_FEATURES),
        ("Message-ID", f"<{message_id}>"),
        ("AS2-From", _quote_as2name(as2_from)),
        ("AS2-To", _quote_as2name(as2_to)),
        ("Subject", subject),
        ("Date", email_utils.formatdate(localtime=True)),
    ]
    if mdn_to:
        headers.append(("disposition-notification-to", mdn_to))
        if mdn_signed_digest:
            headers.append(
                (
                    "disposition-notification-options",
                    "signed-receipt-protocol=required, pkcs7-signature; "
                    f"signed-receipt-micalg=optional, {mdn_signed_digest}",
                )
            )
        if receipt_delivery_option:
            headers.append(("receipt-delivery-option", receipt_delivery_option))
    for name, value in headers:
        if "\r" in value or "\n" in value:
            raise ValueError(f"The {name} header must not contain line breaks.")
    return BuiltMessage(
        headers=tuple(headers),
        body=body,
        mic=base64.b64encode(message_digest).decode("ascii"),
        mic_algorithm=mic_algorithm,
        message_id=message_id,
    )


_COMPRESSED_TOP = [
    ("Content-Type", 'application/pkcs7-mime; name="smime.p7z"; smime-type="compressed-data"'),
    ("Content-Disposition", 'attachment; filename="smime.p7z"'),
    ("Content-Transfer-Encoding", "binary"),
]
_COMPRESSED_HEAD_MIME = (
    "MIME-Version: 1.0\r\n" + "".join(f"{n}: {v}\r\n" for n, v in _COMPRESSED_TOP) + "\r\n"
).encode()
_ENVELOPED_TOP = [
    ("Content-Type", 'application/pkcs7-mime; name="smime.p7m"; smime-type="enveloped-data"'),
    ("Content-Disposition", 'attachment; filename="smime.p7m"'),
    ("Content-Transfer-Encoding", "binary"),
]
_SIGNATURE_HEAD = (
    b'Content-Type: application/pkcs7-signature; name="smime.p7s"; smime-type="signed-data"\r\n'
    b'Content-Disposition: attachment; filename="smime.p7s"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n"
)


def _boundary() -> str:
    # pyas2lib's (and the email package's) form: 15 '=' signs, 19 digits, '=='.
    return "=" * 15 + f"{secrets.randbelow(sys.maxsize):019d}" + "=="


def _disposition(filename: str) -> str:
    """``attachment; filename="..."`` as the email package writes it (RFC 2231 when not ASCII)."""
    if filename.isascii():
        quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
        return f'attachment; filename="{quoted}"'
    probe = MimeMessage()
    probe.add_header("Content-Disposition", "attachment", filename=filename)
    return str(probe["Content-Disposition"])


def _quote_as2name(name: str) -> str:
    if re.search(r'[\\" ]', name):
        return '"' + email_utils.quote(name) + '"'
    return name


def _digest_name(name: str) -> str:
    return name.strip().lower().replace("-", "")


def _compress(pieces: Iterable[bytes]) -> list[bytes]:
    """A CMS CompressedData (zlib) of the pieces, DER as pyas2lib writes it, in pieces: its
    header, then the compressed stream as zlib produced it (not joined)."""
    compressor = zlib.compressobj()
    out = []
    for piece in pieces:
        view = memoryview(piece)
        for offset in range(0, len(view), _CHUNK):
            out.append(compressor.compress(view[offset : offset + _CHUNK]))
    out.append(compressor.flush())
    length = sum(len(piece) for piece in out)
    octets = b"\x04" + _der_len(length)
    encap_len = len(OID_DATA) + 1 + len(_der_len(len(octets) + length)) + len(octets) + length
    encap = b"\x30" + _der_len(encap_len) + OID_DATA + b"\xa0" + _der_len(len(octets) + length)
    algorithm = _seq(OID_ZLIB)
    inner_len = 3 + len(algorithm) + len(encap) + len(octets) + length
    inner = b"\x30" + _der_len(inner_len) + b"\x02\x01\x00" + algorithm + encap + octets
    # [0] EXPLICIT wraps the whole CompressedData, its own header included
    wrapped_len = len(inner) + length
    explicit = b"\xa0" + _der_len(wrapped_len)
    info_len = len(OID_COMPRESSED_DATA) + len(explicit) + wrapped_len
    head = b"\x30" + _der_len(info_len) + OID_COMPRESSED_DATA + explicit + inner
    return [head, *(piece for piece in out if piece)]


def _utc_time() -> bytes:
    return _tlv(0x17, time.strftime("%y%m%d%H%M%SZ", time.gmtime()).encode())


def _signed_attributes(message_digest: bytes) -> bytes:
    """The content of pyas2lib's signed attributes (a SET OF without its tag)."""
    return b"".join(
        (
            _seq(OID_CONTENT_TYPE, _tlv(0x31, OID_DATA)),
            _seq(OID_SIGNING_TIME, _tlv(0x31, _utc_time())),
            _seq(OID_MESSAGE_DIGEST, _tlv(0x31, _tlv(0x04, message_digest))),
            _SMIME_CAPABILITIES,
        )
    )


def _sign(message_digest: bytes, digest: str, pair: _KeyPair) -> bytes:
    """A detached CMS SignedData over content whose digest is ``message_digest``."""
    assert pair.certificate is not None
    attributes = _signed_attributes(message_digest)
    hash_algorithm = _HASHES[digest]()
    key = pair.key
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(_tlv(0x31, attributes), padding.PKCS1v15(), hash_algorithm)
        signature_algorithm = _seq(OID_RSA, _NULL)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(_tlv(0x31, attributes), ec.ECDSA(hash_algorithm))
        signature_algorithm = _seq(_ECDSA_OIDS[digest])
    else:
        raise ValueError("Only RSA and EC keys can sign.")
    digest_algorithm = _seq(_DIGEST_OIDS[digest], _NULL)
    signer_info = _seq(
        b"\x02\x01\x01",
        pair.certificate.issuer_and_serial,
        digest_algorithm,
        _tlv(0xA0, attributes),
        signature_algorithm,
        _tlv(0x04, signature),
    )
    signed_data = _seq(
        b"\x02\x01\x01",
        _tlv(0x31, digest_algorithm),
        _seq(OID_DATA),
        _tlv(0xA0, pair.certificate.der),
        _tlv(0x31, signer_info),
    )
    return _seq(OID_SIGNED_DATA, _tlv(0xA0, signed_data))


_ECDSA_OIDS = {
    "sha1": _oid("1.2.840.10045.4.1"),
    "sha224": _oid("1.2.840.10045.4.3.1"),
    "sha256": _oid("1.2.840.10045.4.3.2"),
    "sha384": _oid("1.2.840.10045.4.3.3"),
    "sha512": _oid("1.2.840.10045.4.3.4"),
}


def _envelope(pieces: list[bytes], encryption: str, recipient: _Certificate) -> bytes:
    """A CMS EnvelopedData (RSA PKCS#1 v1.5 key transport, CBC content encryption) of the
    pieces, DER as pyas2lib writes it, encrypted straight into the result's own buffer."""
    oid, key_size, block = _CIPHERS[encryption]
    key = os.urandom(key_size)
    iv = os.urandom(block)
    public_key = recipient.certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError("Only RSA certificates can be encrypted to.")
    encrypted_key = public_key.encrypt(key, padding.PKCS1v15())
    plain_length = sum(len(piece) for piece in pieces)
    pad = block - plain_length % block
    cipher_length = plain_length + pad
    recipient_info = _seq(
        b"\x02\x01\x00",
        recipient.issuer_and_serial,
        _seq(OID_RSA, _NULL),
        _tlv(0x04, encrypted_key),
    )
    encrypted_head = (
        OID_DATA + _seq(oid, _tlv(0x04, iv)) + b"\x80" + _der_len(cipher_length)
    )  # [0] IMPLICIT encryptedContent follows
    encrypted_info_len = len(encrypted_head) + cipher_length
    enveloped_content_len = (
        3 + len(_tlv(0x31, recipient_info)) + 1 + len(_der_len(encrypted_info_len))
    ) + encrypted_info_len
    enveloped_len = 1 + len(_der_len(enveloped_content_len)) + enveloped_content_len
    info_content_len = len(OID_ENVELOPED_DATA) + 1 + len(_der_len(enveloped_len)) + enveloped_len
    head = b"".join(
        (
            b"\x30" + _der_len(info_content_len),
            OID_ENVELOPED_DATA,
            b"\xa0" + _der_len(enveloped_len),
            b"\x30" + _der_len(enveloped_content_len),
            b"\x02\x01\x00",
            _tlv(0x31, recipient_info),
            b"\x30" + _der_len(encrypted_info_len),
            encrypted_head,
        )
    )
    total = len(head) + cipher_length
    encryptor = Cipher(_cipher(encryption, key), modes.CBC(iv)).encryptor()
    out = _Filler(total)
    out.write(head)
    for piece in [*pieces, bytes((pad,)) * pad]:
        view = memoryview(piece)
        for offset in range(0, len(view), _CHUNK):
            out.encrypt(encryptor, view[offset : offset + _CHUNK])
    tail = encryptor.finalize()
    if tail:
        out.write(tail)
    return out.result()


class _Filler:
    """Writes a bytes object in place: io.BytesIO hands its own buffer over to ``getvalue()``
    without a copy, so a large result is held once, not twice. With a size the buffer is made
    that large up front (``write``, ``encrypt``); without, it grows (``append``)."""

    def __init__(self, size: int = 0) -> None:
        self._io = io.BytesIO()
        self._size = size
        self._view: memoryview | None = None
        if size:
            self._io.seek(size - 1)
            self._io.write(b"\0")
            self._view = self._io.getbuffer()
        self.position = 0

    def append(self, data: bytes) -> None:
        self._io.write(data)
        self.position += len(data)

    def write(self, data: bytes | memoryview) -> None:
        assert self._view is not None
        self._view[self.position : self.position + len(data)] = data
        self.position += len(data)

    def encrypt(self, context: Any, data: memoryview) -> None:
        assert self._view is not None
        room = self._size - self.position
        if room >= len(data) + 31:
            self.position += context.update_into(data, self._view[self.position :])
        else:
            self.write(context.update(data))

    def cut(self, start: int, end: int) -> bytes:
        """The result's bytes [start, end) as the result, moved within the buffer."""
        view = self._io.getbuffer()
        view[0 : end - start] = view[start:end]
        view.release()
        self._io.truncate(end - start)
        return self._io.getvalue()

    def result(self, length: int | None = None) -> bytes:
        if self._view is not None:
            self._view.release()
            self._view = None
        self._io.truncate(self.position if length is None else length)
        return self._io.getvalue()


# --- parsing ------------------------------------------------------------------------------------


class _Failure(Exception):
    def __init__(self, modifier: str, reason: str) -> None:
        super().__init__(reason)
        self.modifier = modifier
        self.reason = reason


@dataclass(slots=True)
class _Entity:
    """A MIME entity inside ``data``: its headers and where its body lies."""

    data: bytes
    headers: list[tuple[str, str]]
    start: int  # where its headers begin (the raw signed part starts here)
    body_start: int
    end: int
    # The buffer ``data`` was decrypted into, when only this module holds it: the payload is
    # then cut out of it in place instead of copied (see _payload).
    owner: _Filler | None = None

    def get(self, name: str) -> str | None:
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return None

    def content_type(self) -> tuple[str, dict[str, str]]:
        return _parse_content_type(self.get("content-type"))

    def cte(self) -> str:
        return (self.get("content-transfer-encoding") or "").strip().lower()


_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def _parse_content_type(value: str | None) -> tuple[str, dict[str, str]]:
    if not value:
        return "text/plain", {}
    main, _, _rest = value.partition(";")
    params = {}
    for match in _PARAM.finditer(value[len(main) :]):
        raw = match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[match.group(1).lower()] = raw
    return main.strip().lower(), params


_EOL = re.compile(rb"\r\n|\r|\n")


def _parse_entity(data: bytes, start: int, end: int, owner: _Filler | None = None) -> _Entity:
    """Headers of the entity in data[start:end] (as the email package's compat32 parser reads
    them, folded lines kept) and where its body starts."""
    headers: list[tuple[str, str]] = []
    pos = start
    name: str | None = None
    value = ""
    while pos < end and pos - start < _MAX_HEADERS:
        match = _EOL.search(data, pos, min(end, pos + 65536))
        line_end, next_pos = (match.start(), match.end()) if match else (end, end)
        line = data[pos:line_end]
        if not line:
            pos = next_pos
            break
        text = line.decode("latin-1")
        if text[0] in " \t" and name is not None:
            value += "\r\n" + text
        elif ":" in text:
            if name is not None:
                headers.append((name, value))
            name, _, value = text.partition(":")
            value = value.lstrip(" \t")
        else:
            # Not a header line: the body starts here (no blank line), as the email package does.
            break
        pos = next_pos
    if name is not None:
        headers.append((name, value))
    return _Entity(
        data=data, headers=headers, start=start, body_start=min(pos, end), end=end, owner=owner
    )


def _body(entity: _Entity) -> tuple[bytes, int, int]:
    """The entity's body decoded from its transfer encoding, as (data, start, end)."""
    cte = entity.cte()
    if cte == "base64":
        raw = binascii.a2b_base64(entity.data[entity.body_start : entity.end])
        return raw, 0, len(raw)
    if cte == "quoted-printable":
        raw = binascii.a2b_qp(entity.data[entity.body_start : entity.end])
        return raw, 0, len(raw)
    return entity.data, entity.body_start, entity.end


@dataclass(slots=True)
class _State:
    signed: bool = False
    encrypted: bool = False
    compressed: bool = False
    mic: str | None = None
    mic_algorithm: str | None = None


def parse_message(
    headers: Sequence[tuple[str, str]],
    body: bytes,
    us: OurIdentity | Sequence[OurIdentity],
    partner: PartnerIdentity | Sequence[PartnerIdentity],
    payload_limit: int | None = None,
    *,
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
    require_signed: bool = False,
    require_encrypted: bool = False,
) -> InboundMessage:
    """Decrypt, verify and decompress one inbound AS2 request, in whatever order the sender
    layered them, and build the MDN it asked for: what
    :func:`core.as2.messages.parse_inbound_message` returns, much faster.

    ``us`` may list several identities with the same AS2 id (our current key first: it signs
    the MDN; older ones still decrypt); ``partner`` may list several (certificate rollover: any
    certificate verifies), and a certificate PEM may hold several certificates.

    A payload over ``payload_limit`` bytes is refused as messages.parse_inbound_message refuses
    it (``decompression-failed`` when compressed, else ``unexpected-processing-error``);
    decompression stops as soon as the limit (or ``max_decompressed``) is passed, so a bomb
    never inflates. Never raises for what a partner sends; raises
    :class:`OwnConfigurationError` when our key or the partner's certificate cannot be read.
    Blocking: run it in a thread.
    """
    ours = [us] if isinstance(us, OurIdentity) else list(us)
    partners = [partner] if isinstance(partner, PartnerIdentity) else list(partner)
    if not ours or not partners:
        raise ValueError("parse_message needs our identity and the partner's.")
    outer = {name.lower(): value for name, value in headers}
    raw_id = outer.get("message-id")
    message_id = raw_id.lstrip("<").rstrip(">") if raw_id is not None else None
    state = _State()
    payload = b""
    content_type: str | None = None
    filename: str | None = None
    modifier: str | None = None
    reason: str | None = None
    known = False
    keys: _Keys | None = None
    too_large = f"The payload is larger than the {payload_limit} bytes this gateway accepts."
    limit = max_decompressed
    if payload_limit is not None:
        # The decompressed entity is the payload and its MIME headers.
        limit = min(limit, payload_limit + _MAX_HEADERS)
    try:
        org_id = email_utils.unquote(outer["as2-to"])
        partner_id = email_utils.unquote(outer["as2-from"])
        ours = [identity for identity in ours if identity.as2_id == org_id]
        partners = [identity for identity in partners if identity.as2_id == partner_id]
        known = bool(ours and partners)
        if not known:
            who = f"AS2-From '{outer.get('as2-from')}' to AS2-To '{outer.get('as2-to')}'"
            raise _Failure(
                AUTHENTICATION_FAILED, f"Unknown trading partner: {who} is not configured."
            )
        keys = _load_keys(ours, partners)
        body = body if isinstance(body, bytes) else bytes(body)
        top = _Entity(data=body, headers=list(headers), start=0, body_start=0, end=len(body))
        entity = _unwrap(top, keys, state, limit)
        for required, done, what in (
            (require_encrypted, state.encrypted, "encrypted"),
            (require_signed, state.signed, "signed"),
        ):
            if required and not done:
                raise _Failure(
                    INSUFFICIENT_SECURITY,
                    f"Incoming messages from partner {partner_id} are must be {what} "
                    f"but {what} message not found.",
                )
        payload = _payload(entity)
        if payload_limit is not None and len(payload) > payload_limit:
            raise _Failure(
                DECOMPRESSION_FAILED if state.compressed else UNEXPECTED_ERROR, too_large
            )
        own_type = entity.get("content-type")
        content_type = own_type
        filename = _filename(entity.get("content-disposition"))
        if not filename:
            transport = _filename(outer.get("content-disposition"))
            if transport and not transport.lower().endswith(_SMIME_SUFFIXES):
                filename = transport
    except _Failure as failure:
        modifier, reason = failure.modifier, failure.reason
        if modifier == DECOMPRESSION_FAILED and reason == _TOO_MUCH and payload_limit is not None:
            reason = too_large
    except OwnConfigurationError:
        raise
    except Exception as error:  # noqa: BLE001 - a partner's message must never raise
        modifier = UNEXPECTED_ERROR
        reason = f"The message could not be processed ({type(error).__name__})."
    ok = modifier is None
    if not ok:
        state.mic = state.mic_algorithm = None
        payload = b""
        content_type = filename = None
    mdn = _mdn(outer, message_id, modifier, state, keys.ours[0] if keys else None)
    return InboundMessage(
        message_id=message_id,
        as2_from=outer.get("as2-from"),
        as2_to=outer.get("as2-to"),
        payload=payload,
        content_type=content_type,
        filename=filename,
        signed=state.signed,
        encrypted=state.encrypted,
        compressed=state.compressed,
        mic=state.mic,
        mic_algorithm=state.mic_algorithm,
        disposition=PROCESSED if ok else f"processed/error: {modifier}",
        reason=reason,
        mdn=mdn,
        receipt_delivery_option=outer.get("receipt-delivery-option"),
    )


def _unwrap(entity: _Entity, keys: _Keys, state: _State, max_decompressed: int) -> _Entity:
    """Peel the S/MIME layers off until the payload entity remains."""
    for _ in range(_MAX_LAYERS):
        main, params = entity.content_type()
        if main in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
            data, start, end = _body(entity)
            kind, _inner = _content_info(data, start, end)
            if kind == OID_ENVELOPED_DATA:
                state.encrypted = True
                entity = _decrypt(data, start, end, keys.ours)
                if entity.get("content-type") is None:
                    # Mendelson encrypts a bare payload, no MIME headers: all of it is the
                    # payload, typed as pyas2lib types it.
                    entity = _Entity(
                        data=entity.data,
                        headers=[("Content-Type", "application/edi-consent")],
                        start=0,
                        body_start=0,
                        end=entity.end,
                        owner=entity.owner,
                    )
                continue
            if kind == OID_COMPRESSED_DATA:
                state.compressed = True
                entity = _decompress(data, start, end, max_decompressed)
                continue
            if kind == OID_SIGNED_DATA:
                raise _Failure(
                    UNEXPECTED_ERROR, "Opaque signed messages (signed-data) are not supported."
                )
            raise _Failure(UNEXPECTED_ERROR, "Unknown CMS content in the message.")
        if main == "multipart/signed":
            state.signed = True
            entity = _verify(entity, params, keys.certificates, state)
            continue
        return entity
    raise _Failure(UNEXPECTED_ERROR, f"More than {_MAX_LAYERS} S/MIME layers in the message.")


def _payload(entity: _Entity) -> bytes:
    """The payload's bytes. When they lie in a decryption buffer only this module holds, they
    are moved to its front and the buffer becomes the result: no second copy of a large
    payload. (Were the buffer still shared, io.BytesIO would copy it: slower, never wrong.)"""
    data, start, end = _body(entity)
    if start == 0 and end == len(data):
        return data
    owner = entity.owner
    if owner is None or data is not entity.data:
        return data[start:end]
    entity.data = b""
    entity.owner = None
    del data
    return owner.cut(start, end)


# --- decryption ---------------------------------------------------------------------------------


def _decrypt(data: bytes, start: int, end: int, ours: list[_KeyPair]) -> _Entity:
    try:
        _kind, enveloped = _content_info(data, start, end)
        fields = _children(data, enveloped, end)
        position = 1
        if data[fields[position]] == 0xA0:  # originatorInfo
            position += 1
        recipient_infos = asn1_cms.RecipientInfos.load(_element(data, fields[position], end))
        encrypted_info = fields[position + 1]
        content_fields = _children(data, encrypted_info, end)
        algorithm = asn1_algos.EncryptionAlgorithm.load(_element(data, content_fields[1], end))
        if len(content_fields) < 3:
            raise _Failure(DECRYPTION_FAILED, _decrypt_reason("no encrypted content"))
        chunks = _octets(data, content_fields[2], end)
    except _Failure:
        raise
    except Exception as error:
        raise _Failure(
            DECRYPTION_FAILED, _decrypt_reason(f"Encrypted data not found in ASN.1 ({error})")
        ) from error
    try:
        cipher_name = algorithm.encryption_cipher
    except Exception:  # noqa: BLE001 - rc4 and unknown algorithms have no cipher name here
        cipher_name = str(algorithm["algorithm"].native)
    if cipher_name not in ("aes", "tripledes"):
        raise _Failure(
            DECRYPTION_FAILED, _decrypt_reason(f"Unsupported Encryption Algorithm {cipher_name}")
        )
    key_size = algorithm.key_length
    iv = algorithm.encryption_iv
    plain: bytes | None = None
    last_error = "Could not extract decryption key."
    for recipient_key, private_key, key_padding in _recipient_keys(recipient_infos, ours):
        try:
            key = private_key.decrypt(recipient_key, key_padding)
        except Exception:  # noqa: BLE001 - try the next key
            continue
        if len(key) != key_size:
            continue  # RSA implicit rejection: a wrong key yields random bytes
        try:
            plain, length, owner = _decrypt_content(data, chunks, cipher_name, key, iv)
        except ValueError as error:
            last_error = str(error)
            continue
        return _parse_entity(plain, 0, length, owner)
    raise _Failure(DECRYPTION_FAILED, _decrypt_reason(last_error))


def _decrypt_reason(detail: str) -> str:
    return (
        f"The message could not be decrypted with our key: Failed to decrypt the payload: {detail}"
    )


def _recipient_keys(recipient_infos: Any, pairs: list[_KeyPair]) -> list[tuple[bytes, Any, Any]]:
    """(encrypted key, private key, RSA padding) to try: recipients naming our certificates
    first."""
    matched: list[tuple[bytes, Any, Any]] = []
    others: list[tuple[bytes, Any, Any]] = []
    for info in recipient_infos:
        if info.name != "ktri":
            continue
        ktri = info.chosen
        encrypted_key = ktri["encrypted_key"].native
        rid = ktri["rid"]
        try:
            key_padding = _key_transport_padding(ktri["key_encryption_algorithm"])
        except Exception:  # noqa: BLE001 - a scheme we do not know cannot be ours
            continue
        for pair in pairs:
            certificate = pair.certificate
            names_us = certificate is not None and (
                (
                    rid.name == "issuer_and_serial_number"
                    and rid.chosen.dump() == certificate.issuer_and_serial
                )
                or (
                    rid.name == "subject_key_identifier"
                    and rid.chosen.native == certificate.subject_key_id
                )
            )
            (matched if names_us else others).append((encrypted_key, pair.key, key_padding))
    return matched + others


def _key_transport_padding(algorithm: Any) -> Any:
    """RSA PKCS#1 v1.5 (what AS2 products send) or RSAES-OAEP with its parameters."""
    name = algorithm["algorithm"].native
    if name == "rsaes_pkcs1v15":
        return padding.PKCS1v15()
    if name != "rsaes_oaep":
        raise ValueError(f"Unsupported Key Encryption Algorithm {name}")
    params = algorithm["parameters"]
    digest = _digest_name(str(params["hash_algorithm"]["algorithm"].native))
    mgf_digest = _digest_name(str(params["mask_gen_algorithm"]["parameters"]["algorithm"].native))
    return padding.OAEP(
        mgf=padding.MGF1(_HASHES[mgf_digest]()), algorithm=_HASHES[digest](), label=None
    )


def _decrypt_content(
    data: bytes, chunks: list[tuple[int, int]], cipher_name: str, key: bytes, iv: bytes
) -> tuple[bytes, int, _Filler]:
    """Decrypt into one buffer (the result, not a copy): (plaintext, its length without the
    padding, the buffer)."""
    total = sum(stop - begin for begin, stop in chunks)
    block = 8 if cipher_name == "tripledes" else 16
    if total == 0 or total % block:
        raise ValueError("The encrypted content is not a whole number of blocks.")
    algorithm = TripleDES(key) if cipher_name == "tripledes" else algorithms.AES(key)
    decryptor = Cipher(algorithm, modes.CBC(iv)).decryptor()
    out = _Filler(total + 32)
    view = memoryview(data)
    for begin, stop in chunks:
        for offset in range(begin, stop, _CHUNK):
            out.encrypt(decryptor, view[offset : min(stop, offset + _CHUNK)])
    tail = decryptor.finalize()
    if tail:
        out.write(tail)
    plain = out.result()
    pad = plain[-1]
    if not 1 <= pad <= block or plain[-pad:] != bytes((pad,)) * pad:
        raise ValueError("Invalid padding bytes.")
    return plain, len(plain) - pad, out


# --- decompression ------------------------------------------------------------------------------


_TOO_MUCH = "Decompression failed with cause: the content decompresses beyond the limit."


def _decompress(data: bytes, start: int, end: int, limit: int) -> _Entity:
    try:
        _kind, compressed = _content_info(data, start, end)
        fields = _children(data, compressed, end)
        algorithm = _element(data, _children(data, fields[1], end)[0], end)
        if algorithm != OID_ZLIB:
            raise ValueError("Unsupported compression algorithm")
        encap = _children(data, fields[2], end)
        chunks = _octets(data, _children(data, encap[1], end)[0], end)
        decompressor = zlib.decompressobj()
        out = _Filler()
        view = memoryview(data)
        too_much = _TOO_MUCH
        for begin, stop in chunks:
            for offset in range(begin, stop, _CHUNK):
                pending: bytes | memoryview = view[offset : min(stop, offset + _CHUNK)]
                while pending:
                    out.append(decompressor.decompress(pending, 8 * _CHUNK))
                    if out.position > limit:
                        raise _Failure(DECOMPRESSION_FAILED, too_much)
                    pending = decompressor.unconsumed_tail
        out.append(decompressor.flush())
        if out.position > limit:
            raise _Failure(DECOMPRESSION_FAILED, too_much)
        if not decompressor.eof:
            raise ValueError("incomplete zlib stream")
    except _Failure:
        raise
    except Exception as error:
        raise _Failure(DECOMPRESSION_FAILED, f"Decompression failed with cause: {error}") from error
    plain = out.result()
    return _parse_entity(plain, 0, len(plain), out)


# --- signature verification ---------------------------------------------------------------------


def _verify(
    entity: _Entity, params: dict[str, str], certificates: list[_Certificate], state: _State
) -> _Entity:
    boundary = params.get("boundary")
    if not boundary:
        raise _Failure(UNEXPECTED_ERROR, "A multipart/signed message without a boundary.")
    data, start, end = _body(entity)
    first, second = _signed_parts(data, start, end, boundary.encode("latin-1"))
    owner = entity.owner if data is entity.data else None
    content = _parse_entity(data, first[0], first[1], owner)
    signature_part = _parse_entity(data, second[0], second[1])
    sig_data, sig_start, sig_end = _body(signature_part)
    digest, content_digest = _check_signature(sig_data[sig_start:sig_end], content, certificates)
    state.mic_algorithm = digest
    state.mic = base64.b64encode(content_digest).decode("ascii")
    return content


def _after_eol(data: bytes, pos: int, end: int) -> int:
    match = _EOL.search(data, pos, min(end, pos + 4096))
    return match.end() if match else end


def _before_eol(data: bytes, begin: int, stop: int) -> int:
    if stop - 2 >= begin and data[stop - 2 : stop] == b"\r\n":
        return stop - 2
    if stop - 1 >= begin and data[stop - 1] in b"\r\n":
        return stop - 1
    return stop


def _signed_parts(
    data: bytes, start: int, end: int, boundary: bytes
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(start, end) of the signed part and of the signature part; the line end before a
    delimiter belongs to the delimiter (RFC 2046). The first delimiter is searched from the
    front, the last two from the back: a large payload is not scanned line by line."""
    delimiter = b"--" + boundary
    pos = start
    while True:
        first = data.find(delimiter, pos, end)
        if first < 0:
            raise _Failure(UNEXPECTED_ERROR, "The signed message has no parts.")
        if first == start or data[first - 1] in b"\r\n":
            break
        pos = first + 1
    marks: list[int] = []
    pos = end
    while len(marks) < 2:
        found = data.rfind(delimiter, first + 1, pos)
        if found < 0:
            break
        if data[found - 1] in b"\r\n":
            marks.insert(0, found)
        pos = found
    if marks and data.startswith(delimiter + b"--", marks[-1]):
        if len(marks) < 2:
            raise _Failure(UNEXPECTED_ERROR, "The signed message has no signature.")
        signature_mark, closing = marks[0], marks[1]
    elif marks:
        signature_mark, closing = marks[-1], end  # no closing delimiter
    else:
        raise _Failure(UNEXPECTED_ERROR, "The signed message has no signature.")
    content_start = _after_eol(data, first, end)
    signature_start = _after_eol(data, signature_mark, end)
    return (
        (content_start, max(content_start, _before_eol(data, content_start, signature_mark))),
        (signature_start, max(signature_start, _before_eol(data, signature_start, closing))),
    )


def _as_received(content: _Entity) -> list[bytes | memoryview]:
    """The signed part exactly as received (RFC 1847)."""
    return [memoryview(content.data)[content.start : content.end]]


def _canonical(content: _Entity) -> list[bytes | memoryview]:
    """The signed part as pyas2lib re-serialises it (pyas2lib.utils.canonicalize)."""
    if content.get("content-transfer-encoding") == "binary":
        head = "".join(f"{name}: {value}\r\n" for name, value in content.headers) + "\r\n"
        return [head.encode("latin-1"), memoryview(content.data)[content.body_start : content.end]]
    return [_mime_to_bytes(content.data[content.start : content.end])]


def _check_signature(
    signature: bytes, content: _Entity, certificates: list[_Certificate]
) -> tuple[str, bytes]:
    """Verify every signer as pyas2lib does: (digest algorithm, digest of the content)."""
    try:
        info = asn1_cms.ContentInfo.load(signature)
        if info["content_type"].native != "signed_data":
            raise ValueError("Signed data not found in ASN.1")
        signers = list(info["content"]["signer_infos"])
    except Exception as error:
        raise _Failure(
            AUTHENTICATION_FAILED,
            f"The signature is not the partner's: Failed to verify message signature: {error}",
        ) from error
    if not signers:
        raise _Failure(AUTHENTICATION_FAILED, "The signature is not the partner's: no signer.")
    digest_name = ""
    content_digest = b""
    for signer in signers:
        digest_name = _digest_name(str(signer["digest_algorithm"]["algorithm"].native))
        if digest_name not in _HASHES:
            raise _Failure(UNEXPECTED_ERROR, "Unsupported Digest Algorithm")
        digests = [_digest(digest_name, _as_received(content))]
        attributes = signer["signed_attrs"]
        signed_bytes: bytes | None = None
        if not isinstance(attributes, asn1_core.Void):
            claimed = b""
            for attribute in attributes:
                if attribute["type"].native == "message_digest":
                    claimed = b"".join(attribute["values"].native)
            if digests[0] != claimed:
                # Not as received: as pyas2lib re-serialises it (only now, it costs a pass).
                digests.append(_digest(digest_name, _canonical(content)))
                if digests[1] != claimed:
                    raise _Failure(
                        INTEGRITY_CHECK_FAILED, "The content was altered after it was signed."
                    )
                digests = digests[1:]
            signed_bytes = _tlv(0x31, attributes.contents)
        else:
            digests.append(_digest(digest_name, _canonical(content)))
        why, verified = _verify_signer(signer, digest_name, signed_bytes, digests, certificates)
        if why is not None:
            raise _Failure(
                AUTHENTICATION_FAILED,
                f"The signature is not the partner's: Failed to verify message signature: {why}",
            )
        content_digest = verified
    return digest_name, content_digest


def _digest(name: str, pieces: Iterable[bytes | memoryview]) -> bytes:
    hasher = hashlib.new(name)
    for piece in pieces:
        hasher.update(piece)
    return hasher.digest()


def _verify_signer(
    signer: Any,
    digest_name: str,
    signed_bytes: bytes | None,
    digests: list[bytes],
    certificates: list[_Certificate],
) -> tuple[str | None, bytes]:
    """(None, the content digest) when one of the certificates verifies the signer, else
    (why not, b"")."""
    signature = signer["signature"].native
    algorithm = signer["signature_algorithm"]
    try:
        scheme = algorithm.signature_algo
    except Exception:  # noqa: BLE001
        scheme = "rsassa_pkcs1v15"
    hash_algorithm = _HASHES[digest_name]()
    error = "no certificate"
    for certificate in certificates:
        public_key = certificate.certificate.public_key()
        targets: list[tuple[bytes, bool]] = (
            [(signed_bytes, False)] if signed_bytes is not None else [(d, True) for d in digests]
        )
        for message, prehashed in targets:
            chosen: Any = Prehashed(hash_algorithm) if prehashed else hash_algorithm
            try:
                if isinstance(public_key, rsa.RSAPublicKey):
                    if scheme == "rsassa_pss":
                        params = algorithm["parameters"]
                        mgf = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
                        mgf_hash = _HASHES[_digest_name(str(mgf))]()
                        salt = params["salt_length"].native
                        public_key.verify(
                            signature, message, padding.PSS(padding.MGF1(mgf_hash), salt), chosen
                        )
                    else:
                        public_key.verify(signature, message, padding.PKCS1v15(), chosen)
                elif isinstance(public_key, ec.EllipticCurvePublicKey):
                    public_key.verify(signature, message, ec.ECDSA(chosen))
                else:
                    error = "unsupported certificate key"
                    continue
                return None, message if prehashed else digests[0]
            except InvalidSignature:
                error = "Signature is invalid"
            except Exception as failure:  # noqa: BLE001
                error = str(failure) or type(failure).__name__
    return error, b""


# pyas2lib's canonical form of a part that is not binary: the email package re-serialises it.
class _BinaryBytesGenerator(BytesGenerator):
    def _handle_text(self, msg: Any) -> None:
        if (
            msg.get_content_type() == "application/octet-stream"
            or msg.get("Content-Transfer-Encoding") == "binary"
        ):
            payload = msg.get_payload(decode=True)
            if payload is not None:
                self._fp.write(payload)  # type: ignore[attr-defined]
        else:
            super()._handle_text(msg)  # type: ignore[misc]

    _writeBody = _handle_text  # noqa: N815


def _mime_to_bytes(raw: bytes) -> bytes:
    out = io.BytesIO()
    _BinaryBytesGenerator(out, policy=email_policy.HTTP).flatten(message_from_bytes(raw))
    return out.getvalue()


def _filename(content_disposition: str | None) -> str | None:
    if content_disposition is None:
        return None
    probe = MimeMessage()
    probe["Content-Disposition"] = content_disposition
    return probe.get_filename()


# --- MDN ----------------------------------------------------------------------------------------


def _mdn_digest(options: str) -> str:
    """The first digest of signed-receipt-micalg we support (RFC 4130 §7.3: honoured left to
    right); sha256 when none is."""
    for parameter in options.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() != "signed-receipt-micalg":
            continue
        for token in value.split(","):
            digest = _digest_name(token)
            if digest in DIGESTS:
                return digest
    return "sha256"


def _signed_mdn(
    report_type: str, report_body: bytes, options: str, signer: _KeyPair | None
) -> tuple[bytes, str] | None:
    """(body, Content-Type) of the MDN signed with our key, as pyas2lib signs it; None when we
    cannot sign (partner unknown, no usable key): the MDN then goes unsigned."""
    if signer is None:
        return None
    try:
        pair = signer
        if pair.certificate is None:
            return None
        digest = _mdn_digest(options)
        signed_content = f"Content-Type: {report_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
        signed_content += report_body
        signature = _sign(hashlib.new(digest, signed_content).digest(), digest, pair)
    except Exception:  # noqa: BLE001 - an MDN is owed even when our key fails
        return None
    boundary = _boundary()
    body = b"".join(
        (
            f"--{boundary}\r\n".encode(),
            signed_content,
            f"\r\n--{boundary}\r\n".encode(),
            _SIGNATURE_HEAD,
            base64.encodebytes(signature).replace(b"\n", b"\r\n"),
            f"\r\n--{boundary}--\r\n".encode(),
        )
    )
    content_type = (
        'multipart/signed; protocol="application/pkcs7-signature"; '
        f'micalg="{digest}"; boundary="{boundary}"'
    )
    return body, content_type


def _mdn(
    outer: dict[str, str],
    message_id: str | None,
    modifier: str | None,
    state: _State,
    signer: _KeyPair | None,
) -> OutboundMdn | None:
    """The MDN pyas2lib would send, with our (RFC 4130) disposition."""
    if not outer.get("disposition-notification-to"):
        return None
    as2_to = outer.get("as2-to") or ""
    as2_from = outer.get("as2-from") or ""
    status = "processed" if modifier is None else f"processed/Error: {modifier}"
    text = MDN_CONFIRM_TEXT if modifier is None else MDN_FAILED_TEXT
    report = (
        f"Reporting-UA: {REPORTING_UA}\r\n"
        f"Original-Recipient: rfc822; {as2_to}\r\n"
        f"Final-Recipient: rfc822; {as2_to}\r\n"
        f"Original-Message-ID: <{message_id}>\r\n"
        f"Disposition: automatic-action/MDN-sent-automatically; {status}\r\n"
    )
    if state.mic and modifier is None:
        report += f"Received-content-MIC: {state.mic}, {state.mic_algorithm}\r\n"
    inner = _boundary()
    report_type = f'multipart/report; report-type="disposition-notification"; boundary="{inner}"'
    report_body = (
        f"--{inner}\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
        f"{text}\r\n\r\n"
        f"--{inner}\r\nContent-Type: message/disposition-notification\r\n"
        f"Content-Transfer-Encoding: 7bit\r\n\r\n{report}\r\n--{inner}--\r\n"
    ).encode()
    domain = re.sub(r"[^A-Za-z0-9.-]", "", as2_to) or "localhost"
    headers: list[tuple[str, str]] = []
    options = outer.get("disposition-notification-options")
    signed = _signed_mdn(report_type, report_body, options, signer) if options else None
    if signed is not None:
        body, content_type = signed
        headers.append(("Content-Type", content_type))
    else:
        body = report_body
        headers += [("Content-Type", report_type), ("MIME-Version", "1.0")]
    headers += [
        ("AS2-Version", AS2_VERSION),
        ("ediint-features", EDIINT_FEATURES),
        ("Message-ID", f"<{uuid.uuid4().hex}@{domain}>"),
        ("AS2-From", _quote_as2name(as2_to)),
        ("AS2-To", _quote_as2name(as2_from)),
        ("Date", email_utils.formatdate(localtime=True)),
        ("user-agent", REPORTING_UA),
    ]
    return OutboundMdn(headers=tuple(headers), body=body)
