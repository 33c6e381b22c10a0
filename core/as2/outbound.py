"""Build one outbound AS2 message with pyas2lib: compress, sign, encrypt as the partnership says.

Blocking and pure (CMS crypto, no I/O): callers on an event loop run it in a thread. The
Message-ID is the caller's, so every retry of one message carries the same one (the partner's
duplicate check depends on it).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyas2lib import as2

from core.as2.messages import OurIdentity, PartnerIdentity, organization

NONE = "none"
# Binary payloads must reach the partner byte for byte: pyas2lib sends application/octet-stream
# with Content-Transfer-Encoding binary, and re-encodes text types (edi-consent) as 7/8 bit.
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
    receiver = as2.Partner(
        as2_name=partner.as2_id,
        verify_cert=partner.certificate_pem,
        encrypt_cert=partner.certificate_pem,
        validate_certs=False,
        compress=options.compress,
        sign=sign,
        digest_alg=options.signing if sign else "sha256",
        encrypt=options.encryption != NONE,
        enc_alg=options.encryption if options.encryption != NONE else "aes_256_cbc",
        mdn_mode=options.mdn_mode.upper() if options.mdn_mode != NONE else None,
        mdn_digest_alg=(options.signing if sign else "sha256") if options.mdn_signed else None,
    )
    left, _, domain = message_id.partition("@")
    sender = organization(us, mdn_url=options.mdn_url or None, domain=domain or None)
    message = as2.Message(sender=sender, receiver=receiver)
    message.build(
        payload,
        filename=filename,
        subject=f"AS2 message from {us.as2_id}",
        content_type=content_type,
        disposition_notification_to=f"as2@{domain or 'docbridge'}",
        message_id=left,
    )
    mic = message.mic.decode() if isinstance(message.mic, bytes) else str(message.mic or "")
    return BuiltMessage(
        message_id=message.message_id,
        headers=tuple((str(k), str(v)) for k, v in message.headers.items()),
        body=message.content,
        mic=mic,
        mic_algorithm=message.digest_alg or "sha256",
        signed=message.signed,
        encrypted=message.encrypted,
        compressed=message.compressed,
    )
