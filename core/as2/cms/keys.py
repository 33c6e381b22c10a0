"""Our private keys and partners' certificates, loaded once and cached by their bytes.

Keys come as PEM (possibly password-protected, possibly carrying the certificate) or PKCS#12;
certificates as a PEM bundle (several: rollover) or one DER certificate. Each certificate is
kept with what CMS needs to name it (IssuerAndSerialNumber, subject key identifier). A key
or certificate of ours that cannot be read raises :class:`OwnConfigurationError`: that is
our configuration's fault, not the sending partner's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from core.as2.cms.asn1 import der_int, seq
from core.as2.messages import OurIdentity, PartnerIdentity


class OwnConfigurationError(ValueError):
    """Our private key or a partner's configured certificate cannot be read: not the sender's
    fault, so :func:`parse_message` raises this instead of answering with a disposition."""


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.S)


@dataclass(frozen=True, slots=True)
class Certificate:
    certificate: x509.Certificate
    der: bytes
    issuer_and_serial: bytes  # DER IssuerAndSerialNumber
    subject_key_id: bytes | None


@dataclass(frozen=True, slots=True)
class KeyPair:
    key: Any  # a cryptography private key
    certificate: Certificate | None


def _wrap_certificate(certificate: x509.Certificate) -> Certificate:
    try:
        ski: bytes | None = certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value.digest
    except x509.ExtensionNotFound:
        ski = None
    issuer = certificate.issuer.public_bytes()
    return Certificate(
        certificate=certificate,
        der=certificate.public_bytes(serialization.Encoding.DER),
        issuer_and_serial=seq(issuer, der_int(certificate.serial_number)),
        subject_key_id=ski,
    )


@lru_cache(maxsize=256)
def load_certificates(blob: bytes) -> tuple[Certificate, ...]:
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
def load_key_pair(key_blob: bytes, password: str | None, certificate_pem: bytes) -> KeyPair:
    secret = password.encode() if password else None
    certificate: Certificate | None = None
    if b"-----BEGIN" in key_blob:
        key: Any = None
        for match in _PEM_BLOCK.finditer(key_blob):
            if match.group(1).endswith(b"PRIVATE KEY"):
                key = serialization.load_pem_private_key(match.group(0), secret)
            elif match.group(1) == b"CERTIFICATE" and certificate is None:
                certificate = load_certificates(match.group(0))[0]
        if key is None:
            raise ValueError("No private key found.")
    else:
        key, cert, _extra = pkcs12.load_key_and_certificates(key_blob, secret)
        if key is None:
            raise ValueError("No private key in the PKCS#12 file.")
        certificate = _wrap_certificate(cert) if cert is not None else None
    if certificate is None and certificate_pem:
        certificate = load_certificates(certificate_pem)[0]
    return KeyPair(key=key, certificate=certificate)


def _our_key(identity: OurIdentity) -> KeyPair:
    return load_key_pair(
        identity.private_key, identity.private_key_password, identity.certificate_pem
    )


@dataclass(frozen=True, slots=True)
class Keys:
    """What a message is checked with: our key pairs (the first signs the MDN) and the
    partner's certificates."""

    ours: list[KeyPair]
    certificates: list[Certificate]


def load_keys(ours: list[OurIdentity], partners: list[PartnerIdentity]) -> Keys:
    try:
        pairs = [_our_key(identity) for identity in ours]
    except Exception as error:
        raise OwnConfigurationError(f"Our private key could not be read: {error}") from error
    try:
        certificates = [c for p in partners for c in load_certificates(p.certificate_pem)]
    except Exception as error:
        raise OwnConfigurationError(
            f"The partner's certificate could not be read: {error}"
        ) from error
    return Keys(ours=pairs, certificates=certificates)
