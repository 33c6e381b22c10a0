"""The host key fingerprint as OpenSSH prints it, without loading asyncssh.

The page shows it on every open; asyncssh takes a noticeable part of a second to import, and
``cryptography`` (already loaded for certificates) reads OpenSSH keys just as well.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization


def read_fingerprint(private_key_path: Path) -> str | None:
    """``SHA256:…`` of the key's public half, or None while the key does not exist yet."""
    try:
        data = private_key_path.read_bytes()
    except FileNotFoundError:
        return None
    key = serialization.load_ssh_private_key(data, password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    blob = base64.b64decode(public.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"
