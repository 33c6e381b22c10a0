"""The host key fingerprint as OpenSSH prints it, without loading asyncssh or cryptography.

The page shows it on every open. The key is stored in the OpenSSH private key format
(``openssh-key-v1``), which carries the public key in clear before the (possibly encrypted)
private part, so the fingerprint is a base64 decode, two length-prefixed strings and a SHA-256.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from pathlib import Path

_MAGIC = b"openssh-key-v1\x00"
_BEGIN = b"-----BEGIN OPENSSH PRIVATE KEY-----"
_END = b"-----END OPENSSH PRIVATE KEY-----"


def read_fingerprint(private_key_path: Path) -> str | None:
    """``SHA256:…`` of the key's public half, or None while the key does not exist yet."""
    try:
        data = private_key_path.read_bytes()
    except FileNotFoundError:
        return None
    digest = base64.b64encode(hashlib.sha256(public_blob(data)).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def public_blob(data: bytes) -> bytes:
    """The public key blob of an OpenSSH private key file (ValueError when it is not one)."""
    start, end = data.find(_BEGIN), data.find(_END)
    if start < 0 or end < 0:
        raise ValueError("not an OpenSSH private key")
    try:
        raw = base64.b64decode(b"".join(data[start + len(_BEGIN) : end].split()), validate=True)
    except binascii.Error as exc:
        raise ValueError("damaged OpenSSH private key") from exc
    if not raw.startswith(_MAGIC):
        raise ValueError("not an openssh-key-v1 key")
    offset = len(_MAGIC)
    for _ in range(3):  # cipher name, KDF name, KDF options
        _, offset = _string(raw, offset)
    (count,) = struct.unpack_from(">I", raw, offset)
    if count < 1:
        raise ValueError("the key file holds no key")
    blob, _ = _string(raw, offset + 4)
    return blob


def _string(raw: bytes, offset: int) -> tuple[bytes, int]:
    (length,) = struct.unpack_from(">I", raw, offset)
    end = offset + 4 + length
    if end > len(raw):
        raise ValueError("truncated OpenSSH private key")
    return raw[offset + 4 : end], end
