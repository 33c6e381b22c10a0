"""Password checks for SFTP logins: slow on purpose, but never on the event loop.

argon2id verification takes tens of milliseconds and 64 MiB by design. It runs in a thread, and a
semaphore bounds how many run at once so a burst of login attempts cannot exhaust memory or
starve the engine's threads. An unknown login (or a mailbox whose integration is off) is checked
against a dummy hash with the same parameters, so the response time does not tell an attacker
which logins exist.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher

from core.passwords import verify_password

DEFAULT_CONCURRENCY = 4


class PasswordVerifier:
    """Verifies passwords against argon2id hashes in a thread, at most ``concurrency`` at a time.

    ``hasher`` only sets the parameters of the dummy hash; it must match how real hashes are
    made (the default does: :mod:`core.passwords` uses ``PasswordHasher()``), or unknown logins
    would answer faster or slower than wrong passwords. Tests pass a cheap hasher and cheap
    hashes.
    """

    def __init__(
        self, concurrency: int = DEFAULT_CONCURRENCY, hasher: PasswordHasher | None = None
    ) -> None:
        self._semaphore = asyncio.Semaphore(concurrency)
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True only if ``password_hash`` is a hash of ``password``; None always costs a check."""
        async with self._semaphore:
            if password_hash is None:
                if self._dummy_hash is None:
                    self._dummy_hash = await asyncio.to_thread(
                        self._hasher.hash, secrets.token_urlsafe(18)
                    )
                await asyncio.to_thread(verify_password, self._dummy_hash, password)
                return False
            return await asyncio.to_thread(verify_password, password_hash, password)

    async def warm_up(self) -> None:
        """Compute the dummy hash now, so the first unknown login is not slower than the rest."""
        if self._dummy_hash is None:
            self._dummy_hash = await asyncio.to_thread(self._hasher.hash, secrets.token_urlsafe(18))
