"""The engine's SFTP listener as one component: the server, its ban mirror and the sessions'
enforcement, fed by the store.

It receives what it needs (the database, the config, a wake callback for arrived uploads) and
nothing of the engine, so the engine holds a typed :class:`SftpComponent` and no module imports
the other both ways. Logins are checked against the store (only an enabled SFTP integration has
a usable password); bans are kept in step with the store both ways, so the TUI sees them and can
lift them; :meth:`SftpComponent.maintain` ends sessions the kill switch or a password reset
ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from core.config import Config
from core.models import Ban
from core.sftp.server import SessionInfo, SftpServer
from core.sftp.throttle import LoginThrottle
from core.storage import bans, integrations
from core.storage.connection import Tx
from core.storage.store import Store


class SftpComponent:
    """Owns the SFTP server while the engine runs: :meth:`start`, :meth:`maintain` every
    heartbeat, :meth:`stop`. Also the server's :class:`~core.sftp.backend.SftpBackend`."""

    def __init__(self, db: Store, config: Config, wake: Callable[[], None], node: str = "") -> None:
        self._db = db
        self._config = config
        self._node = node  # set on a shared store: this node's upload temp names
        self._wake = wake
        self._mirror = _BanMirror(db)
        self._server: SftpServer | None = None

    async def start(self) -> dict[str, str]:
        """Listen (stored bans restored first); returns the listeners to publish: the address
        and the host key's fingerprint."""
        throttle = LoginThrottle(on_ban=self._mirror.on_ban)
        stored = await self._db.call(bans.list_bans)
        throttle.restore(stored)
        self._mirror.persisted.update(ban.address for ban in stored)
        host_key = None
        if self._config.store_url:  # several nodes: one host key for all, from the store
            from core.engine.cluster_keys import cluster_host_key

            host_key = await cluster_host_key(self._db, self._config.sftp_host_key_path)
        server = SftpServer(
            self._config.sftp,
            self._config.mailboxes_dir,
            self._config.sftp_host_key_path,
            self,
            throttle,
            node=self._node,
            host_key=host_key,
        )
        port = await server.start()
        self._server = server
        return {
            "sftp": f"{self._config.sftp.listen_host}:{port}",
            "sftp_host_key": server.host_key_fingerprint,
        }

    async def stop(self) -> None:
        """Stop listening and end every session; calling it again is harmless."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop()

    async def maintain(self) -> None:
        """End sessions whose integration went off or whose password changed since they
        logged in, and take up bans lifted elsewhere (the TUI deletes the row)."""
        server = self._server
        if server is None:
            return
        sessions = server.sessions()
        if sessions:
            allowed = await self._db.call(integrations.sftp_session_rules)
            for mailbox_uuid in {s.mailbox_uuid for s in sessions}:
                changed_at = allowed.get(mailbox_uuid)
                started = min(s.started_at for s in sessions if s.mailbox_uuid == mailbox_uuid)
                if changed_at is None or changed_at > started:
                    server.close_sessions(mailbox_uuid)
        await self._mirror.sync(server.throttle)

    def sessions(self) -> list[SessionInfo]:
        """The logged-in sessions, oldest first (none when not listening)."""
        return self._server.sessions() if self._server is not None else []

    @property
    def throttle(self) -> LoginThrottle:
        """The running server's login throttle (its bans in memory)."""
        if self._server is None:
            raise RuntimeError("start() the SFTP component first")
        return self._server.throttle

    # -- core.sftp.backend.SftpBackend --------------------------------------------------------

    async def password_hash(self, login: str) -> str | None:
        """Only an enabled SFTP integration has a usable password."""
        return await self._db.call(integrations.login_hash, login)  # canonical: server checked

    async def file_arrived(self, mailbox_uuid: str, folder: str, name: str) -> None:
        self._wake()


class _BanMirror:
    """Keeps the throttle's bans and the store's in step, both ways."""

    def __init__(self, db: Store) -> None:
        self._db = db
        self.persisted: set[str] = set()
        self._writes: set[asyncio.Task[None]] = set()

    def on_ban(self, ban: Ban) -> None:
        task = asyncio.get_running_loop().create_task(self._store(ban))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _store(self, ban: Ban) -> None:
        await self._db.write(bans.upsert_ban, ban)
        self.persisted.add(ban.address)

    async def sync(self, throttle: LoginThrottle) -> None:
        """Bans lifted in the TUI (rows deleted) end here too, bans made by another node on
        the same store start here too (within a heartbeat); expired rows are purged."""
        stored = {ban.address: ban for ban in await self._db.write(_purge_and_list_bans)}
        held = {ban.address for ban in throttle.bans()}
        for address in held:
            if address in self.persisted and address not in stored:
                throttle.unban(address)
                self.persisted.discard(address)
        arrived = [ban for address, ban in stored.items() if address not in held]
        throttle.restore(arrived)
        self.persisted.update(ban.address for ban in arrived)


def _purge_and_list_bans(tx: Tx) -> list[Ban]:
    bans.purge_expired(tx)
    return bans.list_bans(tx)
