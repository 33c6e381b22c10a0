"""How many bytes a mailbox holds, kept current cheaply enough to check on every SFTP write.

Scanning a folder of thousands of files on every upload would make small-file throughput
quadratic, so the total is scanned at most once per ``max_age_s`` (in a thread) and adjusted in
between by what this server itself does: bytes of uploads in flight, uploads committed, files
deleted. Files the platform writes between scans are counted at the next scan, so the quota can
be overshot by about what was written within ``max_age_s``. That is the trade: a quota is a
guard against a runaway customer, not an accounting system.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from core.sftp.folders import FOLDERS


def scan_usage(root: Path) -> int:
    """Bytes in regular files of the five folders.

    Not counted: staging, links, and files with another name on disk (hard links): SFTP
    hides those and the customer cannot delete them, so they must not use up the quota.
    """
    total = 0
    for folder in FOLDERS:
        try:
            with os.scandir(root / folder) as entries:
                for entry in entries:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                        total += info.st_size
        except (FileNotFoundError, NotADirectoryError):
            continue
    return total


class MailboxUsage:
    """Stored plus in-flight bytes of one mailbox, shared by all its SFTP sessions.

    ``quota`` of 0 or less means unlimited.
    """

    def __init__(
        self,
        root: Path,
        quota: int,
        *,
        max_age_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.quota = quota
        self._max_age_s = max_age_s
        self._clock = clock
        self._stored = 0
        self._in_flight = 0
        self._scanned_at: float | None = None
        self._scan_lock = asyncio.Lock()

    @property
    def used(self) -> int:
        return self._stored + self._in_flight

    async def refresh(self, *, force: bool = False) -> None:
        """Rescan the folders if the last scan is older than ``max_age_s`` (or if forced)."""
        if self.quota <= 0:
            return
        async with self._scan_lock:
            now = self._clock()
            fresh = self._scanned_at is not None and now - self._scanned_at < self._max_age_s
            if fresh and not force:
                return
            self._stored = await asyncio.to_thread(scan_usage, self.root)
            self._scanned_at = self._clock()

    def reserve(self, size: int) -> bool:
        """Claim ``size`` more bytes for an upload in flight; False if that breaks the quota."""
        if self.quota > 0 and self.used + size > self.quota:
            return False
        self._in_flight += size
        return True

    def release(self, size: int) -> None:
        """An upload in flight was discarded."""
        self._in_flight = max(0, self._in_flight - size)

    def commit(self, size: int) -> None:
        """An upload in flight became a stored file."""
        self._in_flight = max(0, self._in_flight - size)
        self._stored += size

    def removed(self, size: int) -> None:
        self._stored = max(0, self._stored - size)
