"""Certificate subjects read as names (CN=, emailAddress=), never as raw OIDs a user cannot read."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from core.as2.certificates import inspect_certificate, load_certificate_text

MENDELSON = Path(__file__).resolve().parents[1].parent / "shared" / "interop" / "mendelson"
DOTTED_OID = re.compile(r"(^|,)\d+(\.\d+)+=")


def test_the_mendelson_partner_certificate_reads_without_oids() -> None:
    pem = load_certificate_text(str(MENDELSON / "cert_mecas2_public.pem"))
    subject = inspect_certificate(pem).subject

    assert not DOTTED_OID.search(subject), subject
    assert "1.2.840.113549.1.9.1" not in subject
    assert subject == (
        "CN=mendelson test key 3,OU=Do not use in production,O=mendelson-e-commerce GmbH,"
        "L=Berlin,ST=Berlin,C=DE,emailAddress=service@mendelson.de"
    )


def test_the_pyas2lib_test_certificate_reads_without_oids() -> None:
    for name in ("cert_test.pem", "cert_test_public.pem"):
        text = (MENDELSON / name).read_text(encoding="ascii")
        start = text.index("-----BEGIN CERTIFICATE-----")  # cert_test.pem holds the key first
        end = text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
        subject = inspect_certificate(text[start:end]).subject
        assert not DOTTED_OID.search(subject), subject
        assert subject.startswith("CN=pyas2lib,")
        assert subject.endswith(",ST=Some-State,C=AU")


def certificate_with(attributes: list[x509.NameAttribute]) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(attributes)
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def test_every_named_attribute_is_named_and_only_an_unregistered_one_shows_its_oid() -> None:
    pem = certificate_with(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ACME"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, "HRB 4711"),
            x509.NameAttribute(NameOID.GIVEN_NAME, "Ada"),
            x509.NameAttribute(NameOID.SURNAME, "Lovelace"),
            x509.NameAttribute(NameOID.TITLE, "EDI lead"),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, "VATDE-123456789"),
            x509.NameAttribute(ObjectIdentifier("1.3.6.1.4.1.99999.7"), "private"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "as2@acme.example"),
            x509.NameAttribute(NameOID.COMMON_NAME, "ACME AS2"),
        ]
    )
    subject = inspect_certificate(pem).subject
    assert subject == (
        "CN=ACME AS2,emailAddress=as2@acme.example,1.3.6.1.4.1.99999.7=private,"
        "organizationIdentifier=VATDE-123456789,title=EDI lead,SN=Lovelace,GN=Ada,"
        "serialNumber=HRB 4711,O=ACME,C=DE"
    )
