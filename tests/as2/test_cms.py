"""core.as2.cms against pyas2lib (the interop oracle) and recorded Mendelson traffic: real keys,
real crypto, no mocks."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tracemalloc
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path

import pytest
from pyas2lib import as2

from core.as2 import cms
from core.as2.certificates import generate_identity
from core.as2.messages import (
    InboundMessage,
    OurIdentity,
    PartnerIdentity,
    parse_inbound_mdn,
    parse_inbound_message,
    split_http_request,
)

MENDELSON = Path(__file__).resolve().parents[2].parent / "shared" / "interop" / "mendelson"
PAYLOAD = b"UNB+UNOA:2+SENDER:14+RECEIVER:14+261130:1200+1'\r\nUNH+1+ORDERS:D:96A:UN'\r\n" * 8


@dataclass(frozen=True)
class Party:
    name: str
    key_pem: bytes
    cert_pem: bytes

    @property
    def identity(self) -> OurIdentity:
        return OurIdentity(self.name, self.key_pem, certificate_pem=self.cert_pem)

    @property
    def partner(self) -> PartnerIdentity:
        return PartnerIdentity(self.name, self.cert_pem)


def make_party(name: str, folder: Path) -> Party:
    generated = generate_identity(name, folder / f"{name}.key")
    return Party(name, generated.key_path.read_bytes(), generated.certificate_pem.encode())


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def alice(keys: Path) -> Party:
    return make_party("alice", keys)


@pytest.fixture(scope="module")
def bob(keys: Path) -> Party:
    return make_party("bob", keys)


@dataclass(frozen=True)
class Combo:
    sign: str | None  # digest
    encrypt: str | None  # algorithm
    compress: bool

    def __str__(self) -> str:
        parts = [
            f"sign-{self.sign}" if self.sign else "",
            self.encrypt or "",
            "zlib" * self.compress,
        ]
        return "+".join(p for p in parts if p) or "plain"


# A covering set: every digest and every encryption algorithm, each layer alone and together.
COMBOS = [
    Combo(None, None, False),
    Combo("sha1", None, False),
    Combo("sha224", None, False),
    Combo("sha256", None, False),
    Combo("sha384", None, False),
    Combo("sha512", None, False),
    Combo(None, "tripledes_192_cbc", False),
    Combo(None, "aes_128_cbc", False),
    Combo(None, "aes_192_cbc", False),
    Combo(None, "aes_256_cbc", False),
    Combo("sha256", "tripledes_192_cbc", False),
    Combo("sha1", "aes_128_cbc", False),
    Combo("sha384", "aes_192_cbc", False),
    Combo("sha512", "aes_256_cbc", False),
    Combo(None, None, True),
    Combo("sha256", None, True),
    Combo(None, "aes_256_cbc", True),
    Combo("sha256", "aes_128_cbc", True),
    Combo("sha224", "tripledes_192_cbc", True),
]


def build_with_cms(
    payload: bytes, sender: Party, receiver: Party, combo: Combo, **extra: object
) -> cms.BuiltMessage:
    options: dict[str, object] = {
        "as2_from": sender.name,
        "as2_to": receiver.name,
        "message_id": f"{os.urandom(8).hex()}@test",
        "filename": "order.bin",
        "sign_key_pem": sender.key_pem if combo.sign else None,
        "sign_cert_pem": sender.cert_pem,
        "digest": combo.sign,
        "encrypt_cert_pem": receiver.cert_pem if combo.encrypt else None,
        "encryption": combo.encrypt,
        "compress": combo.compress,
        "mdn_to": "as2@alice.example",
        "mdn_signed_digest": "sha256",
    }
    options.update(extra)
    return cms.build_message(payload, **options)  # type: ignore[arg-type]


def build_with_pyas2lib(
    payload: bytes, sender: Party, receiver: Party, combo: Combo
) -> tuple[list[tuple[str, str]], bytes, as2.Message]:
    key = sender.key_pem + sender.cert_pem
    organization = as2.Organization(as2_name=sender.name, sign_key=key, decrypt_key=key)
    partner = as2.Partner(
        as2_name=receiver.name,
        verify_cert=receiver.cert_pem,
        encrypt_cert=receiver.cert_pem,
        validate_certs=False,
        sign=combo.sign is not None,
        digest_alg=combo.sign or "sha256",
        encrypt=combo.encrypt is not None,
        enc_alg=combo.encrypt or "tripledes_192_cbc",
        compress=combo.compress,
        mdn_mode="SYNC",
        mdn_digest_alg="sha256",
    )
    message = as2.Message(sender=organization, receiver=partner)
    message.build(payload, filename="order.bin", content_type="application/octet-stream")
    return list(message.headers.items()), message.content, message


def assert_processed(message: InboundMessage, payload: bytes, combo: Combo) -> None:
    assert message.reason is None
    assert message.disposition == "processed"
    assert message.payload == payload
    assert (message.signed, message.encrypted, message.compressed) == (
        combo.sign is not None,
        combo.encrypt is not None,
        combo.compress,
    )
    assert message.filename == "order.bin"


# --- (a) cms builds, pyas2lib parses --------------------------------------------------------------


@pytest.mark.parametrize("combo", COMBOS, ids=str)
def test_cms_message_parses_with_pyas2lib(combo: Combo, alice: Party, bob: Party) -> None:
    built = build_with_cms(PAYLOAD, alice, bob, combo)
    received = parse_inbound_message(list(built.headers), built.body, bob.identity, alice.partner)

    assert_processed(received, PAYLOAD, combo)
    assert received.message_id == built.message_id
    assert received.content_type == "application/octet-stream"
    if combo.sign:
        assert (received.mic, received.mic_algorithm) == (built.mic, combo.sign)
    # Our own parser agrees with the oracle on everything but the MDN's random parts.
    ours = cms.parse_message(list(built.headers), built.body, bob.identity, alice.partner)
    assert_processed(ours, PAYLOAD, combo)
    assert (ours.mic, ours.mic_algorithm, ours.content_type) == (
        received.mic,
        received.mic_algorithm,
        received.content_type,
    )


# --- (b) pyas2lib builds, cms parses --------------------------------------------------------------


@pytest.mark.parametrize("combo", COMBOS, ids=str)
def test_pyas2lib_message_parses_with_cms(combo: Combo, alice: Party, bob: Party) -> None:
    headers, body, sent = build_with_pyas2lib(PAYLOAD, alice, bob, combo)
    received = cms.parse_message(headers, body, bob.identity, alice.partner)

    assert_processed(received, PAYLOAD, combo)
    assert received.message_id == sent.message_id
    if combo.sign:
        assert received.mic == sent.mic.decode()
        assert received.mic_algorithm == combo.sign
    else:
        assert received.mic is None
    oracle = parse_inbound_message(headers, body, bob.identity, alice.partner)
    assert (received.mic, received.content_type, received.filename) == (
        oracle.mic,
        oracle.content_type,
        oracle.filename,
    )


# --- the MDN --------------------------------------------------------------------------------------


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha512"])
def test_signed_mdn_verifies_with_pyas2lib_and_carries_the_mic(
    digest: str, alice: Party, bob: Party
) -> None:
    built = build_with_cms(
        PAYLOAD, alice, bob, Combo("sha256", "aes_128_cbc", False), mdn_signed_digest=digest
    )
    received = cms.parse_message(list(built.headers), built.body, bob.identity, alice.partner)
    assert received.mdn is not None
    headers = dict(received.mdn.headers)
    assert headers["AS2-From"] == "bob" and headers["AS2-To"] == "alice"
    assert f'micalg="{digest}"' in headers["Content-Type"]

    mdn = parse_inbound_mdn(list(received.mdn.headers), received.mdn.body, bob.cert_pem)
    assert mdn.signed and mdn.signature_verified, mdn.reason
    assert mdn.disposition == "processed"
    assert mdn.original_message_id == built.message_id
    assert (mdn.mic, mdn.mic_algorithm) == (built.mic, "sha256")

    refused = parse_inbound_mdn(list(received.mdn.headers), received.mdn.body, alice.cert_pem)
    assert refused.signed and not refused.signature_verified


def test_unsigned_mdn_when_no_signed_receipt_is_asked(alice: Party, bob: Party) -> None:
    built = build_with_cms(
        PAYLOAD, alice, bob, Combo("sha256", None, False), mdn_signed_digest=None
    )
    received = cms.parse_message(list(built.headers), built.body, bob.identity, alice.partner)
    assert received.mdn is not None
    mdn = parse_inbound_mdn(list(received.mdn.headers), received.mdn.body, bob.cert_pem)
    assert not mdn.signed and mdn.disposition == "processed" and mdn.mic == built.mic


def test_no_mdn_unless_asked(alice: Party, bob: Party) -> None:
    built = build_with_cms(PAYLOAD, alice, bob, Combo("sha256", None, False), mdn_to=None)
    assert "disposition-notification-to" not in dict(built.headers)
    received = cms.parse_message(list(built.headers), built.body, bob.identity, alice.partner)
    assert received.processed and received.mdn is None


def test_async_mdn_request_is_carried(alice: Party, bob: Party) -> None:
    url = "https://alice.example/as2/mdn"
    built = build_with_cms(
        PAYLOAD, alice, bob, Combo(None, None, False), receipt_delivery_option=url
    )
    received = cms.parse_message(list(built.headers), built.body, bob.identity, alice.partner)
    assert received.receipt_delivery_option == url and received.mdn is not None


# --- (c) Mendelson vectors ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mendelson_us() -> OurIdentity:
    return OurIdentity("pyas2lib", (MENDELSON / "cert_test.pem").read_bytes(), "test")


@pytest.fixture(scope="module")
def mecas2() -> PartnerIdentity:
    return PartnerIdentity("mecas2", (MENDELSON / "cert_mecas2_public.pem").read_bytes())


@pytest.mark.parametrize(
    ("vector", "signed", "encrypted", "compressed"),
    [
        ("mecas2_signed.as2", True, False, False),
        ("mecas2_encrypted.as2", False, True, False),
        ("mecas2_signed_encrypted.as2", True, True, False),
        ("mecas2_compressed.as2", True, False, True),
    ],
)
def test_mendelson_vectors_yield_exactly_the_payload(
    vector: str,
    signed: bool,
    encrypted: bool,
    compressed: bool,
    mendelson_us: OurIdentity,
    mecas2: PartnerIdentity,
) -> None:
    headers, body = split_http_request((MENDELSON / vector).read_bytes())
    message = cms.parse_message(headers, body, mendelson_us, mecas2)
    oracle = parse_inbound_message(headers, body, mendelson_us, mecas2)

    assert message.reason is None and message.processed
    assert message.payload == (MENDELSON / "payload.txt").read_bytes()
    assert (message.signed, message.encrypted, message.compressed) == (
        signed,
        encrypted,
        compressed,
    )
    assert (message.as2_from, message.as2_to, message.message_id) == (
        oracle.as2_from,
        oracle.as2_to,
        oracle.message_id,
    )
    assert (message.mic, message.mic_algorithm) == (oracle.mic, oracle.mic_algorithm)
    assert message.content_type == oracle.content_type
    assert message.filename == oracle.filename == "payload.txt"
    assert message.mdn is not None and b"processed" in message.mdn.body
    if message.mic:
        assert message.mic.encode() in message.mdn.body


# --- (d) failures ---------------------------------------------------------------------------------


def receive(
    built: cms.BuiltMessage,
    us: OurIdentity | list[OurIdentity],
    partner: PartnerIdentity | list[PartnerIdentity],
) -> InboundMessage:
    return cms.parse_message(list(built.headers), built.body, us, partner)


def test_a_flipped_byte_in_signed_content_is_integrity_check_failed(
    alice: Party, bob: Party
) -> None:
    built = build_with_cms(PAYLOAD, alice, bob, Combo("sha256", None, False))
    assert built.body.count(b"ORDERS") == 8
    altered = built.body.replace(b"ORDERS", b"ORDERZ", 1)
    message = cms.parse_message(list(built.headers), altered, bob.identity, alice.partner)

    assert message.disposition == "processed/error: integrity-check-failed"
    assert message.reason == "The content was altered after it was signed."
    assert message.payload == b"" and message.mic is None
    assert (
        message.mdn is not None and b"processed/Error: integrity-check-failed" in message.mdn.body
    )
    oracle = parse_inbound_message(list(built.headers), altered, bob.identity, alice.partner)
    assert oracle.disposition == message.disposition


@pytest.mark.parametrize("encryption", ["tripledes_192_cbc", "aes_256_cbc"])
def test_a_flipped_byte_in_encrypted_content_is_decryption_failed(
    encryption: str, alice: Party, bob: Party
) -> None:
    built = build_with_cms(PAYLOAD, alice, bob, Combo("sha256", encryption, False))
    block = 8 if encryption.startswith("tripledes") else 16
    body = bytearray(built.body)
    body[-block - 1] ^= 0xFF  # the last block's padding byte decrypts to more than a block
    message = cms.parse_message(list(built.headers), bytes(body), bob.identity, alice.partner)

    assert message.disposition == "processed/error: decryption-failed"
    assert message.encrypted and message.payload == b""
    oracle = parse_inbound_message(list(built.headers), bytes(body), bob.identity, alice.partner)
    assert oracle.disposition == message.disposition


def test_a_foreign_signer_is_authentication_failed(alice: Party, bob: Party, keys: Path) -> None:
    mallory = make_party("alice", keys / "mallory")
    built = build_with_cms(PAYLOAD, mallory, bob, Combo("sha256", "aes_128_cbc", False))
    message = receive(built, bob.identity, alice.partner)

    assert message.disposition == "processed/error: authentication-failed"
    assert message.reason and message.reason.startswith("The signature is not the partner's")
    assert message.payload == b""
    oracle = parse_inbound_message(list(built.headers), built.body, bob.identity, alice.partner)
    assert oracle.disposition == message.disposition


def test_the_wrong_private_key_is_decryption_failed(alice: Party, bob: Party, keys: Path) -> None:
    other = make_party("bob", keys / "other")
    built = build_with_cms(PAYLOAD, alice, bob, Combo(None, "aes_256_cbc", False))
    message = receive(built, other.identity, alice.partner)

    assert message.disposition == "processed/error: decryption-failed"
    assert message.reason and "decrypted" in message.reason
    assert message.encrypted and message.payload == b""


def test_an_unknown_partner_gets_an_unsigned_mdn_saying_why(alice: Party, bob: Party) -> None:
    someone = PartnerIdentity("someone-else", alice.cert_pem)
    signed_asked = build_with_cms(PAYLOAD, alice, bob, Combo("sha256", None, False))
    # (pyas2lib itself raises AttributeError building this MDN: no oracle for this one)
    refused = receive(signed_asked, bob.identity, someone)
    assert refused.disposition == "processed/error: authentication-failed"
    assert refused.mdn is not None
    assert dict(refused.mdn.headers)["Content-Type"].startswith("multipart/report")

    built = build_with_cms(
        PAYLOAD, alice, bob, Combo("sha256", None, False), mdn_signed_digest=None
    )
    message = receive(built, bob.identity, someone)
    oracle = parse_inbound_message(list(built.headers), built.body, bob.identity, someone)

    assert message.disposition == oracle.disposition == "processed/error: authentication-failed"
    assert message.reason == oracle.reason
    assert message.mdn is not None and b"authentication-failed" in message.mdn.body
    assert dict(message.mdn.headers)["Content-Type"].startswith("multipart/report")


def test_unsigned_or_unencrypted_when_required_is_insufficient_security(
    alice: Party, bob: Party
) -> None:
    built = build_with_cms(PAYLOAD, alice, bob, Combo(None, "aes_128_cbc", False))
    unsigned = cms.parse_message(
        list(built.headers), built.body, bob.identity, alice.partner, require_signed=True
    )
    assert unsigned.disposition == "processed/error: insufficient-message-security"
    built = build_with_cms(PAYLOAD, alice, bob, Combo("sha256", None, False))
    clear = cms.parse_message(
        list(built.headers), built.body, bob.identity, alice.partner, require_encrypted=True
    )
    assert clear.disposition == "processed/error: insufficient-message-security"


def test_decompressing_beyond_the_limit_is_decompression_failed(alice: Party, bob: Party) -> None:
    big = bytes(1_000_000)  # compresses to about a kilobyte
    built = build_with_cms(big, alice, bob, Combo("sha256", "aes_128_cbc", True))
    message = cms.parse_message(
        list(built.headers), built.body, bob.identity, alice.partner, max_decompressed=500_000
    )
    assert message.disposition == "processed/error: decompression-failed"
    assert message.compressed and message.payload == b""
    whole = cms.parse_message(list(built.headers), built.body, bob.identity, alice.partner)
    assert whole.processed and whole.payload == big


def test_garbage_is_an_unexpected_processing_error_not_an_exception(
    alice: Party, bob: Party
) -> None:
    built = build_with_cms(PAYLOAD, alice, bob, Combo("sha256", None, False))
    headers = [(n, v) for n, v in built.headers if n != "Content-Type"]
    headers.append(("Content-Type", 'multipart/signed; boundary="nowhere"'))
    message = cms.parse_message(headers, b"junk", bob.identity, alice.partner)
    assert message.disposition == "processed/error: unexpected-processing-error"
    enveloped = cms.parse_message(
        [*headers[:-1], ("Content-Type", "application/pkcs7-mime; smime-type=enveloped-data")],
        b"\x30\x03\x02\x01",
        bob.identity,
        alice.partner,
    )
    assert not enveloped.processed and enveloped.payload == b""


# --- rollover: several partner certificates, several keys of ours ---------------------------------


def test_any_of_the_partner_certificates_verifies(alice: Party, bob: Party, keys: Path) -> None:
    renewed = make_party("alice", keys / "renewed")
    built = build_with_cms(PAYLOAD, renewed, bob, Combo("sha256", None, False))
    both = [alice.partner, renewed.partner]
    assert receive(built, bob.identity, both).processed
    bundle = PartnerIdentity("alice", alice.cert_pem + renewed.cert_pem)
    assert receive(built, bob.identity, bundle).processed
    assert not receive(built, bob.identity, alice.partner).processed


def test_any_of_our_keys_decrypts_and_the_first_signs_the_mdn(
    alice: Party, bob: Party, keys: Path
) -> None:
    new_bob = make_party("bob", keys / "new-bob")
    built = build_with_cms(PAYLOAD, alice, bob, Combo("sha256", "aes_256_cbc", False))
    message = receive(built, [new_bob.identity, bob.identity], alice.partner)

    assert message.processed and message.payload == PAYLOAD
    assert message.mdn is not None
    mdn = parse_inbound_mdn(list(message.mdn.headers), message.mdn.body, new_bob.cert_pem)
    assert mdn.signature_verified


def test_a_pkcs12_key_and_an_encrypted_pem_key_both_work(alice: Party, keys: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509 import load_pem_x509_certificate

    generated = generate_identity("carol", keys / "carol.key", passphrase=b"secret")
    pem = generated.key_path.read_bytes()
    key = serialization.load_pem_private_key(pem, b"secret")
    certificate = load_pem_x509_certificate(generated.certificate_pem.encode())
    p12 = pkcs12.serialize_key_and_certificates(
        b"carol",
        key,  # type: ignore[arg-type]
        certificate,
        None,
        serialization.BestAvailableEncryption(b"secret"),
    )
    carol = Party("carol", pem, generated.certificate_pem.encode())
    built = build_with_cms(PAYLOAD, alice, carol, Combo("sha256", "aes_128_cbc", False))
    for identity in (
        OurIdentity("carol", pem, "secret", generated.certificate_pem.encode()),
        OurIdentity("carol", p12, "secret"),
    ):
        assert receive(built, identity, alice.partner).processed


# --- (e) a large random binary payload arrives byte-identical both ways --------------------------

BINARY = os.urandom(100_000)


@pytest.mark.parametrize(
    "combo",
    [
        Combo("sha256", "aes_256_cbc", False),
        Combo("sha1", "tripledes_192_cbc", True),
        Combo("sha512", None, False),
        Combo(None, None, False),
    ],
    ids=str,
)
def test_binary_payload_arrives_byte_identical_both_ways(
    combo: Combo, alice: Party, bob: Party
) -> None:
    payload = BINARY + b"\r\n--\r\n\r\n" + BINARY[:999] + b"\r"  # line ends, a trailing CR
    built = build_with_cms(payload, alice, bob, combo)
    oracle = parse_inbound_message(list(built.headers), built.body, bob.identity, alice.partner)
    assert oracle.payload == payload
    assert (
        cms.parse_message(list(built.headers), built.body, bob.identity, alice.partner).payload
        == payload
    )

    headers, body, sent = build_with_pyas2lib(payload, alice, bob, combo)
    received = cms.parse_message(headers, body, bob.identity, alice.partner)
    assert received.payload == payload
    if combo.sign:
        assert received.mic == sent.mic.decode() == oracle.mic


def test_text_payloads_keep_their_line_ends(alice: Party, bob: Party) -> None:
    """pyas2lib rewrites LF to CRLF in non-binary types; we send every type binary."""
    payload = b"line one\nline two\n"
    built = build_with_cms(
        payload,
        alice,
        bob,
        Combo("sha256", "aes_128_cbc", False),
        content_type="application/edi-x12",
    )
    oracle = parse_inbound_message(list(built.headers), built.body, bob.identity, alice.partner)
    assert oracle.payload == payload and oracle.content_type == "application/edi-x12"
    assert receive(built, bob.identity, alice.partner).payload == payload


@pytest.mark.parametrize("encryption", ["aes_256_cbc", "tripledes_192_cbc"])
def test_encrypted_unsigned_text_plain_yields_exactly_the_payload(
    encryption: str, alice: Party, bob: Party
) -> None:
    """pyas2lib's own parser takes a decrypted text/plain entity for Mendelson's headerless
    payload and hands over its MIME headers as part of the payload (typed
    application/edi-consent, no filename); cms only does that when there are no headers."""
    payload = "Grüße, AS2\r\nContent-Type: not a header\r\n\r\n=3D the end\r\n".encode()
    key = alice.key_pem + alice.cert_pem
    organization = as2.Organization(as2_name=alice.name, sign_key=key, decrypt_key=key)
    partner = as2.Partner(
        as2_name=bob.name,
        verify_cert=bob.cert_pem,
        encrypt_cert=bob.cert_pem,
        validate_certs=False,
        sign=False,
        encrypt=True,
        enc_alg=encryption,
        mdn_mode="SYNC",
    )
    sent = as2.Message(sender=organization, receiver=partner)
    sent.build(payload, filename="greeting.txt", content_type="text/plain")

    received = cms.parse_message(
        list(sent.headers.items()), sent.content, bob.identity, alice.partner
    )

    assert received.disposition == "processed" and received.reason is None
    assert (received.signed, received.encrypted, received.compressed) == (False, True, False)
    assert received.payload == payload
    assert received.content_type == "text/plain"
    assert received.filename == "greeting.txt"


def test_header_injection_is_refused(alice: Party, bob: Party) -> None:
    with pytest.raises(ValueError, match="line breaks"):
        build_with_cms(PAYLOAD, alice, bob, Combo(None, None, False), filename="a\r\nX: y")


@pytest.mark.parametrize(
    "combo", [Combo("sha256", "aes_256_cbc", False), Combo(None, "aes_128_cbc", False)], ids=str
)
def test_a_large_payload_is_not_copied_again_and_again(
    combo: Combo, alice: Party, bob: Party
) -> None:
    """Building allocates the body once; parsing decrypts into the buffer that becomes the
    payload (no second copy): what each allocates stays near one payload, not two or three."""
    payload = os.urandom(4_000_000)
    build_with_cms(b"warm", alice, bob, combo)  # keys parsed and cached beforehand
    tracemalloc.start()
    try:
        built = build_with_cms(payload, alice, bob, combo)
        build_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        received = receive(built, bob.identity, alice.partner)
        parse_peak = tracemalloc.get_traced_memory()[1] - len(built.body)
    finally:
        tracemalloc.stop()
    assert received.payload == payload
    assert build_peak < 1.3 * len(payload)
    assert parse_peak < 1.3 * len(payload)


def test_layers_in_another_order_compressed_around_signed(alice: Party, bob: Party) -> None:
    """RFC 5402 allows compressing the signed entity: sign first, then compress and encrypt."""
    signed = build_with_cms(PAYLOAD, alice, bob, Combo("sha384", None, False), mdn_to=None)
    signed_type = dict(signed.headers)["Content-Type"]
    outer = cms.build_message(
        signed.body,
        as2_from="alice",
        as2_to="bob",
        message_id=signed.message_id,
        filename=None,
        content_type=signed_type,
        encrypt_cert_pem=bob.cert_pem,
        encryption="aes_192_cbc",
        compress=True,
        mdn_to="as2@alice.example",
        mdn_signed_digest="sha256",
    )
    message = receive(outer, bob.identity, alice.partner)

    assert message.reason is None and message.payload == PAYLOAD
    assert (message.signed, message.encrypted, message.compressed) == (True, True, True)
    assert (message.mic, message.mic_algorithm) == (signed.mic, "sha384")
    assert message.filename == "order.bin"


def test_the_mdn_is_signed_with_the_first_requested_digest_we_support(
    alice: Party, bob: Party
) -> None:
    built = build_with_cms(PAYLOAD, alice, bob, Combo("sha256", None, False))
    headers = [(n, v) for n, v in built.headers if n != "disposition-notification-options"]
    headers.append(
        (
            "Disposition-Notification-Options",
            "signed-receipt-protocol=optional, pkcs7-signature; "
            "signed-receipt-micalg=optional, md4, sha-512, sha256",
        )
    )
    message = cms.parse_message(headers, built.body, bob.identity, alice.partner)
    assert message.mdn is not None
    assert 'micalg="sha512"' in dict(message.mdn.headers)["Content-Type"]
    mdn = parse_inbound_mdn(list(message.mdn.headers), message.mdn.body, bob.cert_pem)
    assert mdn.signature_verified and mdn.mic == built.mic


# --- a partner running the openssl command line ---------------------------------------------------

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl binary")


def openssl_cms(*args: str, data: bytes) -> bytes:
    done = subprocess.run(
        ["openssl", "cms", *args], input=data, capture_output=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def as2_request(smime: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """openssl's S/MIME output as an AS2 request: its MIME headers become HTTP headers."""
    blank = re.search(rb"\r?\n\r?\n", smime)
    assert blank is not None
    mime = message_from_bytes(smime[: blank.start()] + b"\n\n").items()
    headers = [("AS2-From", "alice"), ("AS2-To", "bob"), ("Message-ID", "<openssl@alice>")]
    headers.append(("Disposition-Notification-To", "as2@alice.example"))
    headers += [(name, " ".join(value.split())) for name, value in mime]
    return headers, smime[blank.end() :]


@needs_openssl
@pytest.mark.parametrize(
    ("layers", "entity_cte"),
    [
        ("sign", None),
        ("sign-crlf", "binary"),
        ("encrypt", None),  # base64 S/MIME with a 7bit payload inside
        ("sign+encrypt-des3", "binary"),
        ("sign+encrypt-der", None),
    ],
)
def test_openssl_messages_parse_with_cms(
    layers: str, entity_cte: str | None, alice: Party, bob: Party, tmp_path: Path
) -> None:
    files = {}
    for party in (alice, bob):
        files[party.name] = (tmp_path / f"{party.name}.pem", tmp_path / f"{party.name}.key")
        files[party.name][0].write_bytes(party.cert_pem)
        files[party.name][1].write_bytes(party.key_pem)
    head = "Content-Type: application/edi-x12\r\n"
    if entity_cte:
        head += f"Content-Transfer-Encoding: {entity_cte}\r\n"
    entity = (head + 'Content-Disposition: attachment; filename="po.x12"\r\n\r\n').encode()
    entity += PAYLOAD
    data = entity
    if layers.startswith("sign"):
        signer = ("-signer", str(files["alice"][0]), "-inkey", str(files["alice"][1]))
        crlf = ("-crlfeol",) if "crlf" in layers else ()
        data = openssl_cms("-sign", "-binary", "-md", "sha256", *signer, *crlf, data=data)
    if "encrypt" in layers:
        cipher = "-des3" if "des3" in layers else "-aes256"
        der = ("-outform", "DER") if "der" in layers else ()
        data = openssl_cms("-encrypt", "-binary", cipher, *der, str(files["bob"][0]), data=data)
        if der:
            kind = 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"'
            data = f"Content-Type: {kind}\r\n\r\n".encode() + data
    headers, body = as2_request(data)
    message = cms.parse_message(headers, body, bob.identity, alice.partner)
    oracle = parse_inbound_message(headers, body, bob.identity, alice.partner)

    assert message.reason is None and message.payload == PAYLOAD
    assert (message.content_type, message.filename) == ("application/edi-x12", "po.x12")
    assert (message.signed, message.encrypted) == (layers.startswith("sign"), "encrypt" in layers)
    assert (message.mic, message.mic_algorithm) == (oracle.mic, oracle.mic_algorithm)
    if message.signed:
        assert message.mic == base64.b64encode(hashlib.sha256(entity).digest()).decode()


# --- limits and our own configuration -------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_a_payload_over_the_limit_is_refused_as_messages_refuses_it(
    compress: bool, alice: Party, bob: Party
) -> None:
    payload = bytes(300_000)
    built = build_with_cms(payload, alice, bob, Combo("sha256", "aes_128_cbc", compress))
    headers = list(built.headers)
    message = cms.parse_message(headers, built.body, bob.identity, alice.partner, 100_000)

    modifier = "decompression-failed" if compress else "unexpected-processing-error"
    assert message.disposition == f"processed/error: {modifier}"
    assert message.reason == "The payload is larger than the 100000 bytes this gateway accepts."
    assert message.payload == b"" and message.mdn is not None
    exact = cms.parse_message(headers, built.body, bob.identity, alice.partner, len(payload))
    assert exact.processed and exact.payload == payload


def test_our_unreadable_key_raises_instead_of_blaming_the_partner(
    alice: Party, bob: Party, keys: Path
) -> None:
    built = build_with_cms(PAYLOAD, alice, bob, Combo("sha256", "aes_128_cbc", False))
    broken = OurIdentity("bob", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(cms.OwnConfigurationError, match="Our private key"):
        receive(built, broken, alice.partner)
    guarded = generate_identity("bob", keys / "guarded" / "bob.key", passphrase=b"right")
    wrong_password = OurIdentity("bob", guarded.key_path.read_bytes(), "wrong")
    with pytest.raises(cms.OwnConfigurationError):
        receive(built, wrong_password, alice.partner)
    with pytest.raises(cms.OwnConfigurationError, match="partner's certificate"):
        receive(built, bob.identity, PartnerIdentity("alice", b"not a certificate"))


def test_an_encrypted_signing_key_signs_with_its_password(
    alice: Party, bob: Party, keys: Path
) -> None:
    guarded = generate_identity("alice", keys / "guarded-alice" / "alice.key", passphrase=b"pw")
    sender = Party("alice", guarded.key_path.read_bytes(), guarded.certificate_pem.encode())
    built = build_with_cms(
        PAYLOAD, sender, bob, Combo("sha256", None, False), sign_key_password="pw"
    )
    message = receive(built, bob.identity, sender.partner)
    assert message.processed and message.mic == built.mic


@needs_openssl
@pytest.mark.parametrize(
    "combo",
    [Combo("sha256", "aes_256_cbc", False), Combo("sha1", "tripledes_192_cbc", False)],
    ids=str,
)
def test_openssl_decrypts_and_verifies_what_cms_builds(
    combo: Combo, alice: Party, bob: Party, tmp_path: Path
) -> None:
    (tmp_path / "alice.pem").write_bytes(alice.cert_pem)
    (tmp_path / "bob.pem").write_bytes(bob.cert_pem)
    (tmp_path / "bob.key").write_bytes(bob.key_pem)
    # CRLF text: openssl's multipart reader rewrites line ends, so binary content would not
    # verify there (pyas2lib's messages neither); pyas2lib and Mendelson read parts byte for byte.
    payload = PAYLOAD
    built = build_with_cms(payload, alice, bob, combo)
    recipient = ("-recip", str(tmp_path / "bob.pem"), "-inkey", str(tmp_path / "bob.key"))
    signed = openssl_cms("-decrypt", "-binary", "-inform", "DER", *recipient, data=built.body)
    assert signed.startswith(b"Content-Type: multipart/signed;")
    # (not -binary: openssl's multipart reader then turns CRLF into LF)
    content = openssl_cms("-verify", "-CAfile", str(tmp_path / "alice.pem"), data=signed)
    assert content.endswith(b"\r\n\r\n" + payload)
    refused = subprocess.run(
        ["openssl", "cms", "-verify", "-CAfile", str(tmp_path / "bob.pem")],
        input=signed,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert refused.returncode != 0


@needs_openssl
@pytest.mark.parametrize(
    ("sign_options", "encrypt_options"),
    [
        (("-keyopt", "rsa_padding_mode:pss"), ()),
        ((), ("-keyopt", "rsa_padding_mode:oaep")),
        (
            ("-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:32"),
            ("-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"),
        ),
    ],
    ids=["pss", "oaep", "pss+oaep-sha256"],
)
def test_rsa_pss_signatures_and_oaep_key_transport_from_openssl(
    sign_options: tuple[str, ...],
    encrypt_options: tuple[str, ...],
    alice: Party,
    bob: Party,
    tmp_path: Path,
) -> None:
    for party in (alice, bob):
        (tmp_path / f"{party.name}.pem").write_bytes(party.cert_pem)
        (tmp_path / f"{party.name}.key").write_bytes(party.key_pem)
    entity = b"Content-Type: application/edi-x12\r\n\r\n" + PAYLOAD
    signer = ("-signer", str(tmp_path / "alice.pem"), "-inkey", str(tmp_path / "alice.key"))
    signed = openssl_cms("-sign", "-binary", "-md", "sha256", *signer, *sign_options, data=entity)
    encrypted = openssl_cms(
        "-encrypt",
        "-binary",
        "-aes128",
        "-recip",
        str(tmp_path / "bob.pem"),
        *encrypt_options,
        data=signed,
    )
    headers, body = as2_request(encrypted)
    message = cms.parse_message(headers, body, bob.identity, alice.partner)

    assert message.reason is None and message.payload == PAYLOAD
    assert message.mic == base64.b64encode(hashlib.sha256(entity).digest()).decode()
