"""Password checks for SFTP logins: slow on purpose, but never on the event loop, and shared fairly.

argon2id verification takes about 0.2 s of both cores and 64 MiB by design. It runs in a thread, and
at most ``concurrency`` run at once so a burst of login attempts cannot exhaust memory or starve
the engine's threads. An unknown login (or a mailbox whose integration is off) is checked
against a dummy hash with the same parameters, so the response time does not tell an attacker
which logins exist.

Those few slots are what a login flood fights over, so they are handed out fairly:

- **One check per address at a time** (:meth:`PasswordVerifier.turn`; an IPv6 address counts
  as its /64, like a ban). Further attempts from that address wait in the address's own queue,
  so one address holds at most one slot, or one place in the queue for a slot, however many
  connections it opens; the caller re-checks the ban when the turn comes, so a ban decided
  meanwhile stops the rest of the queue with no argon2 work. That queue is not capped: each
  entry is an SSH connection, which the login timeout ends anyway, and after the ban the
  queue drains at once.
- **By standing** (:class:`~core.sftp.throttle.Standing`, from the address's own record, never
  from the login tried): an address that logged in recently without failing since (*known*)
  goes first and always finds a slot kept free for it; other addresses (*unknown*, such as each
  flooding address's first guess) use the other slots; an address with failures and no recent
  login (*suspect*) gets a check only when no other check is running or waiting, one at a time.
  argon2 keeps every core busy, so a check beside another takes up to twice as long, and a
  running check cannot be stopped: unknown addresses' checks run at nice 10 and suspects' at
  nice 19 (Linux, per thread), so a known customer's check takes the cores when it comes.
- **A bounded wait**: an attempt that would wait more than ``max_wait_s`` for a slot (estimated
  from the checks queued ahead of it and how long checks take) is refused at once with
  :class:`VerifierBusy`: no check, no failure counted, the same refusal as any other. Only a
  flood from more addresses than the slots serve in that time gets there; newcomers are then
  refused quickly instead of all waiting until the login timeout, and known customers, who
  queue ahead of them, still get in.

Once argon2 has started it runs to the end even if the client hangs up (a thread cannot be
stopped): the slot stays taken until then and the outcome still counts, so hanging up before
the answer neither frees capacity early nor buys a guess that escapes the ban.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from argon2 import PasswordHasher

from core.passwords import verify_password
from core.sftp.throttle import Standing, address_key

DEFAULT_CONCURRENCY = 4
# A third of the server's 60 s login timeout: time is left for the key exchange before the check
# and for the session to open after it.
DEFAULT_MAX_WAIT_S = 20.0

# CPU priority of the threads checking passwords for addresses of each standing but KNOWN.
_NICE = {Standing.UNKNOWN: 10, Standing.SUSPECT: 19}

T = TypeVar("T")


class VerifierBusy(Exception):
    """Too many password checks are queued: the attempt is refused without one."""


@dataclass
class _AddressQueue:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    attempts: int = 0  # holding the turn or waiting for it


class _Slots:
    """``size`` slots for checks, shared by standing (module docstring).

    A better standing always goes first; first come, first served within one. KNOWN takes any
    free slot; UNKNOWN leaves one free for KNOWN (if there are two or more); SUSPECT starts only
    when no other check is running or waiting.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._limits = {
            Standing.KNOWN: size,
            Standing.UNKNOWN: max(1, size - 1),
            Standing.SUSPECT: 1,
        }
        self._running = dict.fromkeys(Standing, 0)
        self._waiting: dict[Standing, deque[asyncio.Future[None]]] = {s: deque() for s in Standing}

    def limit(self, standing: Standing) -> int:
        """How many checks for this standing may run at once."""
        return self._limits[standing]

    @property
    def waiting(self) -> int:
        return sum(not waiter.done() for queue in self._waiting.values() for waiter in queue)

    def expected_wait(self, standing: Standing, check_s: float) -> float:
        """Seconds a check arriving now would wait for a slot, roughly."""
        if self._may_start(standing) and not self._waiting[standing]:
            return 0.0
        ahead = sum(len(self._waiting[s]) for s in Standing if s <= standing)
        return (ahead + 1) * check_s / self._limits[standing]

    async def acquire(self, standing: Standing) -> None:
        queue = self._waiting[standing]
        if not queue and self._may_start(standing):
            self._running[standing] += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter  # _wake() counts the slot as ours before it wakes us
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a slot as it was cancelled
                self.release(standing)
            else:
                with contextlib.suppress(ValueError):  # _wake() may have dropped it already
                    queue.remove(waiter)
                self._wake()  # one gone from a better standing may let a worse one start
            raise

    def release(self, standing: Standing) -> None:
        self._running[standing] -= 1
        self._wake()

    def _may_start(self, standing: Standing) -> bool:
        if any(self._waiting[better] for better in Standing if better < standing):
            return False
        running = sum(self._running.values())
        if standing is Standing.SUSPECT:
            return running == 0
        others = running - self._running[Standing.KNOWN]  # running for UNKNOWN or SUSPECT
        return running < self._size and (
            standing is Standing.KNOWN or others < self._limits[standing]
        )

    def _wake(self) -> None:
        for standing in Standing:
            queue = self._waiting[standing]
            while queue and (queue[0].done() or self._may_start(standing)):
                waiter = queue.popleft()
                if not waiter.done():  # else cancelled: its owner is leaving
                    self._running[standing] += 1
                    waiter.set_result(None)


class PasswordVerifier:
    """Verifies passwords against argon2id hashes in a thread, fairly shared between addresses.

    At most ``concurrency`` checks run at once; the module docstring says who waits for whom.
    Use :meth:`turn` around everything one login attempt does with the verifier.

    ``hasher`` only sets the parameters of the dummy hash; it must match how real hashes are
    made (the default does: :mod:`core.passwords` uses ``PasswordHasher()``), or unknown logins
    would answer faster or slower than wrong passwords. Tests pass a cheap hasher and cheap
    hashes.
    """

    def __init__(
        self,
        concurrency: int = DEFAULT_CONCURRENCY,
        hasher: PasswordHasher | None = None,
        *,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
    ) -> None:
        self._slots = _Slots(concurrency)
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None
        self.max_wait_s = max_wait_s
        self._addresses: dict[str, _AddressQueue] = {}
        # KNOWN checks run in asyncio's default threads; the others in threads of their own at a
        # lower CPU priority, made on first use.
        self._threads: dict[Standing, ThreadPoolExecutor] = {}
        # Running estimate of one check's wall time, the others running beside it; measured by
        # warm_up() and every check. 0 (never busy) until then.
        self.check_s = 0.0

    @property
    def addresses(self) -> int:
        """Addresses with an attempt being checked or waiting its turn (the memory held)."""
        return len(self._addresses)

    @property
    def waiting(self) -> int:
        """Checks waiting for a slot (at most one per address)."""
        return self._slots.waiting

    @contextlib.asynccontextmanager
    async def turn(self, address: str) -> AsyncIterator[None]:
        """Wait until no other attempt from ``address`` (its ban unit) is being checked.

        The caller should re-check the ban once inside: attempts queued behind a failing one
        must not run argon2 once it got the address banned. An address's state is dropped when
        its last attempt leaves, so memory follows the attempts in progress.
        """
        key = address_key(address)
        queue = self._addresses.get(key)
        if queue is None:
            queue = self._addresses[key] = _AddressQueue()
        queue.attempts += 1
        try:
            async with queue.lock:
                yield
        finally:
            queue.attempts -= 1
            if queue.attempts == 0:
                del self._addresses[key]

    async def verify(
        self,
        password_hash: str | None,
        password: str,
        *,
        standing: Standing = Standing.UNKNOWN,
        on_mismatch: Callable[[], None] | None = None,
    ) -> bool:
        """True only if ``password_hash`` is a hash of ``password``; None always costs a check.

        ``standing`` is the address's (:meth:`LoginThrottle.standing`): it decides who goes
        first (module docstring). ``on_mismatch`` runs when the answer is
        no, before this returns; also if the caller is cancelled while argon2 runs, for the
        check still runs to the end. Raises :class:`VerifierBusy`, with no check made, when the
        wait for a slot would exceed ``max_wait_s``.
        """
        wait_s = self._slots.expected_wait(standing, self.check_s)
        if wait_s > self.max_wait_s:
            raise VerifierBusy(f"a password check would wait about {wait_s:.0f} s")
        await self._slots.acquire(standing)
        try:
            return await _to_the_end(self._check(password_hash, password, standing, on_mismatch))
        finally:
            self._slots.release(standing)

    async def warm_up(self) -> None:
        """Compute the dummy hash now, so the first unknown login is not slower than the rest."""
        await self._dummy()

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            start = time.monotonic()
            self._dummy_hash = await asyncio.to_thread(self._hasher.hash, secrets.token_urlsafe(18))
            self.check_s = time.monotonic() - start  # hashing costs what verifying costs
        return self._dummy_hash

    async def _check(
        self,
        password_hash: str | None,
        password: str,
        standing: Standing,
        on_mismatch: Callable[[], None] | None,
    ) -> bool:
        checked = password_hash if password_hash is not None else await self._dummy()
        start = time.monotonic()
        if standing is Standing.KNOWN:
            matches = await asyncio.to_thread(verify_password, checked, password)
        else:
            matches = await asyncio.get_running_loop().run_in_executor(
                self._threads_for(standing), verify_password, checked, password
            )
        if standing is not Standing.SUSPECT:  # at nice 19 a check takes what others leave it
            self.check_s += (time.monotonic() - start - self.check_s) / 8
        ok = matches and password_hash is not None
        if not ok and on_mismatch is not None:
            on_mismatch()
        return ok

    def _threads_for(self, standing: Standing) -> ThreadPoolExecutor:
        threads = self._threads.get(standing)
        if threads is None:
            nice = _NICE[standing]
            threads = self._threads[standing] = ThreadPoolExecutor(
                self._slots.limit(standing),
                f"argon2-{standing.name.lower()}",
                initializer=_lower_cpu_priority,
                initargs=(nice,),
            )
        return threads


def _lower_cpu_priority(nice: int) -> None:
    """Give the calling thread (and the threads argon2 starts from it) ``nice``, if possible.

    On Linux a thread's priority is its own; elsewhere this may lower the whole process or be
    refused, so it is only done on Linux, and a refusal leaves things as they were."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


async def _to_the_end(work: Coroutine[Any, Any, T]) -> T:
    """Await ``work``; if cancelled meanwhile, still wait for it to finish, then re-raise.

    For work that cannot be stopped halfway (a thread running argon2): giving up the wait
    early would free its slot while the thread still runs.
    """
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not task.cancelled():
            task.exception()  # retrieved: nobody is left to read it
        raise asyncio.CancelledError
    return task.result()
