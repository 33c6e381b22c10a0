"""Private keys kept in a shared store, sealed with the cluster's master key.

Several nodes on one PostgreSQL store must serve the same SSH host key (customers pin its
fingerprint) and, later, the same AS2 identities. They are kept in the store, each private part
sealed with AES-256-GCM under a master key every node gets from its environment
(``DOCBRIDGE_MASTER_KEY``, e.g. through a systemd credential), never from the store or a file
next to it: a stolen database dump alone opens nothing. The secret's name and the master key's
id are the associated data, so a sealed value cannot be moved to another name or read with
another key without failing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass

from core.errors import EngineUnavailable

MASTER_KEY_ENV = "DOCBRIDGE_MASTER_KEY"
_MAKE_ONE = "openssl rand -base64 32"


@dataclass(frozen=True)
class Sealed:
    """A private value as the store keeps it."""

    ciphertext: bytes  # AES-GCM output (tag appended)
    nonce: bytes
    key_id: str  # which master key sealed it (a hash prefix; the key itself is never stored)


@dataclass(frozen=True)
class MasterKey:
    key: bytes

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"docbridge master key id" + self.key).hexdigest()[:16]


def master_key_from_environment() -> MasterKey:
    """The cluster's master key, or an error that says how to provide one."""
    text = os.environ.get(MASTER_KEY_ENV, "").strip()
    if not text:
        raise EngineUnavailable(
            f"{MASTER_KEY_ENV} is not set: a node on a shared store keeps its keys sealed in "
            "the store and needs the cluster's master key to open them.",
            f"Make one once ({_MAKE_ONE}), give every node the same value (a systemd "
            f"credential or {MASTER_KEY_ENV}), and keep a copy apart from database backups.",
        )
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise EngineUnavailable(
            f"{MASTER_KEY_ENV} is not 32 bytes in base64.",
            f"Make one with '{_MAKE_ONE}' and give every node the same value.",
        )
    return MasterKey(key)


def seal(master: MasterKey, name: str, value: bytes) -> Sealed:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = secrets.token_bytes(12)
    data = AESGCM(master.key).encrypt(nonce, value, _associated(name, master.key_id))
    return Sealed(data, nonce, master.key_id)


def unseal(master: MasterKey, name: str, sealed: Sealed) -> bytes:
    """The value, or an error when this node's master key is not the one that sealed it."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if sealed.key_id != master.key_id:
        raise _wrong_key(name)
    try:
        return AESGCM(master.key).decrypt(
            sealed.nonce, sealed.ciphertext, _associated(name, sealed.key_id)
        )
    except InvalidTag as exc:
        raise _wrong_key(name) from exc


def _associated(name: str, key_id: str) -> bytes:
    return f"docbridge secret {name} {key_id}".encode()


def _wrong_key(name: str) -> EngineUnavailable:
    return EngineUnavailable(
        f"The store's {name} was sealed with another master key than this node's "
        f"{MASTER_KEY_ENV} (or it was altered).",
        "Give this node the same master key as the other nodes; the keys in the store are "
        "left as they are.",
    )
