"""The engine's side of the SFTP server: logins checked against the store, arrivals woken into
the queue, sessions ended by the kill switch or a password reset, bans shared through SQLite."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from core.models import Ban, JobKind
from core.sftp.server import SftpServer
from core.sftp.throttle import LoginThrottle
from core.storage import bans, integrations
from core.storage.db import Tx

if TYPE_CHECKING:
    from core.engine.engine import Engine


class EngineSftpBackend:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def password_hash(self, login: str) -> str | None:
        """Only an enabled SFTP integration has a usable password."""
        return await self.engine.db.call(integrations.login_hash, login)  # canonical: checked

    async def file_arrived(self, mailbox_uuid: str, folder: str, name: str) -> None:
        self.engine.wake(JobKind.FILE)


class BanMirror:
    """Keeps the throttle's bans and the ``sftp_bans`` table in step, both ways."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.persisted: set[str] = set()
        self._writes: set[asyncio.Task[None]] = set()

    def on_ban(self, ban: Ban) -> None:
        task = asyncio.get_running_loop().create_task(self._store(ban))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _store(self, ban: Ban) -> None:
        await self.engine.db.write(bans.upsert_ban, ban)
        self.persisted.add(ban.address)

    async def sync(self, throttle: LoginThrottle) -> None:
        """Bans lifted in the TUI (rows deleted) end here too; expired rows are purged."""
        stored = await self.engine.db.write(_purge_and_list_bans)
        for ban in throttle.bans():
            if ban.address in self.persisted and ban.address not in stored:
                throttle.unban(ban.address)
                self.persisted.discard(ban.address)


def _purge_and_list_bans(tx: Tx) -> set[str]:
    bans.purge_expired(tx)
    return {ban.address for ban in bans.list_bans(tx)}


async def start_sftp_server(engine: Engine) -> SftpServer:
    mirror = BanMirror(engine)
    throttle = LoginThrottle(on_ban=mirror.on_ban)
    stored = await engine.db.call(bans.list_bans)
    throttle.restore(stored)
    mirror.persisted.update(b.address for b in stored)
    server = SftpServer(
        engine.config.sftp,
        engine.config.mailboxes_dir,
        engine.config.sftp_host_key_path,
        EngineSftpBackend(engine),
        throttle,
    )
    port = await server.start()
    engine.listeners["sftp"] = f"{engine.config.sftp.listen_host}:{port}"
    engine.listeners["sftp_host_key"] = server.host_key_fingerprint
    engine.ban_mirror = mirror
    return server


async def enforce_sessions(engine: Engine) -> None:
    """End sessions whose integration went off or whose password changed since login."""
    server: SftpServer = engine.sftp
    sessions = server.sessions()
    if sessions:
        allowed = await engine.db.call(integrations.sftp_session_rules)
        for mailbox_uuid in {s.mailbox_uuid for s in sessions}:
            rule = allowed.get(mailbox_uuid)
            started = min(s.started_at for s in sessions if s.mailbox_uuid == mailbox_uuid)
            if rule is None or (rule > started):
                server.close_sessions(mailbox_uuid)
    if engine.ban_mirror is not None:
        await engine.ban_mirror.sync(server.throttle)
