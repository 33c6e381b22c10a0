"""Outbound AS2 messages: compress, then sign, then encrypt a payload, as pyas2lib does.

:func:`build_message` layers the MIME entity, computes the MIC to expect in the MDN (RFC 4130
§7.3.1) and writes the AS2 headers; the CMS structures come from
:mod:`~core.as2.cms.compression`, :mod:`~core.as2.cms.signature` and
:mod:`~core.as2.cms.envelope`.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from email import utils as email_utils

from core.as2.cms.algorithms import CIPHERS, DIGESTS, ENCRYPTIONS, HASHES, normalize_digest_name
from core.as2.cms.compression import compressed_data
from core.as2.cms.envelope import envelope
from core.as2.cms.keys import load_certificates, load_key_pair
from core.as2.cms.mime import (
    AS2_VERSION,
    EDIINT_FEATURES,
    disposition,
    new_boundary,
    quote_as2name,
)
from core.as2.cms.signature import SIGNATURE_HEAD, sign


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
    if signing and (digest is None or normalize_digest_name(digest) not in DIGESTS):
        raise ValueError(f"Signing needs a digest, one of {DIGESTS}.")
    if encrypt_cert_pem is not None and encryption not in CIPHERS:
        raise ValueError(f"Encryption needs an algorithm, one of {ENCRYPTIONS}.")

    head = f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: binary\r\n"
    if filename:
        head += f"Content-Disposition: {disposition(filename)}\r\n"
    # The current MIME entity, as pieces (its headers first) that are never joined needlessly.
    entity: list[bytes] = [(head + "\r\n").encode("utf-8"), payload]
    top: list[tuple[str, str]] = [
        ("Content-Type", content_type),
        ("Content-Transfer-Encoding", "binary"),
    ]
    if filename:
        top.append(("Content-Disposition", disposition(filename)))

    if compress:
        entity = [_COMPRESSED_HEAD_MIME, *compressed_data(entity)]
        top = [("MIME-Version", "1.0"), *_COMPRESSED_TOP]

    mic_algorithm = normalize_digest_name(digest or mdn_signed_digest or "sha256")
    if mic_algorithm not in HASHES:
        mic_algorithm = "sha256"
    body_pieces: list[bytes]
    if signing:
        assert sign_key_pem is not None
        pair = load_key_pair(sign_key_pem, sign_key_password, sign_cert_pem or b"")
        if pair.certificate is None:
            raise ValueError("Signing needs the certificate of the signing key.")
        hasher = hashlib.new(mic_algorithm)
        for piece in entity:
            hasher.update(piece)
        message_digest = hasher.digest()
        signature = sign(message_digest, mic_algorithm, pair)
        boundary = new_boundary()
        content_type_signed = (
            'multipart/signed; protocol="application/pkcs7-signature"; '
            f'micalg="{mic_algorithm}"; boundary="{boundary}"'
        )
        delimiter = f"--{boundary}\r\n".encode()
        body_pieces = [
            delimiter,
            *entity,
            b"\r\n" + delimiter,
            SIGNATURE_HEAD,
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
        body = envelope(entity, encryption, load_certificates(encrypt_cert_pem)[0])
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
        ("AS2-From", quote_as2name(as2_from)),
        ("AS2-To", quote_as2name(as2_to)),
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
