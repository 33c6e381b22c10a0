"""The AS2 door of the service API (``service.as2``): our identities and their renewal, the
certificates' expiry, the message list, and a file sent now from the command line.

Like the rest of the service: async methods, SQLite through the database thread, crypto and
files in worker threads, each change one audited transaction.
"""

from __future__ import annotations

import asyncio
import importlib
import secrets
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from core.as2.sealed_keys import SEALED_PREFIX, seal_as2_key
from core.clock import utc_datetime
from core.config import Config
from core.errors import DocbridgeError, InvalidInput, NotFound
from core.models import (
    As2Identity,
    As2Message,
    CertificateExpiry,
    CertificateWarning,
    Mailbox,
    TransferProtocol,
)
from core.storage import accounts, as2_messages, integrations, logs
from core.storage import secrets as stored_secrets
from core.storage.connection import Tx
from core.storage.secrets import StoredSecret
from core.storage.store import Store
from core.validation import as2_id_from_name

if TYPE_CHECKING:
    from core.as2.certificates import GeneratedIdentity
    from core.engine.engine import Engine


def generate_identity(common_name: str, key_path: Path | None) -> GeneratedIdentity:
    from core.as2 import certificates  # cryptography: on first use

    return certificates.generate_identity(common_name, key_path)


class As2Desk:
    def __init__(self, db: Store, config: Config, actor: str) -> None:
        self.db = db
        self.config = config
        self.actor = actor

    # -- our identity ---------------------------------------------------------------------------

    async def ensure_identity(self, mailbox_uuid: str) -> As2Identity:
        """The mailbox's AS2 key pair and self-signed certificate, generated on first need."""
        existing = await self.db.call(integrations.get_as2_identity, mailbox_uuid)
        if existing is not None:
            return existing
        identity, sealed = await self._new_identity(mailbox_uuid)
        if await self.db.write(_store_identity, self.actor, identity, sealed):
            return identity
        # Another process won the race: its identity stands.
        if sealed is None:
            await asyncio.to_thread(Path(identity.key_path).unlink, missing_ok=True)
        stored = await self.db.call(integrations.get_as2_identity, mailbox_uuid)
        assert stored is not None
        return stored

    async def renew_identity(self, mailbox_uuid: str) -> As2Identity:
        """A new key pair and self certificate for the mailbox; the old key still decrypts
        while the partner moves to the new certificate (which signs from now on)."""
        identity, sealed = await self._new_identity(mailbox_uuid)
        await self.db.write(_renew_identity, self.actor, identity, sealed)
        return identity

    async def _new_identity(self, mailbox_uuid: str) -> tuple[As2Identity, StoredSecret | None]:
        """A key pair and self-signed certificate, not yet recorded. On one host the key is a
        0600 file; on a shared store it is sealed for the store (every node decrypts with it),
        recorded in the same transaction as the identity."""
        mailbox = await self.db.call(require_mailbox, mailbox_uuid)
        # A unique name per attempt: a crash between writing the key and recording it leaves
        # an orphan, never a clash with the next attempt.
        name = f"{mailbox_uuid}-{secrets.token_hex(4)}"
        shared = bool(self.config.store_url)
        key_path = None if shared else self.config.keys_dir / "as2" / f"{name}.key.pem"
        generated = await asyncio.to_thread(
            generate_identity, as2_id_from_name(mailbox.name), key_path
        )
        sealed = None
        if shared:
            sealed = await asyncio.to_thread(
                seal_as2_key, f"as2_key:{name}", generated.key_pem, generated.certificate_pem
            )
        identity = As2Identity(
            mailbox_uuid=mailbox_uuid,
            certificate_pem=generated.certificate_pem,
            key_path=SEALED_PREFIX + sealed.name if sealed else str(key_path),
            subject=generated.info.subject,
            fingerprint_sha256=generated.info.fingerprint_sha256,
            not_after=generated.info.not_after.isoformat(),
        )
        return identity, sealed

    # -- certificates' expiry and the messages ----------------------------------------------

    def certificate_expiry(self, not_after: datetime) -> CertificateExpiry:
        """Days left and the warning threshold reached (30/14/7/1 days), for rendering."""
        from core.as2.expiry import expiry

        return expiry(not_after, utc_datetime())

    async def certificate_warnings(self) -> list[CertificateWarning]:
        """AS2 certificates (ours and partners') at or past a warning threshold."""
        from core.as2.expiry import warnings

        return await self.db.call(warnings, utc_datetime())

    async def message(
        self, mailbox_uuid: str, direction: str, message_id: str
    ) -> As2Message | None:
        """One AS2 message by its Message-ID ("in" or "out")."""
        return await self.db.call(as2_messages.find_message, mailbox_uuid, direction, message_id)

    async def messages(self, mailbox_uuid: str | None = None, limit: int = 200) -> list[As2Message]:
        """AS2 messages in and out, newest first, with their MDNs."""
        return await self.db.call(as2_messages.list_messages, mailbox_uuid, limit)

    # -- from the command line (docbridge as2 certificate / send) -----------------------------

    AS2_SEND_FOLDER = ".as2-send"
    """Per mailbox root: the files ``send_file`` queued, until their MDN acknowledged them."""

    async def certificate(self, mailbox_uuid: str) -> As2Identity:
        """Our self certificate for the mailbox's AS2 partner, as stored; never generates one.

        The identity is made by the first Save with AS2: without it this is an
        :class:`InvalidInput` saying to choose AS2 and Save.
        """
        return await self.db.read(As2Desk._as2_identity_or_error, mailbox_uuid)

    async def send_file(self, mailbox_uuid: str, path: str) -> str:
        """Queue the file at ``path`` (``~`` expanded) for the mailbox's AS2 partner now and
        return the new message's Message-ID; the engine sends it (see :meth:`messages`).

        Refused, with nothing queued or left behind, when the mailbox is not set up for AS2, its
        integration is off (nothing is sent while it is off), or the file is missing, not a
        regular file, unreadable or larger than ``as2.max_body_size``. The file is copied
        durably into ``<mailbox root>/.as2-send/<token>/`` (a dot name: never visible over SFTP)
        before the job is committed; the sender deletes it once the partner's MDN acknowledged
        it (a failed message keeps it, so that reprocessing it can send it again).
        """
        from core.engine.as2_queue import SOURCE_FILE, message_domain

        await self.db.read(As2Desk._check_as2_sending, mailbox_uuid)
        name, data = await asyncio.to_thread(
            As2Desk._read_as2_send_file, path, self.config.as2.max_body_size
        )
        token = secrets.token_hex(8)
        relative = f"{As2Desk.AS2_SEND_FOLDER}/{token}/{name}"
        try:
            await asyncio.to_thread(
                As2Desk._write_as2_send_file,
                self.config.mailboxes_dir,
                mailbox_uuid,
                token,
                name,
                data,
            )
        except OSError as exc:
            raise DocbridgeError(
                f"The file cannot be stored for sending: {exc.strerror or exc}.",
                f"Check the space and permissions of {self.config.mailboxes_dir}; "
                "nothing was queued.",
            ) from exc
        source = {"source": SOURCE_FILE, "file": relative}
        try:
            return await self.db.write(
                As2Desk._queue_as2_file,
                self.actor,
                mailbox_uuid,
                f"send:{token}",
                name,
                source,
                message_domain(self.config),
            )
        except Exception:  # not on a cancellation: the job may have been committed
            await asyncio.to_thread(
                As2Desk._remove_as2_send_file, self.config.mailboxes_dir, mailbox_uuid, token, name
            )
            raise

    async def start_engine(self) -> Engine | None:
        """A temporary engine in this process for sending AS2 messages: AS2 endpoint on (so
        that asynchronous MDNs can arrive), SFTP listener off. None when another process runs
        this data directory's engine; the caller stops the one it gets."""
        await asyncio.to_thread(importlib.import_module, "core.engine.engine")
        from core.engine.engine import Engine, EngineBusy, EngineSettings

        engine = Engine(self.config, EngineSettings(run_sftp=False))
        try:
            await engine.start()
        except EngineBusy:
            return None
        return engine

    @staticmethod
    def _as2_identity_or_error(tx: Tx, mailbox_uuid: str) -> As2Identity:
        mailbox = require_mailbox(tx, mailbox_uuid)
        identity = integrations.get_as2_identity(tx, mailbox_uuid)
        if identity is None:
            raise InvalidInput(
                f"{mailbox.name} has no AS2 certificate yet.",
                "It is generated on the first Save with AS2: choose AS2 on the mailbox's "
                "Integrations page (or 'docbridge integration set MAILBOX --protocol as2 ...') "
                "and Save. To give it to a partner before you have the partner's certificate "
                "(which Save needs), make it now: 'docbridge as2 certificate MAILBOX --create'.",
            )
        return identity

    @staticmethod
    def _check_as2_sending(tx: Tx, mailbox_uuid: str) -> None:
        """Raise :class:`InvalidInput` unless a message queued now for the mailbox is sent."""
        mailbox = require_mailbox(tx, mailbox_uuid)
        integration = integrations.get_integration(tx, mailbox_uuid)
        setup = (
            "Choose AS2 on the mailbox's Integrations page (or 'docbridge integration set "
            "MAILBOX --protocol as2 ...'), fill in the partner and Save."
        )
        if not integration.saved or integration.form.protocol is not TransferProtocol.AS2:
            raise InvalidInput(f"{mailbox.name} is not set up for AS2.", setup)
        settings = integration.form.as2
        if integrations.get_as2_identity(tx, mailbox_uuid) is None:
            raise InvalidInput(f"{mailbox.name} has no AS2 certificate of its own yet.", setup)
        if not (settings.partner_url and settings.partner_certificate):
            raise InvalidInput(f"{mailbox.name} has no complete AS2 partner.", setup)
        if not integration.enabled:
            raise InvalidInput(
                f"The integration of {mailbox.name} is off: nothing is sent while it is off "
                "(the message would wait in the queue); nothing was queued.",
                "Turn it on first: 'docbridge integration set MAILBOX --enable'.",
            )

    @staticmethod
    def _queue_as2_file(
        tx: Tx,
        actor: str,
        mailbox_uuid: str,
        ref: str,
        name: str,
        source: dict[str, str],
        domain: str,
    ) -> str:
        from core.engine.as2_queue import queue_message

        As2Desk._check_as2_sending(tx, mailbox_uuid)  # again: it may have changed meanwhile
        message_id = queue_message(tx, mailbox_uuid, ref, name, source, domain)
        assert message_id is not None, "a fresh token is never queued twice"
        logs.append_audit(
            tx, actor, "as2.send_file", mailbox_uuid, {"file": name, "message_id": message_id}
        )
        return message_id

    @staticmethod
    def _read_as2_send_file(path: str, limit: int) -> tuple[str, bytes]:
        """The file's name and content, at most ``limit`` bytes. Blocking."""
        from core.files import read_regular_file
        from core.sftp.folders import validate_name

        local = Path(path.strip()).expanduser()
        data = read_regular_file(
            str(local),
            limit,
            f"AS2 messages are limited to {limit:,} bytes (as2.max_body_size in docbridge.toml).",
            "a file to send",
        )
        return validate_name(local.name), data

    @staticmethod
    def _write_as2_send_file(
        mailboxes_dir: Path, mailbox_uuid: str, token: str, name: str, data: bytes
    ) -> None:
        """``data`` at ``<root>/.as2-send/<token>/<name>``, complete and durable. Blocking.

        Also removes the empty token folders of messages delivered more than an hour ago (the
        sender deletes a delivered file, not its folder); younger ones may be another send's
        folder about to be filled.
        """
        import contextlib
        import os
        import stat

        from core.clock import timestamp
        from core.files import fsync_dir, replace_file_durably
        from core.sftp.folders import STALE_STAGING_S, ensure_mailbox_root, staging_path

        root = ensure_mailbox_root(mailboxes_dir, mailbox_uuid)
        base = root / As2Desk.AS2_SEND_FOLDER
        for directory in (base, base / token):
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=0o700)
                fsync_dir(directory.parent)
            if directory.is_symlink() or not directory.is_dir():
                raise InvalidInput(
                    f"{directory} is not a plain directory.",
                    "Remove it; docbridge recreates it.",
                )
        try:
            replace_file_durably(staging_path(root), base / token / name, data)
        except OSError:
            with contextlib.suppress(OSError):
                (base / token).rmdir()
            raise
        cutoff = timestamp() - STALE_STAGING_S
        with os.scandir(base) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    info = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(info.st_mode) and info.st_mtime < cutoff:
                        os.rmdir(entry.path)  # fails, as it should, unless it is empty

    @staticmethod
    def _remove_as2_send_file(
        mailboxes_dir: Path, mailbox_uuid: str, token: str, name: str
    ) -> None:
        import contextlib

        folder = mailboxes_dir / mailbox_uuid / As2Desk.AS2_SEND_FOLDER / token
        with contextlib.suppress(OSError):
            (folder / name).unlink()
            folder.rmdir()


def require_mailbox(tx: Tx, mailbox_uuid: str) -> Mailbox:
    mailbox = accounts.get_mailbox(tx, mailbox_uuid)
    if mailbox is None:
        raise NotFound(f"No mailbox {mailbox_uuid}.", "Run 'docbridge mailbox list' to see them.")
    return mailbox


def _store_identity(tx: Tx, actor: str, identity: As2Identity, sealed: StoredSecret | None) -> bool:
    """Store a generated identity, audited; False when another process stored one first."""
    if not integrations.insert_as2_identity(tx, identity):
        return False
    if sealed is not None:
        stored_secrets.insert_secret(tx, sealed)
    logs.append_audit(
        tx,
        actor,
        "as2.identity_generated",
        identity.mailbox_uuid,
        {"fingerprint_sha256": identity.fingerprint_sha256},
    )
    return True


def _renew_identity(tx: Tx, actor: str, identity: As2Identity, sealed: StoredSecret | None) -> None:
    if sealed is not None:
        stored_secrets.insert_secret(tx, sealed)
    old = integrations.replace_as2_identity(tx, identity)
    details = {"fingerprint_sha256": identity.fingerprint_sha256}
    if old is not None:
        details["retired_fingerprint_sha256"] = old.fingerprint_sha256
    logs.append_audit(tx, actor, "as2.identity_renewed", identity.mailbox_uuid, details)
