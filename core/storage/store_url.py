"""Which store a data directory uses: ``[store] url`` in docbridge.toml, or
``DOCBRIDGE_STORE_URL``; absent means SQLite in the data directory (the embedded default).

Kept free of psycopg so that a node on SQLite never loads it, and so that the URL's password
never reaches a message or a log (:func:`redacted`).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from core.data_dir import STORE_URL_ENV
from core.errors import DocbridgeError

POSTGRES_SCHEMES = ("postgresql", "postgres")


def chosen_url(configured: str) -> str:
    """The store URL in force: the environment's wins over the file's (a systemd unit or a
    container sets it without editing docbridge.toml); "" means SQLite."""
    url = os.environ.get(STORE_URL_ENV, "").strip() or configured.strip()
    if url:
        check_url(url)
    return url


def check_url(url: str) -> None:
    """Refuse a URL docbridge cannot use, saying what would work."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _bad(url, str(exc)) from exc
    if parts.scheme not in POSTGRES_SCHEMES:
        raise _bad(url, f"it starts with '{parts.scheme or url[:12]}'")
    if not parts.hostname and "host=" not in parts.query:
        raise _bad(url, "it names no host")
    if not parts.path.strip("/"):
        raise _bad(url, "it names no database")


def _bad(url: str, why: str) -> DocbridgeError:
    return DocbridgeError(
        f"The store URL {redacted(url)} cannot be used: {why}",
        "Use postgresql://USER:PASSWORD@HOST:PORT/DATABASE in [store] url or "
        f"{STORE_URL_ENV}, or leave both unset for SQLite in the data directory.",
    )


def redacted(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages, logs and status)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unreadable store URL)"
    if parts.password is None:
        netloc = parts.netloc
    else:
        user = parts.username or ""
        host = parts.hostname or ""
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            port = ":?"
        netloc = f"{user}:***@{host}{port}"
    query = "&".join(
        "password=***" if pair.lower().startswith("password=") else pair
        for pair in parts.query.split("&")
        if pair
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
