"""AS2 requests built with the ``openssl cms`` command line through core.as2.messages.

A partner is simulated by real ``openssl cms`` subprocesses (no mocks): it signs, encrypts, or
signs then encrypts a MIME entity with keys made by core.as2.certificates, and the S/MIME output
becomes an HTTP AS2 request (the S/MIME headers become HTTP headers, its body the HTTP body).

Compression (``openssl cms -compress``) is not covered: the Debian build of OpenSSL 3.0 on this
machine is compiled without zlib (``openssl list -disabled`` lists ZLIB, and ``-compress`` fails
with "unsupported compression algorithm"), so openssl cannot build a compressed message here.
Compressed messages are covered by the Mendelson vector in test_mendelson_interop.py.
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path

import pytest
from asn1crypto import cms

from core.as2.certificates import generate_identity
from core.as2.messages import InboundMessage, OurIdentity, PartnerIdentity, parse_inbound_message

US = "docbridge-test"
PARTNER = "partner-co"
MDN_OPTIONS = (
    "signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, sha256"
)
# X12 text with CRLF segment ends; signatures cover these bytes exactly, CRLFs included.
EDI_TEXT = (
    b"ISA*00*          *00*          *ZZ*PARTNER-CO     *ZZ*DOCBRIDGE      *261130*1200*U*00401"
    b"*000000001*0*P*>\r\nGS*PO*PARTNER-CO*DOCBRIDGE*20261130*1200*1*X*004010\r\n"
    b"ST*850*0001\r\nBEG*00*SA*4500012345**20261130\r\nSE*3*0001\r\nGE*1*1\r\n"
    b"IEA*1*000000001\r\n"
)
# Every byte value, bare CR and LF, NULs and a would-be boundary dash run: nothing may be altered.
BINARY = bytes(range(256)) * 4 + b"\r\n\n\r\x00\x00\r\n--\r\n\xff"
# The base64 of the detached signature in openssl's multipart/signed output.
SIGNATURE_PART = re.compile(
    rb'filename="smime\.p7s"\r?\n\r?\n(?P<base64>[A-Za-z0-9+/=\r\n]+?)\r?\n\r?\n--'
)


@dataclass(frozen=True)
class Entity:
    """The MIME entity a partner signs or encrypts, and the payload it carries."""

    payload: bytes
    content_type: str
    filename: str
    transfer_encoding: str | None

    def mime(self) -> bytes:
        head = f"Content-Type: {self.content_type}\r\n"
        if self.transfer_encoding:
            head += f"Content-Transfer-Encoding: {self.transfer_encoding}\r\n"
        head += f'Content-Disposition: attachment; filename="{self.filename}"\r\n\r\n'
        return head.encode("ascii") + self.payload


ENTITIES = {
    # Text EDI usually declares no transfer encoding at all (7bit by default). Encrypted by
    # openssl (base64 S/MIME), this one was delivered as garbage until messages.py stopped
    # pyas2lib from decoding it with the request's Content-Transfer-Encoding.
    "text": Entity(EDI_TEXT, "application/edi-x12", "order.x12", None),
    "text-binary": Entity(EDI_TEXT, "application/edi-x12", "order.x12", "binary"),
    "binary": Entity(BINARY, "application/octet-stream", "scan.bin", "binary"),
}


@dataclass(frozen=True)
class Party:
    """One identity as openssl sees it (certificate and key files) and as docbridge does."""

    name: str
    certificate: Path
    key: Path
    certificate_pem: bytes


@dataclass(frozen=True)
class Parties:
    us: Party
    partner: Party
    foreign: Party

    def our_identity(self) -> OurIdentity:
        return OurIdentity(
            as2_id=US,
            private_key=self.us.key.read_bytes(),
            certificate_pem=self.us.certificate_pem,
        )

    def partner_identity(self) -> PartnerIdentity:
        return PartnerIdentity(PARTNER, self.partner.certificate_pem)


@pytest.fixture(scope="module")
def parties(tmp_path_factory: pytest.TempPathFactory) -> Parties:
    keys = tmp_path_factory.mktemp("identities") / "keys"

    def make(name: str) -> Party:
        generated = generate_identity(name, keys / f"{name}.key")
        certificate = keys.parent / f"{name}.pem"
        certificate.write_text(generated.certificate_pem, encoding="ascii")
        return Party(name, certificate, generated.key_path, generated.certificate_pem.encode())

    return Parties(us=make(US), partner=make(PARTNER), foreign=make("foreign-co"))


def openssl_cms(*args: str, data: bytes) -> bytes:
    done = subprocess.run(
        ["openssl", "cms", *args], input=data, capture_output=True, check=False, timeout=60
    )
    assert done.returncode == 0, f"openssl cms {' '.join(args)}: {done.stderr.decode()}"
    return done.stdout


def sign(entity: bytes, signer: Party, digest: str = "sha256", *eol: str) -> bytes:
    """Detached multipart/signed S/MIME, the content taken byte for byte (``-binary``)."""
    keys = ("-signer", str(signer.certificate), "-inkey", str(signer.key))
    return openssl_cms("-sign", "-binary", "-md", digest, *keys, *eol, data=entity)


def encrypt(entity: bytes, recipient: Party, cipher: str = "aes256", *options: str) -> bytes:
    """application/pkcs7-mime enveloped-data; S/MIME (base64) unless ``-outform DER`` is given."""
    return openssl_cms(
        "-encrypt", "-binary", f"-{cipher}", *options, str(recipient.certificate), data=entity
    )


def smime_parts(smime: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """The S/MIME entity's headers (openssl writes LF, or CRLF with -crlfeol) and its body."""
    blank = re.search(rb"\r?\n\r?\n", smime)
    assert blank is not None
    headers = message_from_bytes(smime[: blank.start()] + b"\n\n").items()
    return [(name, " ".join(value.split())) for name, value in headers], smime[blank.end() :]


def as2_request(
    smime: bytes, *, message_id: str = "openssl-1@partner.example", mdn: bool = True
) -> tuple[list[tuple[str, str]], bytes]:
    """Wrap the S/MIME output as an AS2 HTTP request. Its MIME headers (Content-Type, and for an
    enveloped entity Content-Transfer-Encoding: base64) travel as HTTP headers."""
    mime_headers, body = smime_parts(smime)
    headers = [("AS2-Version", "1.2"), ("AS2-From", PARTNER), ("AS2-To", US)]
    headers.append(("Message-ID", f"<{message_id}>"))
    if mdn:
        headers.append(("Disposition-Notification-To", "as2@partner.example"))
        headers.append(("Disposition-Notification-Options", MDN_OPTIONS))
    if not any(name.lower() == "mime-version" for name, _ in mime_headers):
        headers.append(("MIME-Version", "1.0"))
    return headers + mime_headers, body


def receive(smime: bytes, parties: Parties, *, mdn: bool = True) -> InboundMessage:
    headers, body = as2_request(smime, mdn=mdn)
    return parse_inbound_message(headers, body, parties.our_identity(), parties.partner_identity())


def expected_mic(entity: bytes, digest: str) -> str:
    """RFC 4130 §7.3.1: the MIC of a signed message is the digest of the signed MIME entity."""
    return base64.b64encode(hashlib.new(digest, entity).digest()).decode("ascii")


def mdn_text(message: InboundMessage) -> str:
    assert message.mdn is not None, "the partner asked for an MDN"
    return message.mdn.body.decode("ascii", "replace")


def assert_delivered(message: InboundMessage, entity: Entity) -> None:
    assert message.reason is None
    assert message.disposition == "processed" and message.processed
    assert message.payload == entity.payload
    assert message.content_type == entity.content_type
    assert message.filename == entity.filename
    assert (message.as2_from, message.as2_to) == (PARTNER, US)
    assert message.message_id == "openssl-1@partner.example"
    assert not message.compressed
    report = mdn_text(message)
    assert "Disposition: automatic-action/MDN-sent-automatically; processed\r\n" in report
    assert "Original-Message-ID: <openssl-1@partner.example>" in report


def assert_refused(message: InboundMessage, modifier: str) -> None:
    """Refused with exactly this RFC 4130 modifier, nothing delivered, and the MDN says so."""
    assert message.disposition == f"processed/error: {modifier}"
    assert not message.processed and message.reason
    assert message.payload == b""
    assert message.content_type is None and message.filename is None
    assert message.mic is None and message.mic_algorithm is None
    report = mdn_text(message)
    disposition = (
        f"Disposition: automatic-action/MDN-sent-automatically; processed/Error: {modifier}"
    )
    assert f"{disposition}\r\n" in report
    assert "Original-Message-ID: <openssl-1@partner.example>" in report
    assert "Received-content-MIC" not in report


def flip_byte(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x80]) + data[index + 1 :]


# --- what a partner running openssl sends is received intact ------------------------------------


@pytest.mark.parametrize("entity_name", sorted(ENTITIES))
@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha384", "sha512"])
def test_signed_message_is_processed_with_the_mic_of_what_was_signed(
    digest: str, entity_name: str, parties: Parties
) -> None:
    entity = ENTITIES[entity_name]
    message = receive(sign(entity.mime(), parties.partner, digest), parties)

    assert_delivered(message, entity)
    assert (message.signed, message.encrypted) == (True, False)
    # The MIC uses the signature's own digest, whatever the MDN itself is signed with.
    assert message.mic == expected_mic(entity.mime(), digest)
    assert message.mic_algorithm == digest
    assert f"Received-content-MIC: {message.mic}, {digest}\r\n" in mdn_text(message)


@pytest.mark.parametrize("entity_name", sorted(ENTITIES))
@pytest.mark.parametrize("cipher", ["aes128", "aes192", "aes256", "des3"])
def test_encrypted_message_is_processed(cipher: str, entity_name: str, parties: Parties) -> None:
    entity = ENTITIES[entity_name]
    message = receive(encrypt(entity.mime(), parties.us, cipher), parties)

    assert_delivered(message, entity)
    assert (message.signed, message.encrypted) == (False, True)
    assert message.mic is None and message.mic_algorithm is None
    assert "Received-content-MIC" not in mdn_text(message)


@pytest.mark.parametrize("entity_name", sorted(ENTITIES))
@pytest.mark.parametrize(
    ("cipher", "eol"), [("aes256", "lf"), ("aes128", "crlf"), ("des3", "lf"), ("des3", "crlf")]
)
def test_signed_then_encrypted_message_is_processed(
    cipher: str, eol: str, entity_name: str, parties: Parties
) -> None:
    entity = ENTITIES[entity_name]
    crlf = ("-crlfeol",) if eol == "crlf" else ()
    signed = sign(entity.mime(), parties.partner, "sha256", *crlf)
    message = receive(encrypt(signed, parties.us, cipher, *crlf), parties)

    assert_delivered(message, entity)
    assert (message.signed, message.encrypted) == (True, True)
    assert message.mic == expected_mic(entity.mime(), "sha256")
    assert message.mic_algorithm == "sha256"
    assert f"Received-content-MIC: {message.mic}, sha256\r\n" in mdn_text(message)


@pytest.mark.parametrize("signed", [False, True], ids=["encrypted", "signed-encrypted"])
@pytest.mark.parametrize("entity_name", sorted(ENTITIES))
def test_binary_der_body_as_most_as2_products_send_it(
    entity_name: str, signed: bool, parties: Parties
) -> None:
    """AS2 over HTTP usually carries the CMS as raw DER with no Content-Transfer-Encoding."""
    entity = ENTITIES[entity_name]
    inner = sign(entity.mime(), parties.partner) if signed else entity.mime()
    der = encrypt(inner, parties.us, "aes256", "-outform", "DER")
    content_type = 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"'
    smime = f"Content-Type: {content_type}\r\n\r\n".encode() + der
    message = receive(smime, parties)

    assert_delivered(message, entity)
    assert (message.signed, message.encrypted) == (signed, True)
    assert message.mic == (expected_mic(entity.mime(), "sha256") if signed else None)


def test_no_mdn_is_built_when_none_is_asked_for(parties: Parties) -> None:
    entity = ENTITIES["text"]
    message = receive(sign(entity.mime(), parties.partner), parties, mdn=False)

    assert message.processed and message.payload == entity.payload
    assert message.mic == expected_mic(entity.mime(), "sha256")
    assert message.mdn is None


def test_our_signed_mdn_verifies_with_openssl_at_the_partner(parties: Parties) -> None:
    """The partner checks our receipt with our certificate, as its own openssl would."""
    entity = ENTITIES["text"]
    message = receive(sign(entity.mime(), parties.partner), parties)
    assert message.mdn is not None
    mdn_headers = dict(message.mdn.headers)
    assert (mdn_headers["AS2-From"], mdn_headers["AS2-To"]) == (US, PARTNER)
    assert mdn_headers["Content-Type"].startswith("multipart/signed")
    smime = f"Content-Type: {mdn_headers['Content-Type']}\r\n\r\n".encode() + message.mdn.body

    verified = openssl_cms("-verify", "-CAfile", str(parties.us.certificate), data=smime)
    assert f"Received-content-MIC: {message.mic}, sha256".encode() in verified
    refused = subprocess.run(
        ["openssl", "cms", "-verify", "-CAfile", str(parties.foreign.certificate)],
        input=smime,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert refused.returncode != 0 and b"Verification failure" in refused.stderr


# --- what must be refused, with the RFC 4130 modifier and an MDN that says it -------------------


@pytest.mark.parametrize("encrypted", [False, True], ids=["signed", "signed-encrypted"])
@pytest.mark.parametrize("entity_name", sorted(ENTITIES))
def test_a_flipped_byte_in_signed_content_is_integrity_check_failed(
    entity_name: str, encrypted: bool, parties: Parties
) -> None:
    """The signature over the signed attributes is intact, the content digest no longer matches:
    messages.py maps that to ``integrity-check-failed`` (RFC 4130 §7.5.3)."""
    entity = ENTITIES[entity_name]
    signed = sign(entity.mime(), parties.partner)
    at = signed.index(entity.payload) + len(entity.payload) // 2
    tampered = flip_byte(signed, at)
    message = receive(encrypt(tampered, parties.us) if encrypted else tampered, parties)

    assert_refused(message, "integrity-check-failed")
    assert message.reason == "The content was altered after it was signed."
    assert (message.signed, message.encrypted) == (True, encrypted)


def test_a_flipped_byte_in_the_signature_is_authentication_failed(parties: Parties) -> None:
    """The content digest still matches but the RSA signature does not verify: the signer is not
    proven, so ``authentication-failed``."""
    entity = ENTITIES["text"]
    signed = sign(entity.mime(), parties.partner)
    found = SIGNATURE_PART.search(signed)
    assert found is not None
    info = cms.ContentInfo.load(base64.b64decode(found["base64"]))

    def with_signature(der: bytes) -> bytes:
        encoded = base64.encodebytes(der).rstrip(b"\n")
        return signed[: found.start("base64")] + encoded + signed[found.end("base64") :]

    # Control: re-encoding the untouched signature keeps the message good.
    assert receive(with_signature(info.dump(force=True)), parties).processed
    signer = info["content"]["signer_infos"][0]
    value = signer["signature"].native
    signer["signature"] = flip_byte(value, len(value) // 2)
    message = receive(with_signature(info.dump(force=True)), parties)

    assert_refused(message, "authentication-failed")
    assert message.reason and message.reason.startswith("The signature is not the partner's")
    assert message.signed


@pytest.mark.parametrize("encrypted", [False, True], ids=["signed", "signed-encrypted"])
def test_a_message_signed_by_someone_else_is_authentication_failed(
    encrypted: bool, parties: Parties
) -> None:
    entity = ENTITIES["text"]
    signed = sign(entity.mime(), parties.foreign)
    message = receive(encrypt(signed, parties.us) if encrypted else signed, parties)

    assert_refused(message, "authentication-failed")
    assert message.reason and message.reason.startswith("The signature is not the partner's")
    assert (message.signed, message.encrypted) == (True, encrypted)


@pytest.mark.parametrize("signed", [False, True], ids=["encrypted", "signed-encrypted"])
@pytest.mark.parametrize(("cipher", "block"), [("aes128", 16), ("aes256", 16), ("des3", 8)])
def test_a_flipped_byte_in_the_encrypted_body_is_decryption_failed(
    cipher: str, block: int, signed: bool, parties: Parties
) -> None:
    """CBC has no integrity of its own: a flip in most of the ciphertext just garbles one block
    (only a signature would notice). The flip here is in the last byte of the next-to-last
    block, which turns the padding length into a value above the block size, so decryption
    itself must fail, on every run."""
    entity = ENTITIES["text"]
    inner = sign(entity.mime(), parties.partner) if signed else entity.mime()
    headers, body = smime_parts(encrypt(inner, parties.us, cipher))
    info = cms.ContentInfo.load(base64.b64decode(body))

    def with_body(der: bytes) -> bytes:
        head = b"".join(f"{name}: {value}\n".encode() for name, value in headers)
        return head + b"\n" + base64.encodebytes(der)

    # Control: re-encoding the untouched CMS keeps the message good.
    assert receive(with_body(info.dump(force=True)), parties).processed
    content_info = info["content"]["encrypted_content_info"]
    ciphertext = content_info["encrypted_content"].native
    assert len(ciphertext) > 2 * block
    content_info["encrypted_content"] = flip_byte(ciphertext, len(ciphertext) - block - 1)
    message = receive(with_body(info.dump(force=True)), parties)

    assert_refused(message, "decryption-failed")
    assert message.reason and message.reason.startswith("The message could not be decrypted")
    assert message.encrypted and not message.signed


@pytest.mark.parametrize("signed", [False, True], ids=["encrypted", "signed-encrypted"])
def test_a_message_encrypted_to_someone_else_is_decryption_failed(
    signed: bool, parties: Parties
) -> None:
    entity = ENTITIES["text"]
    inner = sign(entity.mime(), parties.partner) if signed else entity.mime()
    message = receive(encrypt(inner, parties.foreign), parties)

    assert_refused(message, "decryption-failed")
    assert message.reason and message.reason.startswith("The message could not be decrypted")
    assert message.encrypted and not message.signed
