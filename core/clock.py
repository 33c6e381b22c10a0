"""One place that tells the time.

Two kinds of time, both from here: *record* times (when an envelope arrived, an audit entry)
that ``DOCBRIDGE_FIXED_NOW`` pins so snapshots and demos are deterministic, and *scheduling*
times (leases, retry delays, bans, session starts) that must always move, or nothing would ever
expire. Nothing else in docbridge calls ``time.time()`` or ``datetime.now()``.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime


def utc_now() -> str:
    """ISO 8601 UTC with milliseconds; ``DOCBRIDGE_FIXED_NOW`` pins it for deterministic runs."""
    fixed = os.environ.get("DOCBRIDGE_FIXED_NOW")
    if fixed:
        return fixed
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def unix_now() -> float:
    """Seconds since the epoch, pinned by ``DOCBRIDGE_FIXED_NOW`` like :func:`utc_now`."""
    fixed = os.environ.get("DOCBRIDGE_FIXED_NOW")
    if fixed:
        return datetime.fromisoformat(fixed.replace("Z", "+00:00")).timestamp()
    return time.time()


def timestamp() -> float:
    """Seconds since the epoch for leases, retries and bans: the real time, never pinned."""
    return time.time()


def utc_datetime() -> datetime:
    """Now as an aware UTC datetime (certificate validity), pinned like :func:`utc_now`."""
    return datetime.fromtimestamp(unix_now(), UTC)


def iso_from_timestamp(seconds: float) -> str:
    """A scheduling time written the way record times are (ISO 8601 UTC, seconds)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def utc_days_ago(days: float) -> str:
    """A record time (as :func:`utc_now` writes them) ``days`` before now: a retention cutoff."""
    moment = datetime.fromtimestamp(unix_now() - days * 86400, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
