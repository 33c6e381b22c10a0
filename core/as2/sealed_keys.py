"""AS2 private keys on a shared store: sealed in the store (core.sealing) instead of files in
one node's ``keys/as2/``, so every node decrypts and signs for every mailbox.

An identity's ``key_path`` names where its key is: a file path on one host, or
``sealed:<secret name>`` on a shared store.
"""

from __future__ import annotations

from pathlib import Path

from core.sealing import master_key_from_environment, seal, unseal
from core.storage.secrets import StoredSecret

SEALED_PREFIX = "sealed:"


def seal_as2_key(name: str, key_pem: bytes, certificate_pem: str) -> StoredSecret:
    """The key sealed with the cluster's master key; its public part is the certificate."""
    sealed = seal(master_key_from_environment(), name, key_pem)
    return StoredSecret(name, "rsa-pkcs8", certificate_pem, sealed)


def sealed_name(key_path: str) -> str | None:
    """The secret's name when ``key_path`` names a sealed key, else None (a file)."""
    return key_path[len(SEALED_PREFIX) :] if key_path.startswith(SEALED_PREFIX) else None


def read_key(key_path: str, sealed: dict[str, StoredSecret]) -> bytes:
    """The private key's bytes, from its file or unsealed from the store's copy (read in the
    same transaction as the partnership). Blocking: run in a thread."""
    name = sealed_name(key_path)
    if name is None:
        return Path(key_path).read_bytes()
    stored = sealed.get(name)
    if stored is None:
        raise FileNotFoundError(f"the sealed AS2 key {name} is not in the store")
    return unseal(master_key_from_environment(), name, stored.sealed)
