"""Recorded Mendelson AS2 traffic through core.as2.messages: real files, no mocks (issue 10)."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path

import pytest
from asn1crypto import cms, pem

from core.as2.certificates import generate_identity, inspect_certificate
from core.as2.messages import (
    InboundMdn,
    InboundMessage,
    OurIdentity,
    PartnerIdentity,
    parse_inbound_mdn,
    parse_inbound_message,
    split_http_request,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MENDELSON = PROJECT_ROOT.parent / "shared" / "interop" / "mendelson"
PASSWORD = "test"


@pytest.fixture(scope="module")
def us() -> OurIdentity:
    """The receiver of the vectors ("pyas2lib"), from the encrypted PKCS#8 PEM + certificate."""
    return OurIdentity(
        as2_id="pyas2lib",
        private_key=(MENDELSON / "cert_test.pem").read_bytes(),
        private_key_password=PASSWORD,
    )


@pytest.fixture(scope="module")
def mecas2() -> PartnerIdentity:
    return PartnerIdentity("mecas2", (MENDELSON / "cert_mecas2_public.pem").read_bytes())


def receive(raw: bytes, us: OurIdentity, partner: PartnerIdentity) -> InboundMessage:
    headers, body = split_http_request(raw)
    return parse_inbound_message(headers, body, us, partner)


@pytest.mark.parametrize(
    ("vector", "signed", "encrypted", "compressed"),
    [
        ("mecas2_signed.as2", True, False, False),
        ("mecas2_encrypted.as2", False, True, False),
        ("mecas2_signed_encrypted.as2", True, True, False),
        ("mecas2_compressed.as2", True, False, True),
    ],
)
def test_each_mendelson_message_yields_exactly_the_payload(
    vector: str,
    signed: bool,
    encrypted: bool,
    compressed: bool,
    us: OurIdentity,
    mecas2: PartnerIdentity,
) -> None:
    message = receive((MENDELSON / vector).read_bytes(), us, mecas2)

    assert message.reason is None
    assert message.disposition == "processed" and message.processed
    assert message.payload == (MENDELSON / "payload.txt").read_bytes()
    assert (message.signed, message.encrypted, message.compressed) == (
        signed,
        encrypted,
        compressed,
    )
    assert (message.as2_from, message.as2_to) == ("mecas2", "pyas2lib")
    assert message.message_id and "@" in message.message_id
    if signed:
        assert message.mic_algorithm == "sha256"
        assert message.mic and message.mic.endswith("=")
    else:
        assert message.mic is None and message.mic_algorithm is None
    assert message.mdn is not None  # every vector asks for an MDN (Disposition-Notification-To)
    assert b"processed" in message.mdn.body
    assert (message.content_type or "").lower() == "application/edi-consent"
    assert message.filename == "payload.txt"


def test_signed_message_mic_is_carried_into_the_mdn(
    us: OurIdentity, mecas2: PartnerIdentity
) -> None:
    message = receive((MENDELSON / "mecas2_signed.as2").read_bytes(), us, mecas2)
    assert message.mdn is not None and message.mic is not None
    assert message.mic.encode() in message.mdn.body
    assert f"<{message.message_id}>".encode() in message.mdn.body
    assert dict(message.mdn.headers)["AS2-To"] == "mecas2"


def test_a_flipped_byte_in_signed_content_is_integrity_check_failed(
    us: OurIdentity, mecas2: PartnerIdentity
) -> None:
    """RFC 4130 §7.5.3: ``integrity-check-failed`` is "could not verify content integrity",
    ``authentication-failed`` "could not authenticate the sender". A flipped byte leaves the
    signer's signature over the signed attributes intact but the CMS message-digest no longer
    matches the content: integrity. pyas2lib raises one IntegrityError for both cases (and its
    own MDN would say authentication-failed); we tell them apart, see the foreign-signer test."""
    raw = (MENDELSON / "mecas2_signed.as2").read_bytes()
    assert raw.count(b"UNB+UNOA") == 1
    message = receive(raw.replace(b"UNB+UNOA", b"UNB+UNOB"), us, mecas2)

    assert message.disposition == "processed/error: integrity-check-failed"
    assert message.reason == "The content was altered after it was signed."
    assert message.payload == b"" and message.mic is None
    assert message.mdn is not None
    assert b"processed/Error: integrity-check-failed" in message.mdn.body


def test_a_signature_by_someone_else_is_authentication_failed(
    us: OurIdentity, tmp_path: Path
) -> None:
    stranger = generate_identity("stranger", tmp_path / "keys" / "stranger.key")
    impostor = PartnerIdentity("mecas2", stranger.certificate_pem.encode())
    message = receive((MENDELSON / "mecas2_signed.as2").read_bytes(), us, impostor)

    assert message.disposition == "processed/error: authentication-failed"
    assert message.reason and message.reason.startswith("The signature is not the partner's")


def test_the_wrong_private_key_is_decryption_failed(
    mecas2: PartnerIdentity, tmp_path: Path
) -> None:
    other = generate_identity("pyas2lib", tmp_path / "keys" / "other.key")
    wrong = OurIdentity(
        as2_id="pyas2lib",
        private_key=other.key_path.read_bytes(),
        certificate_pem=other.certificate_pem.encode(),
    )
    message = receive((MENDELSON / "mecas2_encrypted.as2").read_bytes(), wrong, mecas2)

    assert message.disposition == "processed/error: decryption-failed"
    assert message.reason and "decrypted" in message.reason
    assert message.encrypted and message.payload == b""


def test_an_unknown_sender_is_refused_with_a_clear_reason(us: OurIdentity) -> None:
    someone = PartnerIdentity("someone-else", (MENDELSON / "cert_mecas2_public.pem").read_bytes())
    message = receive((MENDELSON / "mecas2_signed.as2").read_bytes(), us, someone)

    assert message.disposition == "processed/error: authentication-failed"
    assert message.reason == (
        "Unknown trading partner: AS2-From 'mecas2' to AS2-To 'pyas2lib' is not configured."
    )
    assert message.payload == b""
    assert message.mdn is not None and b"authentication-failed" in message.mdn.body


def test_a_message_for_another_receiver_is_refused(mecas2: PartnerIdentity) -> None:
    not_us = OurIdentity("someone", (MENDELSON / "cert_test.pem").read_bytes(), PASSWORD)
    message = receive((MENDELSON / "mecas2_signed.as2").read_bytes(), not_us, mecas2)
    assert message.disposition == "processed/error: authentication-failed"
    assert message.reason and "AS2-To 'pyas2lib'" in message.reason


def signed_mdn_signer_certificate() -> bytes:
    """The certificate Mendelson signed ``mecas2_signed.mdn`` with, as embedded in its CMS.

    That MDN dates from 2016 and was signed with an older "mecas2" key (serial 1467024405,
    valid 2016-06-27..2017-06-27), not with ``cert_mecas2_public.pem`` ("mendelson test key 3",
    2017-12-08..2027-12-06) that signed the 2022 messages. So the brief's "verifies with
    cert_mecas2_public.pem" cannot hold; we prove verification with the real signer's
    certificate and refusal with the other two.
    """
    raw = (MENDELSON / "mecas2_signed.mdn").read_bytes()
    for part in message_from_bytes(raw).walk():
        if part.get_content_type() == "application/pkcs7-signature":
            signed_data = cms.ContentInfo.load(part.get_payload(decode=True))["content"]
            der = signed_data["certificates"][0].chosen.dump()
            return pem.armor("CERTIFICATE", der)
    raise AssertionError("no signature in the signed MDN")


def read_signed_mdn(certificate: bytes) -> InboundMdn:
    headers, body = split_http_request((MENDELSON / "mecas2_signed.mdn").read_bytes())
    return parse_inbound_mdn(headers, body, certificate)


def test_signed_mdn_verifies_with_its_signer_certificate() -> None:
    mdn = read_signed_mdn(signed_mdn_signer_certificate())

    assert mdn.original_message_id == "20161230102456.10748.40759@imac.local"
    assert mdn.disposition == "processed"
    assert (mdn.mic, mdn.mic_algorithm) == (
        "O4bvrm5t2YunRfwvZicNdEUmPaPZ9vUslX8loVLDck0=",
        "sha-256",
    )
    assert mdn.signed and mdn.signature_verified
    assert mdn.reason is None


@pytest.mark.parametrize("which", ["cert_mecas2_public.pem", "generated"])
def test_signed_mdn_fails_with_another_certificate(which: str, tmp_path: Path) -> None:
    if which == "generated":
        stranger = generate_identity("stranger", tmp_path / "keys" / "stranger.key")
        certificate = stranger.certificate_pem.encode()
    else:
        certificate = (MENDELSON / which).read_bytes()
    mdn = read_signed_mdn(certificate)

    assert mdn.signed and not mdn.signature_verified
    assert mdn.reason and "verify message signature" in mdn.reason
    # Still readable, so the caller can log what the partner claimed without trusting it.
    assert mdn.disposition == "processed"
    assert mdn.original_message_id == "20161230102456.10748.40759@imac.local"


def test_unsigned_mdn_parses_and_is_not_verified(mecas2: PartnerIdentity) -> None:
    """This recorded MDN answers a message Mendelson could not verify: its disposition is an
    error, read as the partner wrote it."""
    headers, body = split_http_request((MENDELSON / "mecas2_unsigned.mdn").read_bytes())
    mdn = parse_inbound_mdn(headers, body, mecas2.certificate_pem)

    assert mdn.original_message_id == "20161230102316.10728.85252@imac.local"
    assert mdn.disposition == "processed/error: authentication-failed"
    assert not mdn.signed and not mdn.signature_verified
    assert mdn.mic is None


def test_vector_certificates_expiry_is_not_what_makes_them_parse() -> None:
    """The vectors are frozen in time; expiry is reported by core.as2.certificates, never
    enforced while parsing (see core.as2.messages). Record the dates so a reader knows."""
    mecas2 = inspect_certificate((MENDELSON / "cert_mecas2_public.pem").read_bytes())
    ours = inspect_certificate((MENDELSON / "cert_test_public.pem").read_bytes())
    assert mecas2.not_after.date().isoformat() == "2027-12-06"
    assert ours.not_after < datetime(2100, 1, 1, tzinfo=UTC)


def test_split_http_request_handles_request_line_folding_and_lf() -> None:
    raw = (
        b"POST /as2 HTTP/1.1\nAS2-From: a\nContent-Type: text/plain;\n\tcharset=ascii\n"
        b"\r\nbody\r\n\r\nmore"
    )
    headers, body = split_http_request(raw)
    assert headers == [("AS2-From", "a"), ("Content-Type", "text/plain; charset=ascii")]
    assert body == b"body\r\n\r\nmore"
