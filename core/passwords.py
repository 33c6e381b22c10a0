"""SFTP passwords: generated with ``secrets``, kept only as argon2id hashes.

Hashing and verifying are deliberately slow (that is the point of argon2), so callers run them in
a thread. Nothing here logs or stores the clear password.
"""

from __future__ import annotations

import functools
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher

PASSWORD_BYTES = 18  # 144 bits of entropy, 24 URL-safe characters


@functools.cache
def _hasher() -> PasswordHasher:
    """argon2id with the library's RFC 9106 low-memory profile (imported when first needed)."""
    from argon2 import PasswordHasher

    return PasswordHasher()


def generate_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    try:
        return _hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
