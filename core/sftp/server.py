"""The embedded SFTP server: listener, host key, logins and the registry of open sessions.

One :class:`SftpServer` serves every mailbox. A login is a mailbox uuid with its generated
password; the backend says which hash belongs to it (or that the login is unknown or its
integration is off, which is refused the same way and in the same time). Failed logins feed the
:class:`~core.sftp.throttle.LoginThrottle`. After login the client gets a
:class:`~core.sftp.session.MailboxSftpSession` confined to its own mailbox root.

Ciphers: the client's preference wins in SSH, and OpenSSH clients prefer chacha20-poly1305,
which runs at half the speed of AES-GCM in asyncssh; the only way to avoid it is not to offer it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import resource
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import asyncssh

from core.clock import timestamp
from core.config import SftpConfig
from core.errors import InvalidInput
from core.sftp.auth import PasswordVerifier, VerifierBusy
from core.sftp.backend import SftpBackend
from core.sftp.close_hook import require_close_hook
from core.sftp.folders import ensure_mailbox_root, sweep_mailboxes, upload_prefix, validate_name
from core.sftp.host_key import RSA, fingerprint, load_or_create_host_key
from core.sftp.quota import MailboxUsage
from core.sftp.session import FileBudget, MailboxContext, MailboxSftpSession
from core.sftp.throttle import LoginThrottle

log = logging.getLogger("docbridge.sftp")

ENCRYPTION_ALGS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
SERVER_VERSION = "docbridge"
LOGIN_TIMEOUT_S = 60
KEEPALIVE_INTERVAL_S = 30
KEEPALIVE_COUNT_MAX = 4
# How often staging is swept for temp files that killed processes left (see sweep_staging).
STAGING_SWEEP_INTERVAL_S = 600.0
BUSY_WARNING_INTERVAL_S = 60  # "too busy" refusals come in floods: one warning a minute
BANNED_MESSAGE = (
    "Too many failed logins from your address: it is blocked for a while. "
    "Check the login and password, wait, then try again, or ask the gateway's operator "
    "to lift the block.\r\n"
)


@dataclass(frozen=True)
class SessionInfo:
    """One logged-in SSH connection (a client may open several SFTP channels on it)."""

    mailbox_uuid: str
    address: str
    started_at: float  # unix time


@dataclass
class _Session:
    info: SessionInfo
    conn: asyncssh.SSHServerConnection
    connected: bool = True
    # The SFTP channels opened on it; weak: a channel asyncssh let go of is forgotten.
    channels: weakref.WeakSet[MailboxSftpSession] = field(default_factory=weakref.WeakSet)

    @property
    def over(self) -> bool:
        """Disconnected, and every upload it had open is discarded or stored."""
        return not self.connected and all(channel.settled for channel in self.channels)


CANONICAL_LOGIN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_canonical_login(login: str) -> bool:
    """A login has one form: the mailbox uuid in lower case, nothing around it (SPEC §9).

    Any other spelling (upper case, spaces) is refused rather than folded, so that the root
    folder, the session registry and the quota, which all key on the login, can never see a
    second spelling of one mailbox (each used to get an empty root of its own)."""
    return CANONICAL_LOGIN.fullmatch(login) is not None


def open_file_budget() -> int:
    """How many files SFTP sessions may hold open together: half the process's descriptor
    limit (raised to its hard limit first), so sessions can never starve the store, the engine
    and new logins of descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(16, soft // 2)


class _Connection(asyncssh.SSHServer):
    """asyncssh's per-connection callbacks, handed over to the :class:`SftpServer`."""

    def __init__(self, server: SftpServer) -> None:
        self._server = server
        self._conn: asyncssh.SSHServerConnection | None = None
        self._address = ""
        self._told_banned = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._server._connections.add(conn)
        peer = conn.get_extra_info("peername")
        self._address = str(peer[0]) if peer else ""

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._server._connections.discard(self._conn)
            self._server._disconnected(self._conn)

    def begin_auth(self, username: str) -> bool:
        self._tell_if_banned()
        return True

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        if self._conn is None or not await self._server._check_login(
            self._address, username, password
        ):
            self._tell_if_banned()  # banned by this attempt, or while it waited its turn
            return False
        open_sessions = self._server.session_count(username)
        if open_sessions >= self._server.config.max_sessions_per_mailbox:
            log.warning(
                "SFTP login for mailbox %s from %s refused: %d sessions already open",
                username,
                self._address,
                open_sessions,
            )
            with contextlib.suppress(Exception):
                self._conn.send_auth_banner(
                    f"This mailbox already has {open_sessions} open sessions, the most allowed: "
                    "close one, then try again.\r\n"
                )
            return False
        # Registered before anything else can run, so a close_sessions() for a password reset
        # that lands from here on finds this session.
        self._server._register(self._conn, username, self._address)
        return True

    def _tell_if_banned(self) -> None:
        if self._conn is None or self._told_banned:
            return
        if self._server.throttle.is_banned(self._address):
            self._told_banned = True
            with contextlib.suppress(Exception):  # the client may be gone already
                self._conn.send_auth_banner(BANNED_MESSAGE)


class SftpServer:
    """Serves every mailbox's SFTP folders on ``config.listen_host``/``config.port``.

    ``host_key_path`` holds the ed25519 host key (generated on first start, 0600); with
    ``rsa_host_key_path`` an RSA key is offered too, for clients too old for ed25519.
    ``verifier`` defaults to argon2 checks with the parameters :mod:`core.passwords` uses.
    """

    def __init__(
        self,
        config: SftpConfig,
        mailboxes_dir: Path,
        host_key_path: Path,
        backend: SftpBackend,
        throttle: LoginThrottle,
        *,
        verifier: PasswordVerifier | None = None,
        rsa_host_key_path: Path | None = None,
        node: str = "",
        host_key: asyncssh.SSHKey | None = None,
    ) -> None:
        self.config = config
        # Nodes sharing the mailbox tree name their upload temp files apart (sweeps below).
        self.upload_prefix = upload_prefix(node)
        self.mailboxes_dir = mailboxes_dir
        # Resolved at start: the folder may sit behind a symlink an admin chose.
        self._real_mailboxes_dir = mailboxes_dir
        self.host_key_path = host_key_path
        self.rsa_host_key_path = rsa_host_key_path
        self._given_host_key = host_key  # a cluster's key from the store: host_key_path unused
        self.backend = backend
        self.throttle = throttle
        self._verifier = verifier or PasswordVerifier()
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._host_keys: list[asyncssh.SSHKey] = []
        self._sessions: dict[asyncssh.SSHServerConnection, _Session] = {}  # logged in
        self._connections: set[asyncssh.SSHServerConnection] = set()  # all, for stop()
        self._usage: dict[str, MailboxUsage] = {}
        self._files = FileBudget(capacity=open_file_budget())
        self._staging_in_use: set[str] = set()  # temp names of uploads open in any session
        self._sweeper: asyncio.Task[None] | None = None
        self._port = 0
        self._busy_warned_at = -float(BUSY_WARNING_INTERVAL_S)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> int:
        """Load (or create) the host keys and listen; return the port (config.port 0 picks one)."""
        if self._acceptor is not None:
            return self._port
        require_close_hook()  # before anything else: the server must not run without it
        host_key = self._given_host_key
        if host_key is None:
            host_key = await asyncio.to_thread(load_or_create_host_key, self.host_key_path)
        self._host_keys = [host_key]
        if self.rsa_host_key_path is not None:
            self._host_keys.append(
                await asyncio.to_thread(load_or_create_host_key, self.rsa_host_key_path, RSA)
            )
        self._real_mailboxes_dir = Path(
            await asyncio.to_thread(os.path.realpath, self.mailboxes_dir)
        )
        await asyncio.to_thread(self._sweep_staging, frozenset(self._staging_in_use), True)
        await self._verifier.warm_up()
        self._acceptor = await asyncssh.listen(
            self.config.listen_host,
            self.config.port,
            server_factory=lambda: _Connection(self),
            server_host_keys=self._host_keys,
            sftp_factory=self._open_session,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            encryption_algs=list(ENCRYPTION_ALGS),
            server_version=SERVER_VERSION,
            login_timeout=LOGIN_TIMEOUT_S,
            keepalive_interval=KEEPALIVE_INTERVAL_S,
            keepalive_count_max=KEEPALIVE_COUNT_MAX,
        )
        self._port = self._acceptor.get_port()
        self._sweeper = asyncio.create_task(self._sweep_staging_loop())
        log.info("SFTP server listening on %s:%d", self.config.listen_host, self._port)
        return self._port

    async def stop(self) -> None:
        """Stop listening and end every session (uploads in progress are discarded)."""
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is None:
            return
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        acceptor.close()
        await acceptor.wait_closed()
        connections = list(self._connections)
        for conn in connections:
            conn.close()
        for conn in connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.wait_closed(), timeout=5)
        log.info("SFTP server stopped")

    @property
    def port(self) -> int:
        return self._port

    @property
    def host_key_fingerprint(self) -> str:
        """``SHA256:…`` of the ed25519 host key, as OpenSSH shows it; customers pin this."""
        if not self._host_keys:
            raise RuntimeError("start() the server first")
        return fingerprint(self._host_keys[0])

    @property
    def host_key_fingerprints(self) -> dict[str, str]:
        """Every offered host key's fingerprint by algorithm (ed25519, and rsa if enabled)."""
        return {key.get_algorithm(): fingerprint(key) for key in self._host_keys}

    # -- sessions -----------------------------------------------------------------------------

    def sessions(self) -> list[SessionInfo]:
        """The logged-in connections, oldest first. A connection that ended is listed until its
        uploads in progress are cleaned up: once it is gone, its temp files are gone too."""
        self._forget_ended()
        return sorted((s.info for s in self._sessions.values()), key=lambda i: i.started_at)

    def session_count(self, mailbox_uuid: str) -> int:
        return sum(1 for s in self._sessions.values() if s.info.mailbox_uuid == mailbox_uuid)

    def close_sessions(self, mailbox_uuid: str) -> int:
        """End every open session of one mailbox; return how many.

        For when the integration is switched off or the password is reset: the old password must
        stop working at once, including for clients already logged in. Uploads in progress in
        those sessions are discarded.
        """
        closing = [
            s
            for s in self._sessions.values()
            if s.connected and s.info.mailbox_uuid == mailbox_uuid
        ]
        for session in closing:
            session.conn.close()
        if closing:
            log.info("closed %d SFTP session(s) of mailbox %s", len(closing), mailbox_uuid)
        return len(closing)

    def _register(self, conn: asyncssh.SSHServerConnection, mailbox: str, address: str) -> None:
        self._sessions[conn] = _Session(SessionInfo(mailbox, address, timestamp()), conn)

    def _disconnected(self, conn: asyncssh.SSHServerConnection) -> None:
        session = self._sessions.get(conn)
        if session is not None:
            session.connected = False
        self._forget_ended()

    def _forget_ended(self) -> None:
        for conn in [conn for conn, session in self._sessions.items() if session.over]:
            del self._sessions[conn]

    def _open_session(self, chan: asyncssh.SSHServerChannel[bytes]) -> MailboxSftpSession:
        session = self._sessions.get(cast(asyncssh.SSHServerConnection, chan.get_connection()))
        if session is None:  # pragma: no cover - asyncssh opens channels only after auth
            raise asyncssh.SFTPNoConnection("Not logged in")
        mailbox = session.info.mailbox_uuid
        root = self._mailbox_root(mailbox)
        usage = self._usage.get(mailbox)
        if usage is None:
            usage = self._usage[mailbox] = MailboxUsage(root, self.config.mailbox_quota)
        context = MailboxContext(
            mailbox,
            root,
            self.backend,
            usage,
            self.config.max_file_size,
            self._staging_in_use,
            self._files,
            self.upload_prefix,
        )
        channel = MailboxSftpSession(chan, context)
        session.channels.add(channel)
        return channel

    # -- logins -------------------------------------------------------------------------------

    async def _check_login(self, address: str, login: str, password: str) -> bool:
        """The whole login decision; every refusal looks the same to the client.

        One attempt per address is checked at a time (:meth:`PasswordVerifier.turn`), and the
        ban is looked at again when the attempt's turn comes: a flood from one address costs
        the argon2 checks that get it banned, and the rest of its queue is refused without
        any. The address's standing (its own record of logins and failures) decides who goes
        first when checks queue. Refusals with no check (banned, too busy) and the standing do
        not depend on the login, so the time taken tells nothing about which logins exist.
        """
        if self._refused_as_banned(address, login):
            return False
        try:
            async with self._verifier.turn(address):
                if self._refused_as_banned(address, login):  # banned while this one waited
                    return False
                password_hash = await self._password_hash(login)
                ok = await self._verifier.verify(
                    password_hash,
                    password,
                    standing=self.throttle.standing(address),
                    on_mismatch=lambda: self._count_failure(address, login),
                )
                if not ok:
                    return False
        except VerifierBusy as exc:
            log.info("login for %.64r from %s refused: too busy (%s)", login, address, exc)
            if time.monotonic() - self._busy_warned_at >= BUSY_WARNING_INTERVAL_S:
                self._busy_warned_at = time.monotonic()
                log.warning(
                    "SFTP logins refused: more password checks are waiting than can be done "
                    "within %.0f s (a login flood from many addresses?)",
                    self._verifier.max_wait_s,
                )
            return False
        if not await asyncio.to_thread(self._prepare_root, login):
            return False
        # The password may have been reset, or the integration switched off, while argon2 ran;
        # the caller registers the session right after this check, with no await in between.
        try:
            current = await self.backend.password_hash(login)
        except Exception:
            log.exception("password lookup failed for %.64r", login)
            current = None
        if current != password_hash or self.throttle.is_banned(address):
            return False
        self.throttle.record_success(address)
        log.info("SFTP login for mailbox %s from %s", login, address)
        return True

    def _refused_as_banned(self, address: str, login: str) -> bool:
        if not self.throttle.is_banned(address):
            return False
        log.info("login for %.64r refused: %s is banned", login, address)
        return True

    async def _password_hash(self, login: str) -> str | None:
        """The login's hash; None (refused after a dummy check) for anything but a known login."""
        try:
            validate_name(login)
            if is_canonical_login(login):  # else refused, after the same argon2 work
                return await self.backend.password_hash(login)
        except InvalidInput:
            pass
        except Exception:  # a broken backend refuses logins, it does not crash connections
            log.exception("password lookup failed for %.64r", login)
        return None

    def _count_failure(self, address: str, login: str) -> None:
        """Called before the address's next attempt gets its turn, so that one sees the ban."""
        ban = self.throttle.record_failure(address)
        log.info("failed SFTP login for %.64r from %s", login, address)
        if ban is not None:
            log.warning("SFTP address %s banned after %d failed logins", ban.address, ban.failures)

    def _mailbox_root(self, mailbox: str) -> Path:
        # The parent may sit behind a symlink (resolved at start); the root itself must not.
        return self._real_mailboxes_dir / mailbox

    def _prepare_root(self, mailbox: str) -> bool:
        """Create the mailbox folders; False (login refused) if the root is not a real directory.

        A folder replaced by something else on disk is only logged: the session refuses that
        folder and the customer can still use the others.
        """
        try:
            ensure_mailbox_root(self.mailboxes_dir, mailbox)
        except InvalidInput as exc:
            log.error("mailbox %s: %s", mailbox, exc)
        root = self._mailbox_root(mailbox)
        if root.is_symlink() or not root.is_dir():
            log.error("mailbox %s: root %s is not a directory; login refused", mailbox, root)
            return False
        return True

    # -- staging ------------------------------------------------------------------------------

    async def sweep_staging(self) -> int:
        """Remove the temp files interrupted processes left in the mailboxes' staging folders
        (:func:`~core.sftp.folders.sweep_staging`), never one of this server's open uploads;
        return how many. Runs at start and every ``STAGING_SWEEP_INTERVAL_S`` after: a server
        may run for months, and each kill of the engine or the server can leave one behind.
        """
        in_use = frozenset(self._staging_in_use)
        return await asyncio.to_thread(self._sweep_staging, in_use, False)

    async def _sweep_staging_loop(self) -> None:
        while True:
            await asyncio.sleep(STAGING_SWEEP_INTERVAL_S)
            try:
                await self.sweep_staging()
            except Exception:  # e.g. a folder it cannot read: try again next time
                log.exception("sweeping the SFTP staging folders failed")

    def _sweep_staging(self, in_use: frozenset[str], at_start: bool) -> int:
        # At start no session is open: every upload temp file not in use is an orphan.
        removed = sweep_mailboxes(
            self.mailboxes_dir,
            in_use=in_use,
            all_uploads=at_start,
            own_uploads=self.upload_prefix,
        )
        for mailbox, count in removed.items():
            log.info(
                "removed %d temp file(s) of interrupted uploads or writes in %s", count, mailbox
            )
        return sum(removed.values())
