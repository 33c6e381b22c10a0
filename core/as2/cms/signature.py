"""CMS SignedData: sign as pyas2lib signs, and verify a multipart/signed entity.

Signing makes the detached SignedData (with pyas2lib's signed attributes and S/MIME
capabilities) that a message or an MDN carries. Verifying finds the signed part and the
signature by their delimiters (searching from both ends, so a large payload is not scanned
line by line), digests the signed part in place, exactly as received (RFC 1847) and, only if
that does not match, as pyas2lib re-serialises it, then checks every signer against the
partner's certificates (RSA PKCS#1 v1.5 or PSS, ECDSA) and records the MIC.
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
from collections.abc import Iterable
from email import message_from_bytes
from email import policy as email_policy
from email.generator import BytesGenerator
from typing import Any

from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from core.as2.cms.algorithms import HASHES, normalize_digest_name
from core.as2.cms.asn1 import (
    NULL,
    OID_CONTENT_TYPE,
    OID_DATA,
    OID_MESSAGE_DIGEST,
    OID_RSA,
    OID_SIGNED_DATA,
    OID_SIGNING_TIME,
    der_oid,
    seq,
    tlv,
)
from core.as2.cms.keys import Certificate, KeyPair
from core.as2.cms.mime import EOL, Entity, decoded_body, parse_entity
from core.as2.cms.outcome import Failure, State
from core.as2.messages import AUTHENTICATION_FAILED, INTEGRITY_CHECK_FAILED, UNEXPECTED_ERROR

# --- signing ------------------------------------------------------------------------------------


# The S/MIME capabilities attribute pyas2lib signs (aes256, aes128, 3des, rc2/128, rc4/128).
_SMIME_CAPABILITIES = base64.b64decode(
    "MFUGCSqGSIb3DQEJDzFIMEYwCwYJYIZIAWUDBAEqMAsGCWCGSAFlAwQBAjAKBggqhkiG9w0DBzAOBggqhkiG9w0DAg"
    "ICAIAwDgYIKoZIhvcNAwQCAgCA"
)


_DIGEST_OIDS = {
    "md5": der_oid("1.2.840.113549.2.5"),
    "sha1": der_oid("1.3.14.3.2.26"),
    "sha224": der_oid("2.16.840.1.101.3.4.2.4"),
    "sha256": der_oid("2.16.840.1.101.3.4.2.1"),
    "sha384": der_oid("2.16.840.1.101.3.4.2.2"),
    "sha512": der_oid("2.16.840.1.101.3.4.2.3"),
}


_ECDSA_OIDS = {
    "sha1": der_oid("1.2.840.10045.4.1"),
    "sha224": der_oid("1.2.840.10045.4.3.1"),
    "sha256": der_oid("1.2.840.10045.4.3.2"),
    "sha384": der_oid("1.2.840.10045.4.3.3"),
    "sha512": der_oid("1.2.840.10045.4.3.4"),
}


SIGNATURE_HEAD = (
    b'Content-Type: application/pkcs7-signature; name="smime.p7s"; smime-type="signed-data"\r\n'
    b'Content-Disposition: attachment; filename="smime.p7s"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n"
)


def _utc_time() -> bytes:
    return tlv(0x17, time.strftime("%y%m%d%H%M%SZ", time.gmtime()).encode())


def _signed_attributes(message_digest: bytes) -> bytes:
    """The content of pyas2lib's signed attributes (a SET OF without its tag)."""
    return b"".join(
        (
            seq(OID_CONTENT_TYPE, tlv(0x31, OID_DATA)),
            seq(OID_SIGNING_TIME, tlv(0x31, _utc_time())),
            seq(OID_MESSAGE_DIGEST, tlv(0x31, tlv(0x04, message_digest))),
            _SMIME_CAPABILITIES,
        )
    )


def sign(message_digest: bytes, digest: str, pair: KeyPair) -> bytes:
    """A detached CMS SignedData over content whose digest is ``message_digest``."""
    assert pair.certificate is not None
    attributes = _signed_attributes(message_digest)
    hash_algorithm = HASHES[digest]()
    key = pair.key
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(tlv(0x31, attributes), padding.PKCS1v15(), hash_algorithm)
        signature_algorithm = seq(OID_RSA, NULL)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(tlv(0x31, attributes), ec.ECDSA(hash_algorithm))
        signature_algorithm = seq(_ECDSA_OIDS[digest])
    else:
        raise ValueError("Only RSA and EC keys can sign.")
    digest_algorithm = seq(_DIGEST_OIDS[digest], NULL)
    signer_info = seq(
        b"\x02\x01\x01",
        pair.certificate.issuer_and_serial,
        digest_algorithm,
        tlv(0xA0, attributes),
        signature_algorithm,
        tlv(0x04, signature),
    )
    signed_data = seq(
        b"\x02\x01\x01",
        tlv(0x31, digest_algorithm),
        seq(OID_DATA),
        tlv(0xA0, pair.certificate.der),
        tlv(0x31, signer_info),
    )
    return seq(OID_SIGNED_DATA, tlv(0xA0, signed_data))


# --- verification -------------------------------------------------------------------------------


def verify(
    entity: Entity, params: dict[str, str], certificates: list[Certificate], state: State
) -> Entity:
    boundary = params.get("boundary")
    if not boundary:
        raise Failure(UNEXPECTED_ERROR, "A multipart/signed message without a boundary.")
    data, start, end = decoded_body(entity)
    first, second = _signed_parts(data, start, end, boundary.encode("latin-1"))
    owner = entity.owner if data is entity.data else None
    content = parse_entity(data, first[0], first[1], owner)
    signature_part = parse_entity(data, second[0], second[1])
    sig_data, sig_start, sig_end = decoded_body(signature_part)
    digest, content_digest = _check_signature(sig_data[sig_start:sig_end], content, certificates)
    state.mic_algorithm = digest
    state.mic = base64.b64encode(content_digest).decode("ascii")
    return content


def _after_eol(data: bytes, pos: int, end: int) -> int:
    match = EOL.search(data, pos, min(end, pos + 4096))
    return match.end() if match else end


def _before_eol(data: bytes, begin: int, stop: int) -> int:
    if stop - 2 >= begin and data[stop - 2 : stop] == b"\r\n":
        return stop - 2
    if stop - 1 >= begin and data[stop - 1] in b"\r\n":
        return stop - 1
    return stop


def _signed_parts(
    data: bytes, start: int, end: int, boundary: bytes
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(start, end) of the signed part and of the signature part; the line end before a
    delimiter belongs to the delimiter (RFC 2046). The first delimiter is searched from the
    front, the last two from the back: a large payload is not scanned line by line."""
    delimiter = b"--" + boundary
    pos = start
    while True:
        first = data.find(delimiter, pos, end)
        if first < 0:
            raise Failure(UNEXPECTED_ERROR, "The signed message has no parts.")
        if first == start or data[first - 1] in b"\r\n":
            break
        pos = first + 1
    marks: list[int] = []
    pos = end
    while len(marks) < 2:
        found = data.rfind(delimiter, first + 1, pos)
        if found < 0:
            break
        if data[found - 1] in b"\r\n":
            marks.insert(0, found)
        pos = found
    if marks and data.startswith(delimiter + b"--", marks[-1]):
        if len(marks) < 2:
            raise Failure(UNEXPECTED_ERROR, "The signed message has no signature.")
        signature_mark, closing = marks[0], marks[1]
    elif marks:
        signature_mark, closing = marks[-1], end  # no closing delimiter
    else:
        raise Failure(UNEXPECTED_ERROR, "The signed message has no signature.")
    content_start = _after_eol(data, first, end)
    signature_start = _after_eol(data, signature_mark, end)
    return (
        (content_start, max(content_start, _before_eol(data, content_start, signature_mark))),
        (signature_start, max(signature_start, _before_eol(data, signature_start, closing))),
    )


def _as_received(content: Entity) -> list[bytes | memoryview]:
    """The signed part exactly as received (RFC 1847)."""
    return [memoryview(content.data)[content.start : content.end]]


def _canonical(content: Entity) -> list[bytes | memoryview]:
    """The signed part as pyas2lib re-serialises it (pyas2lib.utils.canonicalize)."""
    if content.get("content-transfer-encoding") == "binary":
        head = "".join(f"{name}: {value}\r\n" for name, value in content.headers) + "\r\n"
        return [head.encode("latin-1"), memoryview(content.data)[content.body_start : content.end]]
    return [_mime_to_bytes(content.data[content.start : content.end])]


def _check_signature(
    signature: bytes, content: Entity, certificates: list[Certificate]
) -> tuple[str, bytes]:
    """Verify every signer as pyas2lib does: (digest algorithm, digest of the content)."""
    try:
        info = asn1_cms.ContentInfo.load(signature)
        if info["content_type"].native != "signed_data":
            raise ValueError("Signed data not found in ASN.1")
        signers = list(info["content"]["signer_infos"])
    except Exception as error:
        raise Failure(
            AUTHENTICATION_FAILED,
            f"The signature is not the partner's: Failed to verify message signature: {error}",
        ) from error
    if not signers:
        raise Failure(AUTHENTICATION_FAILED, "The signature is not the partner's: no signer.")
    digest_name = ""
    content_digest = b""
    for signer in signers:
        digest_name = normalize_digest_name(str(signer["digest_algorithm"]["algorithm"].native))
        if digest_name not in HASHES:
            raise Failure(UNEXPECTED_ERROR, "Unsupported Digest Algorithm")
        digests = [_digest(digest_name, _as_received(content))]
        attributes = signer["signed_attrs"]
        signed_bytes: bytes | None = None
        if not isinstance(attributes, asn1_core.Void):
            claimed = b""
            for attribute in attributes:
                if attribute["type"].native == "message_digest":
                    claimed = b"".join(attribute["values"].native)
            if digests[0] != claimed:
                # Not as received: as pyas2lib re-serialises it (only now, it costs a pass).
                digests.append(_digest(digest_name, _canonical(content)))
                if digests[1] != claimed:
                    raise Failure(
                        INTEGRITY_CHECK_FAILED, "The content was altered after it was signed."
                    )
                digests = digests[1:]
            signed_bytes = tlv(0x31, attributes.contents)
        else:
            digests.append(_digest(digest_name, _canonical(content)))
        why, verified = _verify_signer(signer, digest_name, signed_bytes, digests, certificates)
        if why is not None:
            raise Failure(
                AUTHENTICATION_FAILED,
                f"The signature is not the partner's: Failed to verify message signature: {why}",
            )
        content_digest = verified
    return digest_name, content_digest


def _digest(name: str, pieces: Iterable[bytes | memoryview]) -> bytes:
    hasher = hashlib.new(name)
    for piece in pieces:
        hasher.update(piece)
    return hasher.digest()


def _verify_signer(
    signer: Any,
    digest_name: str,
    signed_bytes: bytes | None,
    digests: list[bytes],
    certificates: list[Certificate],
) -> tuple[str | None, bytes]:
    """(None, the content digest) when one of the certificates verifies the signer, else
    (why not, b"")."""
    signature = signer["signature"].native
    algorithm = signer["signature_algorithm"]
    try:
        scheme = algorithm.signature_algo
    except Exception:  # noqa: BLE001
        scheme = "rsassa_pkcs1v15"
    hash_algorithm = HASHES[digest_name]()
    error = "no certificate"
    for certificate in certificates:
        public_key = certificate.certificate.public_key()
        targets: list[tuple[bytes, bool]] = (
            [(signed_bytes, False)] if signed_bytes is not None else [(d, True) for d in digests]
        )
        for message, prehashed in targets:
            chosen: Any = Prehashed(hash_algorithm) if prehashed else hash_algorithm
            try:
                if isinstance(public_key, rsa.RSAPublicKey):
                    if scheme == "rsassa_pss":
                        params = algorithm["parameters"]
                        mgf = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
                        mgf_hash = HASHES[normalize_digest_name(str(mgf))]()
                        salt = params["salt_length"].native
                        public_key.verify(
                            signature, message, padding.PSS(padding.MGF1(mgf_hash), salt), chosen
                        )
                    else:
                        public_key.verify(signature, message, padding.PKCS1v15(), chosen)
                elif isinstance(public_key, ec.EllipticCurvePublicKey):
                    public_key.verify(signature, message, ec.ECDSA(chosen))
                else:
                    error = "unsupported certificate key"
                    continue
                return None, message if prehashed else digests[0]
            except InvalidSignature:
                error = "Signature is invalid"
            except Exception as failure:  # noqa: BLE001
                error = str(failure) or type(failure).__name__
    return error, b""


# pyas2lib's canonical form of a part that is not binary: the email package re-serialises it.
class _BinaryBytesGenerator(BytesGenerator):
    def _handle_text(self, msg: Any) -> None:
        if (
            msg.get_content_type() == "application/octet-stream"
            or msg.get("Content-Transfer-Encoding") == "binary"
        ):
            payload = msg.get_payload(decode=True)
            if payload is not None:
                self._fp.write(payload)  # type: ignore[attr-defined]
        else:
            super()._handle_text(msg)  # type: ignore[misc]

    _writeBody = _handle_text  # noqa: N815


def _mime_to_bytes(raw: bytes) -> bytes:
    out = io.BytesIO()
    _BinaryBytesGenerator(out, policy=email_policy.HTTP).flatten(message_from_bytes(raw))
    return out.getvalue()
