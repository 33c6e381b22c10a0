"""Brute-force protection for SFTP logins: failures counted per source address, never per account.

Locking an account would let anyone lock a customer out by guessing badly on purpose, so only
the address that keeps failing is banned, for a while; a correct password from a banned address
is refused too (otherwise the ban would only slow an attacker down). IPv6 clients usually own a
whole /64 and can rotate through it, so an IPv6 address counts as its /64.

The same record decides an address's *standing* (:class:`Standing`), its place in the queue for
password checks when logins are many (:mod:`core.sftp.auth`): an address that logged in
recently and has not failed since goes first, one with failures and no recent login last.

State lives in memory; ``on_ban``/``on_unban`` and :meth:`LoginThrottle.restore` let the owner
mirror bans into the database so they survive restarts and can be lifted from the TUI. Times are
wall-clock (:func:`core.clock.timestamp`) for that reason.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace

from core.clock import iso_from_timestamp, timestamp
from core.models import Ban


class Standing(enum.IntEnum):
    """An address's recent record, best first."""

    KNOWN = 0  # logged in within trust_s, no failure counted
    UNKNOWN = 1  # neither, or both
    SUSPECT = 2  # failures counted, no login within trust_s


def address_key(address: str) -> str:
    """The unit a ban applies to: an IPv4 address, or the /64 of an IPv6 address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginThrottle:
    """Counts failed logins per address in a sliding window and bans past ``threshold``.

    ``threshold`` failures within ``window_s`` seconds ban the address for ``ban_s`` seconds.
    Successful logins do not reset the count: one valid login must not buy unlimited guesses
    at other mailboxes from the same address. At most ``max_tracked`` addresses are tracked (a
    flood of addresses cannot grow memory without bound); the oldest are forgotten first.
    Successful logins are remembered for ``trust_s`` seconds, for :meth:`standing` only (at most
    ``max_tracked`` addresses too; after a restart every address starts unknown).
    """

    def __init__(
        self,
        threshold: int = 5,
        window_s: float = 300.0,
        ban_s: float = 900.0,
        *,
        clock: Callable[[], float] = timestamp,
        on_ban: Callable[[Ban], None] | None = None,
        on_unban: Callable[[str], None] | None = None,
        max_tracked: int = 100_000,
        trust_s: float = 7 * 86_400.0,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.threshold = threshold
        self.window_s = window_s
        self.ban_s = ban_s
        self._clock = clock
        self._on_ban = on_ban
        self._on_unban = on_unban
        self._max_tracked = max_tracked
        self._failures: dict[str, deque[float]] = {}
        self._bans: dict[str, Ban] = {}
        self.trust_s = trust_s
        self._successes: dict[str, float] = {}  # last successful login, least recent first

    def is_banned(self, address: str) -> bool:
        return self._active_ban(address_key(address)) is not None

    def record_failure(self, address: str) -> Ban | None:
        """Count one failed login; return the ban it triggered, if any."""
        key = address_key(address)
        now = self._clock()
        if self._active_ban(key) is not None:
            return None
        failures = self._failures.pop(key, None) or deque()
        self._failures[key] = failures  # re-inserted: dict order is least recently failed first
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        failures.append(now)
        if len(failures) >= self.threshold:
            ban = Ban(key, len(failures), iso_from_timestamp(now), now + self.ban_s)
            del self._failures[key]
            self._bans[key] = ban
            if self._on_ban is not None:
                self._on_ban(ban)
            return ban
        while len(self._failures) > self._max_tracked:
            del self._failures[next(iter(self._failures))]
        return None

    def record_success(self, address: str) -> None:
        """Remember that ``address`` logged in; it does not reset the failures counted."""
        key = address_key(address)
        now = self._clock()
        self._successes.pop(key, None)
        self._successes[key] = now  # re-inserted: dict order is least recently succeeded first
        while self._successes:  # forget the expired, and the oldest past max_tracked
            oldest, at = next(iter(self._successes.items()))
            if at > now - self.trust_s and len(self._successes) <= self._max_tracked:
                break
            del self._successes[oldest]

    def standing(self, address: str) -> Standing:
        """Where the address's password checks queue when logins are many (core.sftp.auth).

        Depends on the address's own record only, never on the login tried, so it tells an
        attacker nothing about which logins exist.
        """
        succeeded_at = self._successes.get(address_key(address))
        succeeded = succeeded_at is not None and succeeded_at > self._clock() - self.trust_s
        failed = self.failures(address) > 0
        if succeeded and not failed:
            return Standing.KNOWN
        if failed and not succeeded:
            return Standing.SUSPECT
        return Standing.UNKNOWN

    def failures(self, address: str) -> int:
        """Failures currently counted against ``address`` (within the window)."""
        now = self._clock()
        recent = self._failures.get(address_key(address), ())
        return sum(1 for at in recent if at > now - self.window_s)

    def bans(self) -> list[Ban]:
        """Active bans, soonest to expire first."""
        now = self._clock()
        for key in [key for key, ban in self._bans.items() if ban.banned_until <= now]:
            del self._bans[key]
        return sorted(self._bans.values(), key=lambda ban: ban.banned_until)

    def unban(self, address: str) -> bool:
        """Lift a ban (and forget the failures); False if the address was not banned."""
        key = address_key(address)
        self._failures.pop(key, None)
        ban = self._bans.pop(key, None)
        if ban is None:
            return False
        if self._on_unban is not None:
            self._on_unban(key)
        return True

    def restore(self, bans: Iterable[Ban]) -> None:
        """Load bans kept elsewhere (the database) after a restart; expired ones are skipped."""
        now = self._clock()
        for ban in bans:
            if ban.banned_until > now:
                key = address_key(ban.address)
                self._bans[key] = replace(ban, address=key)

    def _active_ban(self, key: str) -> Ban | None:
        ban = self._bans.get(key)
        if ban is not None and ban.banned_until <= self._clock():
            del self._bans[key]
            return None
        return ban
