"""The SSH host key every node of a shared store serves: kept in the store, sealed with the
master key (:mod:`core.sealing`), so customers see one fingerprint whichever node they reach.

The first node to start stores it: the data directory's existing key file if it has one (the
fingerprint customers pinned survives the move to a cluster), else a new key. A node never
generates its own key while the store has one, and a stored key is never replaced.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncssh

from core.sealing import MasterKey, master_key_from_environment, seal, unseal
from core.sftp.host_key import ED25519, HostKeyUnusable, fingerprint, load_or_create_host_key
from core.storage import secrets
from core.storage.secrets import StoredSecret
from core.storage.store import Store

log = logging.getLogger("docbridge.engine")

HOST_KEY_SECRET = "sftp_host_ed25519"


async def cluster_host_key(db: Store, local_path: Path) -> asyncssh.SSHKey:
    """The store's host key (stored first, from ``local_path`` or new, if it has none)."""
    master = await asyncio.to_thread(master_key_from_environment)
    stored = await db.read(secrets.get_secret, HOST_KEY_SECRET)
    if stored is None:
        candidate = await asyncio.to_thread(_local_or_new_key, local_path)
        sealed = await asyncio.to_thread(_sealed_key, master, candidate)
        if await db.write(secrets.insert_secret, sealed):
            log.info("stored the SFTP host key %s for every node", fingerprint(candidate))
        stored = await db.read(secrets.get_secret, HOST_KEY_SECRET)
        if stored is None:
            raise HostKeyUnusable(
                "The SFTP host key vanished from the store right after it was stored.",
                "Check what else writes to the store's secrets table, then start again.",
            )
    return await asyncio.to_thread(_opened_key, master, stored)


def stored_fingerprint(stored: StoredSecret | None) -> str | None:
    """What customers pin, from the key's public part (no master key needed)."""
    if stored is None:
        return None
    return fingerprint(asyncssh.import_public_key(stored.public_part))


def _local_or_new_key(local_path: Path) -> asyncssh.SSHKey:
    """This data directory's key if it has one (checked as a single host checks it), else a
    new key that is never written to disk here: the store keeps it."""
    if local_path.exists():
        return load_or_create_host_key(local_path)
    return asyncssh.generate_private_key(ED25519)


def _sealed_key(master: MasterKey, key: asyncssh.SSHKey) -> StoredSecret:
    private = key.export_private_key("openssh")
    public = key.export_public_key("openssh").decode().strip()
    return StoredSecret(HOST_KEY_SECRET, ED25519, public, seal(master, HOST_KEY_SECRET, private))


def _opened_key(master: MasterKey, stored: StoredSecret) -> asyncssh.SSHKey:
    return asyncssh.import_private_key(unseal(master, stored.name, stored.sealed))
