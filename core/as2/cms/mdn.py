"""The MDN (RFC 4130 §7.4) answering an inbound message, as pyas2lib would send it.

The report carries our disposition and, when processed, the MIC; it is signed with our
current key when the sender asked for a signed receipt with a digest we support, and goes
unsigned when we cannot sign (an MDN is owed either way).
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from email import utils as email_utils

from core.as2.cms.algorithms import DIGESTS, normalize_digest_name
from core.as2.cms.keys import KeyPair
from core.as2.cms.mime import AS2_VERSION, EDIINT_FEATURES, new_boundary, quote_as2name
from core.as2.cms.outcome import State
from core.as2.cms.signature import SIGNATURE_HEAD, sign
from core.as2.messages import OutboundMdn

# The texts pyas2lib puts in its MDNs (pyas2lib.constants): partners see the same either way.
MDN_CONFIRM_TEXT = (
    "The AS2 message has been successfully processed. "
    "Thank you for exchanging AS2 messages with pyAS2."
)


MDN_FAILED_TEXT = (
    "The AS2 message could not be processed. The "
    "disposition-notification report has additional details."
)


REPORTING_UA = "pyAS2 Open Source AS2 Software"


def _mdn_digest(options: str) -> str:
    """The first digest of signed-receipt-micalg we support (RFC 4130 §7.3: honoured left to
    right); sha256 when none is."""
    for parameter in options.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() != "signed-receipt-micalg":
            continue
        for token in value.split(","):
            digest = normalize_digest_name(token)
            if digest in DIGESTS:
                return digest
    return "sha256"


def _signed_mdn(
    report_type: str, report_body: bytes, options: str, signer: KeyPair | None
) -> tuple[bytes, str] | None:
    """(body, Content-Type) of the MDN signed with our key, as pyas2lib signs it; None when we
    cannot sign (partner unknown, no usable key): the MDN then goes unsigned."""
    if signer is None:
        return None
    try:
        pair = signer
        if pair.certificate is None:
            return None
        digest = _mdn_digest(options)
        signed_content = f"Content-Type: {report_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
        signed_content += report_body
        signature = sign(hashlib.new(digest, signed_content).digest(), digest, pair)
    except Exception:  # noqa: BLE001 - an MDN is owed even when our key fails
        return None
    boundary = new_boundary()
    body = b"".join(
        (
            f"--{boundary}\r\n".encode(),
            signed_content,
            f"\r\n--{boundary}\r\n".encode(),
            SIGNATURE_HEAD,
            base64.encodebytes(signature).replace(b"\n", b"\r\n"),
            f"\r\n--{boundary}--\r\n".encode(),
        )
    )
    content_type = (
        'multipart/signed; protocol="application/pkcs7-signature"; '
        f'micalg="{digest}"; boundary="{boundary}"'
    )
    return body, content_type


def build_mdn(
    outer: dict[str, str],
    message_id: str | None,
    modifier: str | None,
    state: State,
    signer: KeyPair | None,
) -> OutboundMdn | None:
    """The MDN pyas2lib would send, with our (RFC 4130) disposition."""
    if not outer.get("disposition-notification-to"):
        return None
    as2_to = outer.get("as2-to") or ""
    as2_from = outer.get("as2-from") or ""
    status = "processed" if modifier is None else f"processed/Error: {modifier}"
    text = MDN_CONFIRM_TEXT if modifier is None else MDN_FAILED_TEXT
    report = (
        f"Reporting-UA: {REPORTING_UA}\r\n"
        f"Original-Recipient: rfc822; {as2_to}\r\n"
        f"Final-Recipient: rfc822; {as2_to}\r\n"
        f"Original-Message-ID: <{message_id}>\r\n"
        f"Disposition: automatic-action/MDN-sent-automatically; {status}\r\n"
    )
    if state.mic and modifier is None:
        report += f"Received-content-MIC: {state.mic}, {state.mic_algorithm}\r\n"
    inner = new_boundary()
    report_type = f'multipart/report; report-type="disposition-notification"; boundary="{inner}"'
    report_body = (
        f"--{inner}\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
        f"{text}\r\n\r\n"
        f"--{inner}\r\nContent-Type: message/disposition-notification\r\n"
        f"Content-Transfer-Encoding: 7bit\r\n\r\n{report}\r\n--{inner}--\r\n"
    ).encode()
    domain = re.sub(r"[^A-Za-z0-9.-]", "", as2_to) or "localhost"
    headers: list[tuple[str, str]] = []
    options = outer.get("disposition-notification-options")
    signed = _signed_mdn(report_type, report_body, options, signer) if options else None
    if signed is not None:
        body, content_type = signed
        headers.append(("Content-Type", content_type))
    else:
        body = report_body
        headers += [("Content-Type", report_type), ("MIME-Version", "1.0")]
    headers += [
        ("AS2-Version", AS2_VERSION),
        ("ediint-features", EDIINT_FEATURES),
        ("Message-ID", f"<{uuid.uuid4().hex}@{domain}>"),
        ("AS2-From", quote_as2name(as2_to)),
        ("AS2-To", quote_as2name(as2_from)),
        ("Date", email_utils.formatdate(localtime=True)),
        ("user-agent", REPORTING_UA),
    ]
    return OutboundMdn(headers=tuple(headers), body=body)
