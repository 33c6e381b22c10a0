"""Build one outbound AS2 message: compress, sign, encrypt as the partnership says.

The CMS work is :mod:`core.as2.cms` (on ``cryptography``, byte-compatible with pyas2lib, which
the tests use as the oracle). Blocking and pure (no I/O): callers on an event loop run it in a
thread. The
Message-ID is the caller's, so every retry of one message carries the same one (the partner's
duplicate check depends on it).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.as2 import cms
from core.as2.messages import OurIdentity, PartnerIdentity

NONE = "none"
# Binary payloads must reach the partner byte for byte; some receivers (pyas2lib among them)
# re-encode text types such as application/edi-consent.
OCTET_STREAM = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class SendOptions:
    """How a partnership wants its messages (the form's AS2 fields)."""

    encryption: str = "aes_256_cbc"  # or "none"
    signing: str = "sha256"  # or "none"
    compress: bool = False
    mdn_mode: str = "sync"  # "sync", "async" or "none"
    mdn_signed: bool = True
    mdn_url: str = ""  # where the partner posts an asynchronous MDN


@dataclass(frozen=True, slots=True)
class BuiltMessage:
    message_id: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    mic: str  # base64, as the partner's MDN must return it
    mic_algorithm: str
    signed: bool
    encrypted: bool
    compressed: bool


def build_message(
    payload: bytes,
    *,
    filename: str,
    message_id: str,
    us: OurIdentity,
    partner: PartnerIdentity,
    options: SendOptions,
    content_type: str = OCTET_STREAM,
) -> BuiltMessage:
    """The request's headers and body. ``message_id`` is used as given (left and right part)."""
    sign = options.signing != NONE
    encrypt = options.encryption != NONE
    domain = message_id.partition("@")[2] or "docbridge"
    mdn = options.mdn_mode != NONE
    built = cms.build_message(
        payload,
        as2_from=us.as2_id,
        as2_to=partner.as2_id,
        message_id=message_id,
        filename=filename,
        content_type=content_type,
        sign_key_pem=us.private_key if sign else None,
        sign_cert_pem=us.certificate_pem or None,
        sign_key_password=us.private_key_password,
        digest=options.signing if sign else None,
        encrypt_cert_pem=partner.certificate_pem if encrypt else None,
        encryption=options.encryption if encrypt else None,
        compress=options.compress,
        mdn_to=f"as2@{domain}" if mdn else None,
        mdn_signed_digest=(options.signing if sign else "sha256")
        if mdn and options.mdn_signed
        else None,
        receipt_delivery_option=options.mdn_url if options.mdn_mode == "async" else None,
        subject=f"AS2 message from {us.as2_id}",
    )
    return BuiltMessage(
        message_id=built.message_id,
        headers=built.headers,
        body=built.body,
        mic=built.mic,
        mic_algorithm=built.mic_algorithm,
        signed=sign,
        encrypted=encrypt,
        compressed=options.compress,
    )
