"""One place that tells the time, so tests and snapshots can fix it."""

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
