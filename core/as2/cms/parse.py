"""Inbound AS2 messages: peel the S/MIME layers off, in whatever order, and answer.

:func:`parse_message` checks who is talking, then decrypts, verifies and decompresses as the
layers come (:mod:`~core.as2.cms.envelope`, :mod:`~core.as2.cms.signature`,
:mod:`~core.as2.cms.compression`), enforces what the partnership requires and the payload
limit, and returns the payload with the disposition and MDN pyas2lib would give. A partner's
message never makes it raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from email import utils as email_utils

from core.as2.cms.asn1 import (
    OID_COMPRESSED_DATA,
    OID_ENVELOPED_DATA,
    OID_SIGNED_DATA,
    content_info,
)
from core.as2.cms.compression import TOO_MUCH, decompress
from core.as2.cms.envelope import decrypt
from core.as2.cms.keys import Keys, OwnConfigurationError, load_keys
from core.as2.cms.mdn import build_mdn
from core.as2.cms.mime import MAX_HEADERS, Entity, decoded_body, disposition_filename
from core.as2.cms.outcome import Failure, State
from core.as2.cms.signature import verify
from core.as2.messages import (
    AUTHENTICATION_FAILED,
    DECOMPRESSION_FAILED,
    INSUFFICIENT_SECURITY,
    PROCESSED,
    UNEXPECTED_ERROR,
    InboundMessage,
    OurIdentity,
    PartnerIdentity,
)

DEFAULT_MAX_DECOMPRESSED = 2 << 30


_SMIME_SUFFIXES = (".p7m", ".p7s", ".p7z")


_MAX_LAYERS = 8


def parse_message(
    headers: Sequence[tuple[str, str]],
    body: bytes | bytearray,
    us: OurIdentity | Sequence[OurIdentity],
    partner: PartnerIdentity | Sequence[PartnerIdentity],
    payload_limit: int | None = None,
    *,
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
    require_signed: bool = False,
    require_encrypted: bool = False,
) -> InboundMessage:
    """Decrypt, verify and decompress one inbound AS2 request, in whatever order the sender
    layered them, and build the MDN it asked for: what
    :func:`core.as2.messages.parse_inbound_message` returns, much faster.

    ``us`` may list several identities with the same AS2 id (our current key first: it signs
    the MDN; older ones still decrypt); ``partner`` may list several (certificate rollover: any
    certificate verifies), and a certificate PEM may hold several certificates.

    A payload over ``payload_limit`` bytes is refused as messages.parse_inbound_message refuses
    it (``decompression-failed`` when compressed, else ``unexpected-processing-error``);
    decompression stops as soon as the limit (or ``max_decompressed``) is passed, so a bomb
    never inflates. Never raises for what a partner sends; raises
    :class:`OwnConfigurationError` when our key or the partner's certificate cannot be read.
    Blocking: run it in a thread.
    """
    ours = [us] if isinstance(us, OurIdentity) else list(us)
    partners = [partner] if isinstance(partner, PartnerIdentity) else list(partner)
    if not ours or not partners:
        raise ValueError("parse_message needs our identity and the partner's.")
    outer = {name.lower(): value for name, value in headers}
    raw_id = outer.get("message-id")
    message_id = raw_id.lstrip("<").rstrip(">") if raw_id is not None else None
    state = State()
    payload = b""
    content_type: str | None = None
    filename: str | None = None
    modifier: str | None = None
    reason: str | None = None
    known = False
    keys: Keys | None = None
    too_large = f"The payload is larger than the {payload_limit} bytes this gateway accepts."
    limit = max_decompressed
    if payload_limit is not None:
        # The decompressed entity is the payload and its MIME headers.
        limit = min(limit, payload_limit + MAX_HEADERS)
    try:
        org_id = email_utils.unquote(outer["as2-to"])
        partner_id = email_utils.unquote(outer["as2-from"])
        ours = [identity for identity in ours if identity.as2_id == org_id]
        partners = [identity for identity in partners if identity.as2_id == partner_id]
        known = bool(ours and partners)
        if not known:
            who = f"AS2-From '{outer.get('as2-from')}' to AS2-To '{outer.get('as2-to')}'"
            raise Failure(
                AUTHENTICATION_FAILED, f"Unknown trading partner: {who} is not configured."
            )
        keys = load_keys(ours, partners)
        body = body if isinstance(body, bytes) else bytes(body)
        top = Entity(data=body, headers=list(headers), start=0, body_start=0, end=len(body))
        entity = _unwrap(top, keys, state, limit)
        for required, done, what in (
            (require_encrypted, state.encrypted, "encrypted"),
            (require_signed, state.signed, "signed"),
        ):
            if required and not done:
                raise Failure(
                    INSUFFICIENT_SECURITY,
                    f"Incoming messages from partner {partner_id} are must be {what} "
                    f"but {what} message not found.",
                )
        payload = _payload(entity)
        if payload_limit is not None and len(payload) > payload_limit:
            raise Failure(DECOMPRESSION_FAILED if state.compressed else UNEXPECTED_ERROR, too_large)
        own_type = entity.get("content-type")
        content_type = own_type
        filename = disposition_filename(entity.get("content-disposition"))
        if not filename:
            transport = disposition_filename(outer.get("content-disposition"))
            if transport and not transport.lower().endswith(_SMIME_SUFFIXES):
                filename = transport
    except Failure as failure:
        modifier, reason = failure.modifier, failure.reason
        if modifier == DECOMPRESSION_FAILED and reason == TOO_MUCH and payload_limit is not None:
            reason = too_large
    except OwnConfigurationError:
        raise
    except Exception as error:  # noqa: BLE001 - a partner's message must never raise
        modifier = UNEXPECTED_ERROR
        reason = f"The message could not be processed ({type(error).__name__})."
    ok = modifier is None
    if not ok:
        state.mic = state.mic_algorithm = None
        payload = b""
        content_type = filename = None
    mdn = build_mdn(outer, message_id, modifier, state, keys.ours[0] if keys else None)
    return InboundMessage(
        message_id=message_id,
        as2_from=outer.get("as2-from"),
        as2_to=outer.get("as2-to"),
        payload=payload,
        content_type=content_type,
        filename=filename,
        signed=state.signed,
        encrypted=state.encrypted,
        compressed=state.compressed,
        mic=state.mic,
        mic_algorithm=state.mic_algorithm,
        disposition=PROCESSED if ok else f"processed/error: {modifier}",
        reason=reason,
        mdn=mdn,
        receipt_delivery_option=outer.get("receipt-delivery-option"),
    )


def _unwrap(entity: Entity, keys: Keys, state: State, max_decompressed: int) -> Entity:
    """Peel the S/MIME layers off until the payload entity remains."""
    for _ in range(_MAX_LAYERS):
        main, params = entity.content_type()
        if main in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
            data, start, end = decoded_body(entity)
            kind, _inner = content_info(data, start, end)
            if kind == OID_ENVELOPED_DATA:
                state.encrypted = True
                entity = decrypt(data, start, end, keys.ours)
                if entity.get("content-type") is None:
                    # Mendelson encrypts a bare payload, no MIME headers: all of it is the
                    # payload, typed as pyas2lib types it.
                    entity = Entity(
                        data=entity.data,
                        headers=[("Content-Type", "application/edi-consent")],
                        start=0,
                        body_start=0,
                        end=entity.end,
                        owner=entity.owner,
                    )
                continue
            if kind == OID_COMPRESSED_DATA:
                state.compressed = True
                entity = decompress(data, start, end, max_decompressed)
                continue
            if kind == OID_SIGNED_DATA:
                raise Failure(
                    UNEXPECTED_ERROR, "Opaque signed messages (signed-data) are not supported."
                )
            raise Failure(UNEXPECTED_ERROR, "Unknown CMS content in the message.")
        if main == "multipart/signed":
            state.signed = True
            entity = verify(entity, params, keys.certificates, state)
            continue
        return entity
    raise Failure(UNEXPECTED_ERROR, f"More than {_MAX_LAYERS} S/MIME layers in the message.")


def _payload(entity: Entity) -> bytes:
    """The payload's bytes. When they lie in a decryption buffer only this package holds, they
    are moved to its front and the buffer becomes the result: no second copy of a large
    payload. (Were the buffer still shared, io.BytesIO would copy it: slower, never wrong.)"""
    data, start, end = decoded_body(entity)
    if start == 0 and end == len(data):
        return data
    owner = entity.owner
    if owner is None or data is not entity.data:
        return data[start:end]
    entity.data = b""
    entity.owner = None
    del data
    return owner.cut(start, end)
