"""The AS2 message layer: parse one inbound AS2 request or MDN with pyas2lib, nothing more.

No HTTP, no storage, no engine: bytes in, a frozen result out. Every function here is blocking
and pure (CMS crypto and MIME parsing on the caller's thread, no I/O, no shared state): callers
on an event loop run them in a thread.

Dispositions follow RFC 4130 §7.5.3. Certificate expiry is deliberately not enforced here
(pyas2lib's ``validate_certs`` is off): partners' certificates are checked and warned about by
:mod:`core.as2.certificates`, and a message must not silently fail on the day a certificate
expires while the partner still uses it. Signatures are always verified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message as MimeMessage
from typing import Any

from pyas2lib import as2
from pyas2lib.exceptions import (
    DecompressionError,
    DecryptionError,
    InsufficientSecurityError,
    IntegrityError,
    PartnerNotFound,
)

__all__ = [
    "InboundMdn",
    "InboundMessage",
    "OurIdentity",
    "OutboundMdn",
    "PartnerIdentity",
    "parse_inbound_mdn",
    "parse_inbound_message",
    "refusal_mdn",
    "split_http_request",
]

PROCESSED = "processed"
DECRYPTION_FAILED = "decryption-failed"
AUTHENTICATION_FAILED = "authentication-failed"
INTEGRITY_CHECK_FAILED = "integrity-check-failed"
INSUFFICIENT_SECURITY = "insufficient-message-security"
DECOMPRESSION_FAILED = "decompression-failed"
UNEXPECTED_ERROR = "unexpected-processing-error"
# pyas2lib raises the same IntegrityError for a foreign signer and for altered content; only
# this message tells the two apart (the CMS message-digest attribute no longer matches).
_DIGEST_MISMATCH = "Message Digest does not match"
_SMIME_SUFFIXES = (".p7m", ".p7s", ".p7z")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True, slots=True)
class OurIdentity:
    """The receiving organisation: our AS2 id and our key pair.

    ``private_key`` is PKCS#12 or PEM (optionally encrypted PKCS#8); with a PEM key that does
    not carry its certificate, pass the certificate in ``certificate_pem``.
    """

    as2_id: str
    private_key: bytes
    private_key_password: str | None = None
    certificate_pem: bytes = b""


@dataclass(frozen=True, slots=True)
class PartnerIdentity:
    """A trading partner we know: its AS2 id and the certificate that verifies its signatures."""

    as2_id: str
    certificate_pem: bytes


@dataclass(frozen=True, slots=True)
class OutboundMdn:
    """The MDN to answer with, as pyas2lib built it: HTTP headers and body."""

    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """What one inbound AS2 request turned out to be.

    ``disposition`` is ``processed`` or ``processed/error: <modifier>`` (RFC 4130); on error
    ``reason`` says why in words and ``payload`` must not be delivered. ``mdn`` is set when the
    sender asked for one (sync or async: see ``receipt_delivery_option``).
    """

    message_id: str | None
    as2_from: str | None
    as2_to: str | None
    payload: bytes
    content_type: str | None
    filename: str | None
    signed: bool
    encrypted: bool
    compressed: bool
    mic: str | None
    mic_algorithm: str | None
    disposition: str
    reason: str | None
    mdn: OutboundMdn | None
    receipt_delivery_option: str | None

    @property
    def processed(self) -> bool:
        return self.disposition == PROCESSED


@dataclass(frozen=True, slots=True)
class InboundMdn:
    """An MDN a partner sent back for one of our messages.

    ``disposition`` is as the partner wrote it (e.g. ``processed`` or
    ``processed/error: authentication-failed``); ``mic`` is the Received-Content-MIC the caller
    compares with the MIC it computed when sending. ``signature_verified`` is False for an
    unsigned MDN; ``reason`` explains a failed verification or an unreadable MDN.
    """

    original_message_id: str | None
    disposition: str | None
    mic: str | None
    mic_algorithm: str | None
    signed: bool
    signature_verified: bool
    reason: str | None


def split_http_request(raw: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """Split a raw HTTP request (headers, blank line, body) into header pairs and the body.

    Accepts CRLF or LF line ends and folded (continued) header lines; a request line
    (``POST /as2 HTTP/1.1``) at the top is skipped.
    """
    head, body = _split_at_blank_line(raw)
    headers: list[tuple[str, str]] = []
    for line in head.decode("latin-1").splitlines():
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
        elif ":" in line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return headers, body


def parse_inbound_message(
    headers: list[tuple[str, str]],
    body: bytes,
    us: OurIdentity,
    partner: PartnerIdentity,
    payload_limit: int | None = None,
) -> InboundMessage:
    """Verify, decrypt and decompress one inbound AS2 request addressed to ``us`` by ``partner``.

    A payload over ``payload_limit`` bytes is refused (``decompression-failed`` when it was
    compressed). pyas2lib decompresses in memory, so the limit bounds what is kept, not the
    peak while decompressing.

    Never raises for what a partner sends: every failure becomes a disposition with a reason
    (and an MDN saying so, if one was asked for). Blocking: run it in a thread.
    """
    message = as2.Message()
    outer = {name.lower(): value for name, value in headers}

    def find_org(as2_id: str) -> as2.Organization | None:
        return _organization(us) if as2_id == us.as2_id else None

    def find_partner(as2_id: str) -> as2.Partner | None:
        return _partner(partner) if as2_id == partner.as2_id else None

    _status, (error, _trace), _mdn = message.parse(
        _join_http_request(headers, body), find_org, find_partner
    )
    _drop_transport_encoding(message, outer)
    modifier, reason = _failure(error, outer)
    if modifier is None and payload_limit is not None and len(_content(message)) > payload_limit:
        # Compressed: a bomb, and RFC 4130 names it; otherwise the body cap should have caught it.
        modifier = DECOMPRESSION_FAILED if message.compressed else UNEXPECTED_ERROR
        reason = f"The payload is larger than the {payload_limit} bytes this gateway accepts."
    disposition = PROCESSED if modifier is None else f"processed/error: {modifier}"
    ok = modifier is None
    return InboundMessage(
        message_id=message.message_id,
        as2_from=outer.get("as2-from"),
        as2_to=outer.get("as2-to"),
        payload=_content(message) if ok else b"",
        content_type=_own_header(message, outer, "content-type") if ok else None,
        filename=_payload_filename(message, outer) if ok else None,
        signed=message.signed,
        encrypted=message.encrypted,
        compressed=message.compressed,
        mic=message.mic.decode() if ok and message.mic else None,
        mic_algorithm=message.digest_alg if ok and message.mic else None,
        disposition=disposition,
        reason=reason,
        mdn=_build_mdn(message, outer, modifier),
        receipt_delivery_option=outer.get("receipt-delivery-option"),
    )


def parse_inbound_mdn(
    headers: list[tuple[str, str]], body: bytes, partner_certificate: bytes
) -> InboundMdn:
    """Read an MDN and verify its signature (if signed) with the partner's certificate.

    The MIC is returned, not compared: the caller looks the original message up by
    ``original_message_id`` and compares. Blocking: run it in a thread.
    """
    mdn = as2.Mdn()
    verifier = as2.Message()
    verifier.receiver = as2.Partner(
        as2_name="partner", verify_cert=partner_certificate, validate_certs=False
    )
    status, detail = mdn.parse(
        _join_http_request(headers, body), lambda _message_id, _recipient: verifier
    )
    signed = _content_type(headers) == "multipart/signed"
    failed = status is not None and status.startswith("failed/")
    report = _disposition_report(mdn.payload)
    mic_field = report.get("Received-Content-MIC", "") if report else ""
    mic, _, algorithm = (part.strip() for part in mic_field.partition(","))
    disposition = report.get("Disposition") if report else None
    return InboundMdn(
        original_message_id=_original_message_id(report),
        disposition=disposition.split(";")[-1].strip() if disposition else None,
        mic=mic or None,
        mic_algorithm=algorithm or None,
        signed=signed,
        signature_verified=signed and not failed,
        reason=str(detail) if failed else None,
    )


def refusal_mdn(headers: list[tuple[str, str]], modifier: str, text: str) -> OutboundMdn | None:
    """An unsigned error MDN for a request refused before its body is read (integration off,
    not our AS2 id): no MIC, nothing decrypted. None when the sender asked for no MDN."""
    outer = {name.lower(): value for name, value in headers}
    if not outer.get("disposition-notification-to"):
        return None
    message = as2.Message()
    message.payload = MimeMessage()
    for name in ("as2-from", "as2-to", "message-id"):
        message.payload[name] = outer.get(name, "")
    message.message_id = outer.get("message-id", "").strip().strip("<>")
    mdn = as2.Mdn(mdn_mode="SYNC")
    mdn.build(
        message=message,
        status="processed/Error",
        detailed_status=modifier,
        failed_text=f"{text}\r\n",
    )
    return OutboundMdn(headers=tuple(mdn.headers.items()), body=mdn.content)


def _failure(error: BaseException | None, outer: dict[str, str]) -> tuple[str | None, str | None]:
    """Map pyas2lib's exception to an RFC 4130 disposition modifier and a reason in words."""
    if error is None:
        return None, None
    if isinstance(error, PartnerNotFound):
        # RFC 4130 has no modifier for this; a sender we do not know cannot be authenticated.
        who = f"AS2-From '{outer.get('as2-from')}' to AS2-To '{outer.get('as2-to')}'"
        return AUTHENTICATION_FAILED, f"Unknown trading partner: {who} is not configured."
    if isinstance(error, DecryptionError):
        return DECRYPTION_FAILED, f"The message could not be decrypted with our key: {error}"
    if isinstance(error, IntegrityError):
        if _DIGEST_MISMATCH in str(error):
            return INTEGRITY_CHECK_FAILED, "The content was altered after it was signed."
        return AUTHENTICATION_FAILED, f"The signature is not the partner's: {error}"
    if isinstance(error, InsufficientSecurityError):
        return INSUFFICIENT_SECURITY, str(error)
    if isinstance(error, DecompressionError):
        return DECOMPRESSION_FAILED, str(error)
    return UNEXPECTED_ERROR, f"The message could not be processed ({type(error).__name__})."


def _build_mdn(
    message: as2.Message, outer: dict[str, str], modifier: str | None
) -> OutboundMdn | None:
    """Build the MDN with *our* disposition (pyas2lib's own uses non-RFC modifiers)."""
    if not outer.get("disposition-notification-to"):
        return None
    if message.sender is None:
        # An unknown partner gets an unsigned MDN: we have no agreement on how to sign for it.
        message.sender = as2.Partner(as2_name=outer.get("as2-from") or "unknown")
        message.receiver = None
    options = outer.get("disposition-notification-options")
    digest = options.split(";")[-1].split(",")[-1].strip() if options else None
    mdn = as2.Mdn(
        mdn_mode="ASYNC" if outer.get("receipt-delivery-option") else "SYNC",
        mdn_url=outer.get("receipt-delivery-option"),
        digest_alg=digest,
    )
    if modifier is None:
        mdn.build(message=message, status=PROCESSED)
    else:
        mdn.build(message=message, status="processed/Error", detailed_status=modifier)
    return OutboundMdn(headers=tuple(mdn.headers.items()), body=mdn.content)


def _organization(us: OurIdentity) -> as2.Organization:
    """pyas2lib's view of us."""
    key = us.private_key
    if us.certificate_pem and b"-----BEGIN" in key:
        key = key.rstrip(b"\n") + b"\n" + us.certificate_pem
    return as2.Organization(
        as2_name=us.as2_id,
        sign_key=key,
        sign_key_pass=us.private_key_password,
        decrypt_key=key,
        decrypt_key_pass=us.private_key_password,
    )


def _partner(partner: PartnerIdentity) -> as2.Partner:
    return as2.Partner(
        as2_name=partner.as2_id,
        verify_cert=partner.certificate_pem,
        encrypt_cert=partner.certificate_pem,
        validate_certs=False,
    )


def _drop_transport_encoding(message: as2.Message, outer: dict[str, str]) -> None:
    """Take back the request's Content-Transfer-Encoding from a payload that declares none.

    pyas2lib appends every HTTP header to the payload. The request's Content-Transfer-Encoding
    describes the S/MIME body (``openssl cms`` writes base64); applied to a payload entity with
    no encoding of its own (7bit, as text EDI usually is) it would base64-"decode" the payload
    into garbage that is then delivered as processed.
    """
    payload = message.payload
    if payload is None or "content-transfer-encoding" not in outer:
        return
    if _own_header(message, outer, "content-transfer-encoding") is None:
        del payload["Content-Transfer-Encoding"]


def _content(message: as2.Message) -> bytes:
    content: Any = message.content
    return content if isinstance(content, bytes) else bytes(content, "utf-8")


def _own_header(message: as2.Message, outer: dict[str, str], name: str) -> str | None:
    """A header of the payload itself, not the copy pyas2lib appends from the HTTP request."""
    values = message.payload.get_all(name) or [] if message.payload is not None else []
    if name in outer:
        values = values[:-1]
    return str(values[0]) if values else None


def _payload_filename(message: as2.Message, outer: dict[str, str]) -> str | None:
    """The payload's own filename, else the HTTP header's unless that names the S/MIME wrapper
    (Mendelson puts the original filename only in the HTTP header of an encrypted message)."""
    own = _filename(_own_header(message, outer, "content-disposition"))
    if own:
        return own
    transport = _filename(outer.get("content-disposition"))
    return None if transport is None or transport.lower().endswith(_SMIME_SUFFIXES) else transport


def _filename(content_disposition: str | None) -> str | None:
    if content_disposition is None:
        return None
    probe = MimeMessage()
    probe["Content-Disposition"] = content_disposition
    return probe.get_filename()


def _disposition_report(payload: MimeMessage | None) -> MimeMessage | None:
    if payload is None:
        return None
    for part in payload.walk():
        if part.get_content_type() == "message/disposition-notification":
            fields = part.get_payload()
            if isinstance(fields, list) and fields and isinstance(fields[-1], MimeMessage):
                return fields[-1]
    return None


def _original_message_id(report: MimeMessage | None) -> str | None:
    value = report.get("Original-Message-ID") if report else None
    return str(value).strip().strip("<>") or None if value else None


def _content_type(headers: list[tuple[str, str]]) -> str | None:
    probe = message_from_bytes(b"".join(f"{n}: {v}\r\n".encode() for n, v in headers))
    return probe.get_content_type() if probe.get("content-type") else None


def _join_http_request(headers: list[tuple[str, str]], body: bytes) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return head.encode("latin-1") + b"\r\n" + body


def _split_at_blank_line(raw: bytes) -> tuple[bytes, bytes]:
    # The first empty line ends the headers, whatever mix of LF and CRLF the sender used
    # (Mendelson writes LF headers followed by a CRLF blank line).
    end = _BLANK_LINE.search(raw)
    head, body = (raw[: end.start()], raw[end.end() :]) if end else (raw, b"")
    first, _, rest = head.partition(b"\n")
    if b":" not in first and b"HTTP/" in first:
        head = rest
    return head, body
