"""AS2 identities: keys 0600 in 0700 directories (SPEC §9); certificates are checked on entry."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pyas2lib import as2

from core.as2.certificates import (
    CertificateInfo,
    generate_identity,
    inspect_certificate,
    load_certificate_text,
)
from core.errors import InvalidInput

MENDELSON = Path(__file__).resolve().parents[1].parent / "shared" / "interop" / "mendelson"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def make_certificate(not_before: datetime, not_after: datetime, name: str = "old partner") -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A umask of 0 would make files 0666 and directories 0777 unless the code sets modes."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("loose_umask")
def test_generate_identity_writes_a_private_key_and_a_matching_certificate(
    tmp_path: Path,
) -> None:
    key_path = tmp_path / "keys" / "as2" / "acme.key"
    identity = generate_identity("ACME AS2", key_path, valid_days=30)

    assert identity.key_path == key_path
    assert mode(key_path) == 0o600
    assert mode(key_path.parent) == 0o700
    assert mode(key_path.parent.parent) == 0o700

    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    certificate = x509.load_pem_x509_certificate(identity.certificate_pem.encode())
    assert certificate.public_key() == key.public_key()
    assert certificate.issuer == certificate.subject

    info = identity.info
    assert info == inspect_certificate(identity.certificate_pem)
    assert info.subject == "CN=ACME AS2"
    assert info.not_after - info.not_before == timedelta(days=30, hours=1)
    fingerprint = certificate.fingerprint(hashes.SHA256()).hex(":").upper()
    assert info.fingerprint_sha256 == fingerprint
    assert len(info.fingerprint_sha256) == 32 * 3 - 1


def test_generate_identity_never_overwrites_a_key(tmp_path: Path) -> None:
    key_path = tmp_path / "acme.key"
    key_path.write_text("the old identity")
    with pytest.raises(InvalidInput, match="already exists") as caught:
        generate_identity("ACME", key_path)
    assert caught.value.hint
    assert key_path.read_text() == "the old identity"


def test_generate_identity_refuses_a_directory_others_can_read(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    with pytest.raises(InvalidInput, match="accessible to other users") as caught:
        generate_identity("ACME", shared / "acme.key")
    assert "chmod 700" in caught.value.hint
    assert list(shared.iterdir()) == []


@pytest.mark.parametrize(("name", "days"), [("  ", 10), ("ACME", 0)])
def test_generate_identity_rejects_bad_input(tmp_path: Path, name: str, days: int) -> None:
    with pytest.raises(InvalidInput):
        generate_identity(name, tmp_path / "k" / "acme.key", valid_days=days)
    assert not (tmp_path / "k").exists()


def test_generated_identities_exchange_a_binary_message_with_pyas2lib(tmp_path: Path) -> None:
    """Encrypted and plain keys both load in pyas2lib; certificates pass its chain validation."""
    ours = generate_identity("us", tmp_path / "keys" / "us.key", passphrase=b"secret")
    theirs = generate_identity("them", tmp_path / "keys" / "them.key")
    assert b"ENCRYPTED PRIVATE KEY" in ours.key_path.read_bytes()

    sender_key = ours.key_path.read_bytes() + ours.certificate_pem.encode()
    receiver_key = theirs.key_path.read_bytes() + theirs.certificate_pem.encode()
    sender = as2.Organization(as2_name="us", sign_key=sender_key, sign_key_pass="secret")
    receiver = as2.Organization(as2_name="them", decrypt_key=receiver_key)
    to_them = as2.Partner(
        as2_name="them",
        encrypt_cert=theirs.certificate_pem.encode(),
        sign=True,
        encrypt=True,
        enc_alg="aes_256_cbc",
    )
    from_us = as2.Partner(
        as2_name="us", verify_cert=ours.certificate_pem.encode(), sign=True, encrypt=True
    )

    payload = bytes(range(256)) * 40 + b"\r\n\n\r.\x00"
    outgoing = as2.Message(sender, to_them)
    # application/edi-consent alters binary payloads (SPEC measurements): octet-stream does not.
    outgoing.build(payload, filename="data.bin", content_type="application/octet-stream")
    headers = b"".join(f"{k}: {v}\r\n".encode() for k, v in outgoing.headers.items())

    incoming = as2.Message()
    status, (exception, _tb), _mdn = incoming.parse(
        headers + b"\r\n" + outgoing.content,
        find_org_cb=lambda name: receiver if name == "them" else None,
        find_partner_cb=lambda name: from_us if name == "us" else None,
    )
    assert exception is None
    assert status == "processed"
    assert (incoming.signed, incoming.encrypted) == (True, True)
    assert incoming.content == payload


def test_inspect_certificate_describes_a_partner_certificate() -> None:
    pem = (MENDELSON / "cert_mecas2_public.pem").read_text()
    info = inspect_certificate(pem, now=datetime(2024, 1, 1, tzinfo=UTC))
    assert isinstance(info, CertificateInfo)
    assert "CN=mendelson test key 3" in info.subject
    assert info.not_before == datetime(2017, 12, 8, 9, 27, 56, tzinfo=UTC)
    assert info.not_after == datetime(2027, 12, 6, 9, 27, 56, tzinfo=UTC)
    assert inspect_certificate(pem.encode(), now=datetime(2024, 1, 1)) == info  # naive = UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello", "not a PEM certificate"),
        (b"\x30\x82\x01\x0a\x02", "not a PEM certificate"),
        ("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n", "damaged"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "private key"),
    ],
)
def test_inspect_certificate_rejects_what_is_not_a_certificate(
    text: str | bytes, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        inspect_certificate(text)
    assert caught.value.hint


def test_inspect_certificate_rejects_expired_and_future_certificates() -> None:
    now = datetime.now(UTC)
    expired = make_certificate(now - timedelta(days=400), now - timedelta(days=1))
    with pytest.raises(InvalidInput, match="expired on") as caught:
        inspect_certificate(expired)
    assert "renewed certificate" in caught.value.hint

    future = make_certificate(now + timedelta(days=2), now + timedelta(days=400))
    with pytest.raises(InvalidInput, match="not valid yet") as caught:
        inspect_certificate(future)
    assert "clock" in caught.value.hint
    assert inspect_certificate(future, now=now + timedelta(days=3)).subject == "CN=old partner"


def test_load_certificate_text_accepts_pasted_text_and_paths(tmp_path: Path) -> None:
    pem = (MENDELSON / "cert_mecas2_public.pem").read_text()
    assert load_certificate_text(f"\n  {pem}\n\n").strip() == pem.strip()
    assert load_certificate_text(str(MENDELSON / "cert_mecas2_public.pem")) == pem
    copy = tmp_path / "partner.pem"
    copy.write_text(pem)
    assert load_certificate_text(f"  {copy}  ") == pem


def test_load_certificate_text_explains_unusable_paths(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no file at"):
        load_certificate_text(str(tmp_path / "missing.pem"))
    with pytest.raises(InvalidInput, match="is a directory"):
        load_certificate_text(str(tmp_path))
    with pytest.raises(InvalidInput, match="No certificate given"):
        load_certificate_text("   ")
    der = tmp_path / "partner.cer"
    der.write_bytes(b"\x30\x82\x05\xff" + bytes(range(128, 256)))
    with pytest.raises(InvalidInput, match="not PEM text") as caught:
        load_certificate_text(str(der))
    assert "openssl x509 -inform der" in caught.value.hint
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.pem"
        locked.write_text("x")
        locked.chmod(0)
        with pytest.raises(InvalidInput, match="permission denied"):
            load_certificate_text(str(locked))
