"""One SSH host key for every node of a shared store: stored once, sealed with the master key
from the environment, never replaced, never readable without that key."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import asyncssh
import pytest

from core.engine.cluster_keys import HOST_KEY_SECRET, cluster_host_key, stored_fingerprint
from core.errors import EngineUnavailable
from core.sealing import MASTER_KEY_ENV
from core.sftp.host_key import fingerprint, load_or_create_host_key
from core.storage import secrets
from core.storage.postgres.database import PgDatabase


def _master() -> str:
    return base64.b64encode(os.urandom(32)).decode()


async def test_every_node_gets_the_first_nodes_key_and_the_pinned_one_survives(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MASTER_KEY_ENV, _master())
    make = load_or_create_host_key
    pinned = await asyncio.to_thread(make, tmp_path / "a" / "keys" / "sftp_host_ed25519")
    other_local = await asyncio.to_thread(make, tmp_path / "b" / "keys" / "sftp_host_ed25519")
    node_a, node_b = PgDatabase(postgres_url), PgDatabase(postgres_url)
    try:
        key_a = await cluster_host_key(node_a, tmp_path / "a" / "keys" / "sftp_host_ed25519")
        key_b = await cluster_host_key(node_b, tmp_path / "b" / "keys" / "sftp_host_ed25519")
        stored = await node_b.read(secrets.get_secret, HOST_KEY_SECRET)
    finally:
        await node_a.close()
        await node_b.close()
    assert fingerprint(key_a) == fingerprint(pinned)  # what customers pinned on node a
    assert fingerprint(key_b) == fingerprint(pinned) != fingerprint(other_local)
    assert stored is not None and stored_fingerprint(stored) == fingerprint(pinned)
    private = pinned.export_private_key("openssh")
    assert private not in stored.sealed.ciphertext  # sealed, not in clear
    assert asyncssh.import_public_key(stored.public_part).get_fingerprint() == fingerprint(pinned)


async def test_a_node_without_the_master_key_or_with_another_one_is_refused(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = PgDatabase(postgres_url)
    try:
        monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
        with pytest.raises(EngineUnavailable, match=MASTER_KEY_ENV):
            await cluster_host_key(db, tmp_path / "keys" / "sftp_host_ed25519")
        monkeypatch.setenv(MASTER_KEY_ENV, "not base64 of 32 bytes")
        with pytest.raises(EngineUnavailable, match="32 bytes"):
            await cluster_host_key(db, tmp_path / "keys" / "sftp_host_ed25519")
        monkeypatch.setenv(MASTER_KEY_ENV, _master())
        first = await cluster_host_key(db, tmp_path / "keys" / "sftp_host_ed25519")
        monkeypatch.setenv(MASTER_KEY_ENV, _master())  # another cluster's key
        with pytest.raises(EngineUnavailable, match="another master key"):
            await cluster_host_key(db, tmp_path / "keys" / "sftp_host_ed25519")
        stored = await db.read(secrets.get_secret, HOST_KEY_SECRET)
    finally:
        await db.close()
    assert stored_fingerprint(stored) == fingerprint(first)  # left as it was
    assert not (tmp_path / "keys" / "sftp_host_ed25519").exists()  # never written locally
