"""CMS EnvelopedData: encrypt to a partner's certificate, decrypt with one of our keys.

Encryption writes what pyas2lib writes (RSA PKCS#1 v1.5 key transport, CBC content
encryption) straight into the result's buffer. Decryption tries the recipients that name our
certificates first, accepts PKCS#1 v1.5 and RSAES-OAEP key transport, AES and 3DES content,
and decrypts into the buffer the payload is later cut from.
"""

from __future__ import annotations

import os
from typing import Any

from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from core.as2.cms.algorithms import CIPHERS, HASHES, cipher, normalize_digest_name
from core.as2.cms.asn1 import (
    NULL,
    OID_DATA,
    OID_ENVELOPED_DATA,
    OID_RSA,
    children,
    content_info,
    der_len,
    element,
    octet_ranges,
    seq,
    tlv,
)
from core.as2.cms.buffer import CHUNK, Filler
from core.as2.cms.keys import Certificate, KeyPair
from core.as2.cms.mime import Entity, parse_entity
from core.as2.cms.outcome import Failure
from core.as2.messages import DECRYPTION_FAILED

# --- encryption ---------------------------------------------------------------------------------


def envelope(pieces: list[bytes], encryption: str, recipient: Certificate) -> bytes:
    """A CMS EnvelopedData (RSA PKCS#1 v1.5 key transport, CBC content encryption) of the
    pieces, DER as pyas2lib writes it, encrypted straight into the result's own buffer."""
    oid, key_size, block = CIPHERS[encryption]
    key = os.urandom(key_size)
    iv = os.urandom(block)
    public_key = recipient.certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError("Only RSA certificates can be encrypted to.")
    encrypted_key = public_key.encrypt(key, padding.PKCS1v15())
    plain_length = sum(len(piece) for piece in pieces)
    pad = block - plain_length % block
    cipher_length = plain_length + pad
    recipient_info = seq(
        b"\x02\x01\x00",
        recipient.issuer_and_serial,
        seq(OID_RSA, NULL),
        tlv(0x04, encrypted_key),
    )
    encrypted_head = (
        OID_DATA + seq(oid, tlv(0x04, iv)) + b"\x80" + der_len(cipher_length)
    )  # [0] IMPLICIT encryptedContent follows
    encrypted_info_len = len(encrypted_head) + cipher_length
    enveloped_content_len = (
        3 + len(tlv(0x31, recipient_info)) + 1 + len(der_len(encrypted_info_len))
    ) + encrypted_info_len
    enveloped_len = 1 + len(der_len(enveloped_content_len)) + enveloped_content_len
    info_content_len = len(OID_ENVELOPED_DATA) + 1 + len(der_len(enveloped_len)) + enveloped_len
    head = b"".join(
        (
            b"\x30" + der_len(info_content_len),
            OID_ENVELOPED_DATA,
            b"\xa0" + der_len(enveloped_len),
            b"\x30" + der_len(enveloped_content_len),
            b"\x02\x01\x00",
            tlv(0x31, recipient_info),
            b"\x30" + der_len(encrypted_info_len),
            encrypted_head,
        )
    )
    total = len(head) + cipher_length
    encryptor = Cipher(cipher(encryption, key), modes.CBC(iv)).encryptor()
    out = Filler(total)
    out.write(head)
    for piece in [*pieces, bytes((pad,)) * pad]:
        view = memoryview(piece)
        for offset in range(0, len(view), CHUNK):
            out.encrypt(encryptor, view[offset : offset + CHUNK])
    tail = encryptor.finalize()
    if tail:
        out.write(tail)
    return out.result()


# --- decryption ---------------------------------------------------------------------------------


def decrypt(data: bytes, start: int, end: int, ours: list[KeyPair]) -> Entity:
    try:
        _kind, enveloped = content_info(data, start, end)
        fields = children(data, enveloped, end)
        position = 1
        if data[fields[position]] == 0xA0:  # originatorInfo
            position += 1
        recipient_infos = asn1_cms.RecipientInfos.load(element(data, fields[position], end))
        encrypted_info = fields[position + 1]
        content_fields = children(data, encrypted_info, end)
        algorithm = asn1_algos.EncryptionAlgorithm.load(element(data, content_fields[1], end))
        if len(content_fields) < 3:
            raise Failure(DECRYPTION_FAILED, _decrypt_reason("no encrypted content"))
        chunks = octet_ranges(data, content_fields[2], end)
    except Failure:
        raise
    except Exception as error:
        raise Failure(
            DECRYPTION_FAILED, _decrypt_reason(f"Encrypted data not found in ASN.1 ({error})")
        ) from error
    try:
        cipher_name = algorithm.encryption_cipher
    except Exception:  # noqa: BLE001 - rc4 and unknown algorithms have no cipher name here
        cipher_name = str(algorithm["algorithm"].native)
    if cipher_name not in ("aes", "tripledes"):
        raise Failure(
            DECRYPTION_FAILED, _decrypt_reason(f"Unsupported Encryption Algorithm {cipher_name}")
        )
    key_size = algorithm.key_length
    iv = algorithm.encryption_iv
    plain: bytes | None = None
    last_error = "Could not extract decryption key."
    for recipient_key, private_key, key_padding in _recipient_keys(recipient_infos, ours):
        try:
            key = private_key.decrypt(recipient_key, key_padding)
        except Exception:  # noqa: BLE001 - try the next key
            continue
        if len(key) != key_size:
            continue  # RSA implicit rejection: a wrong key yields random bytes
        try:
            plain, length, owner = _decrypt_content(data, chunks, cipher_name, key, iv)
        except ValueError as error:
            last_error = str(error)
            continue
        return parse_entity(plain, 0, length, owner)
    raise Failure(DECRYPTION_FAILED, _decrypt_reason(last_error))


def _decrypt_reason(detail: str) -> str:
    return (
        f"The message could not be decrypted with our key: Failed to decrypt the payload: {detail}"
    )


def _recipient_keys(recipient_infos: Any, pairs: list[KeyPair]) -> list[tuple[bytes, Any, Any]]:
    """(encrypted key, private key, RSA padding) to try: recipients naming our certificates
    first."""
    matched: list[tuple[bytes, Any, Any]] = []
    others: list[tuple[bytes, Any, Any]] = []
    for info in recipient_infos:
        if info.name != "ktri":
            continue
        ktri = info.chosen
        encrypted_key = ktri["encrypted_key"].native
        rid = ktri["rid"]
        try:
            key_padding = _key_transport_padding(ktri["key_encryption_algorithm"])
        except Exception:  # noqa: BLE001 - a scheme we do not know cannot be ours
            continue
        for pair in pairs:
            certificate = pair.certificate
            names_us = certificate is not None and (
                (
                    rid.name == "issuer_and_serial_number"
                    and rid.chosen.dump() == certificate.issuer_and_serial
                )
                or (
                    rid.name == "subject_key_identifier"
                    and rid.chosen.native == certificate.subject_key_id
                )
            )
            (matched if names_us else others).append((encrypted_key, pair.key, key_padding))
    return matched + others


def _key_transport_padding(algorithm: Any) -> Any:
    """RSA PKCS#1 v1.5 (what AS2 products send) or RSAES-OAEP with its parameters."""
    name = algorithm["algorithm"].native
    if name == "rsaes_pkcs1v15":
        return padding.PKCS1v15()
    if name != "rsaes_oaep":
        raise ValueError(f"Unsupported Key Encryption Algorithm {name}")
    params = algorithm["parameters"]
    digest = normalize_digest_name(str(params["hash_algorithm"]["algorithm"].native))
    mgf_digest = normalize_digest_name(
        str(params["mask_gen_algorithm"]["parameters"]["algorithm"].native)
    )
    return padding.OAEP(
        mgf=padding.MGF1(HASHES[mgf_digest]()), algorithm=HASHES[digest](), label=None
    )


def _decrypt_content(
    data: bytes, chunks: list[tuple[int, int]], cipher_name: str, key: bytes, iv: bytes
) -> tuple[bytes, int, Filler]:
    """Decrypt into one buffer (the result, not a copy): (plaintext, its length without the
    padding, the buffer)."""
    total = sum(stop - begin for begin, stop in chunks)
    block = 8 if cipher_name == "tripledes" else 16
    if total == 0 or total % block:
        raise ValueError("The encrypted content is not a whole number of blocks.")
    algorithm = TripleDES(key) if cipher_name == "tripledes" else algorithms.AES(key)
    decryptor = Cipher(algorithm, modes.CBC(iv)).decryptor()
    out = Filler(total + 32)
    view = memoryview(data)
    for begin, stop in chunks:
        for offset in range(begin, stop, CHUNK):
            out.encrypt(decryptor, view[offset : min(stop, offset + CHUNK)])
    tail = decryptor.finalize()
    if tail:
        out.write(tail)
    plain = out.result()
    pad = plain[-1]
    if not 1 <= pad <= block or plain[-pad:] != bytes((pad,)) * pad:
        raise ValueError("Invalid padding bytes.")
    return plain, len(plain) - pad, out
