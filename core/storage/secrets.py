"""Sealed private keys shared by every node of a store (see :mod:`core.sealing`): the first
node stores one, the others read it; nobody replaces it."""

from __future__ import annotations

from dataclasses import dataclass

from core.clock import utc_now
from core.sealing import Sealed
from core.storage.connection import Tx


@dataclass(frozen=True)
class StoredSecret:
    name: str
    algorithm: str
    public_part: str  # in clear: anyone may show the fingerprint without the master key
    sealed: Sealed


def get_secret(conn: Tx, name: str) -> StoredSecret | None:
    row = conn.execute(
        "SELECT name, algorithm, public_part, private_enc, nonce, key_id FROM secrets "
        "WHERE name = ?",
        (name,),
    ).fetchone()
    if row is None:
        return None
    sealed = Sealed(bytes(row["private_enc"]), bytes(row["nonce"]), row["key_id"])
    return StoredSecret(row["name"], row["algorithm"], row["public_part"], sealed)


def insert_secret(conn: Tx, secret: StoredSecret) -> bool:
    """Store it unless a secret of that name exists (another node was first); True if stored."""
    cursor = conn.execute(
        "INSERT INTO secrets (name, algorithm, public_part, private_enc, nonce, key_id, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING",
        (
            secret.name,
            secret.algorithm,
            secret.public_part,
            secret.sealed.ciphertext,
            secret.sealed.nonce,
            secret.sealed.key_id,
            utc_now(),
        ),
    )
    return cursor.rowcount > 0
