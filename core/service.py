"""The service API: the only way the TUI and the CLI read or change anything.

Every method is async and keeps the event loop free: SQLite runs on the database thread, argon2
and key generation on worker threads. Each change is one transaction together with its audit
entry, so a change is either complete and audited or absent.
"""

from __future__ import annotations

import asyncio
import getpass
import importlib
import secrets
import uuid as uuid_module
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from core.clock import utc_datetime, utc_now
from core.config import Config, load_config
from core.conversion_desk import ConversionDesk
from core.errors import DocbridgeError, FieldErrors, InvalidInput, NotFound
from core.files import read_example_file, write_public_file
from core.integration import changed_fields, validate_integration_form
from core.models import (
    Account,
    ActivityRecord,
    ActivityView,
    As2Identity,
    As2Message,
    AuditEntry,
    Ban,
    CertificateExpiry,
    CertificateInfo,
    CertificateWarning,
    ConversionRule,
    EngineStatus,
    Envelope,
    EnvelopeDirection,
    EnvelopeStatus,
    Integration,
    IntegrationForm,
    Job,
    JobKind,
    JobState,
    Mailbox,
    PageState,
    RuleForm,
    SftpDetails,
    Template,
    TransferProtocol,
)
from core.passwords import generate_password, hash_password, verify_password
from core.rules import clone_name, validate_rule_form
from core.sftp.fingerprint import read_fingerprint
from core.storage import (
    accounts,
    as2_messages,
    bans,
    envelopes,
    integrations,
    jobs,
    logs,
    rules,
)
from core.storage.db import Database, Tx
from core.storage.engine_state import read_engine_status
from core.validation import as2_id_from_name

if TYPE_CHECKING:
    from core.as2.certificates import GeneratedIdentity
    from core.engine.engine import Engine
    from core.envelope_xml import EnvelopeXml


# Heavy libraries (cryptography, lxml) load on first use: opening the page needs neither.


def generate_identity(common_name: str, key_path: Path) -> GeneratedIdentity:
    from core.as2 import certificates

    return certificates.generate_identity(common_name, key_path)


def inspect_certificate(pem: str) -> CertificateInfo:
    from core.as2 import certificates

    return certificates.inspect_certificate(pem)


def load_certificate_text(source: str) -> str:
    from core.as2 import certificates

    return certificates.load_certificate_text(source)


@dataclass(frozen=True)
class SaveResult:
    integration: Integration
    new_password: str | None  # shown once: only when this Save generated it
    as2_identity: As2Identity | None = None  # our AS2 side, made by the first Save with AS2


@dataclass(frozen=True)
class EnvelopePage:
    """One page of a list of envelopes, newest first, and how many there are in all."""

    total: int
    limit: int
    offset: int
    items: tuple[Envelope, ...]


def default_actor(interface: str) -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{interface}"


class Service:
    """One data directory's gateway, as seen by a user interface."""

    def __init__(self, config: Config, actor: str) -> None:
        self.config = config
        self.actor = actor
        self.db = Database(config.database_path)
        self._host_fingerprint: str | None = None
        # Run, examples, rules as JSON, the conversion log and its reprocess.
        self.conversions = ConversionDesk(self.db, config, actor)

    @classmethod
    async def open(cls, data_dir: Path, actor: str) -> Service:
        """Open an initialised data directory (``docbridge init`` makes one)."""
        config = await asyncio.to_thread(load_config, data_dir)
        if not await asyncio.to_thread(config.database_path.exists):
            raise DocbridgeError(
                f"No docbridge data directory at {data_dir}.",
                "Run 'docbridge init --demo' (or pass --data-dir / set DOCBRIDGE_HOME).",
            )
        service = cls(config, actor)
        await service.db.call(lambda tx: None)  # connect and migrate now, not on first use
        return service

    async def close(self) -> None:
        await self.conversions.close()
        await self.db.close()

    # -- account and mailboxes -------------------------------------------------------------

    async def list_mailboxes(self) -> list[Mailbox]:
        return await self.db.call(accounts.list_mailboxes)

    async def resolve_mailbox(self, reference: str) -> Mailbox:
        """A mailbox by uuid or by (case-insensitive) name."""
        return await self.db.call(_resolve_mailbox, reference)

    async def list_templates(self, account_uuid: str) -> list[Template]:
        return await self.db.call(accounts.list_templates, account_uuid)

    # -- the Integrations page ---------------------------------------------------------------

    async def page_state(self, mailbox_uuid: str | None = None) -> PageState:
        """Everything block (1)-(5) shows for a mailbox (the first one when none is given)."""
        await self.sftp_host_key_fingerprint()
        state = await self.db.read(self._read_page_state, mailbox_uuid)
        if state.integration.form.protocol is TransferProtocol.AS2 and state.as2_identity is None:
            identity = await self.ensure_as2_identity(state.mailbox.uuid)
            state = replace(state, as2_identity=identity)
        return state

    def _read_page_state(self, tx: Tx, mailbox_uuid: str | None) -> PageState:
        all_mailboxes = accounts.list_mailboxes(tx)
        if not all_mailboxes:
            raise NotFound(
                "This gateway has no mailbox yet.",
                "Run 'docbridge init --demo' to load the demo account.",
            )
        mailbox = all_mailboxes[0]
        if mailbox_uuid is not None:
            mailbox = _require_mailbox(tx, mailbox_uuid)
        account = accounts.get_account(tx, mailbox.account_uuid) or Account(
            mailbox.account_uuid, ""
        )
        integration = _with_prefilled_self_id(
            integrations.get_integration(tx, mailbox.uuid), mailbox
        )
        return PageState(
            account=account,
            mailboxes=tuple(m for m in all_mailboxes if m.account_uuid == account.uuid),
            mailbox=mailbox,
            integration=integration,
            sftp=SftpDetails(
                host=self.config.sftp.public_host,
                port=self.config.sftp.port,
                login=mailbox.uuid,
                password_set=integration.password_set,
                host_key_fingerprint=self._host_fingerprint,
            ),
            as2_self_url=self.as2_self_url(mailbox.uuid),
            as2_identity=integrations.get_as2_identity(tx, mailbox.uuid),
            rules=tuple(rules.list_rules(tx, mailbox.uuid)),
            templates=tuple(accounts.list_templates(tx, account.uuid)),
        )

    async def sftp_host_key_fingerprint(self) -> str | None:
        """What customers pin; None until an engine has generated the host key."""
        if self._host_fingerprint is None:
            host_key = self.config.sftp_host_key_path
            try:
                self._host_fingerprint = await asyncio.to_thread(read_fingerprint, host_key)
            except (OSError, ValueError) as exc:
                raise InvalidInput(
                    f"The SFTP host key {host_key} cannot be read ({exc}).",
                    "Restore it from a backup; a new key would make every customer's client "
                    "refuse the server until they accept the new fingerprint.",
                ) from exc
        return self._host_fingerprint

    def as2_self_url(self, mailbox_uuid: str) -> str:
        return f"{self.config.as2.public_url.rstrip('/')}/{mailbox_uuid}"

    async def get_integration(self, mailbox_uuid: str) -> Integration:
        return await self.db.call(_get_integration, mailbox_uuid)

    async def save_integration(self, mailbox_uuid: str, form: IntegrationForm) -> SaveResult:
        """Validate every field, then persist the whole form at once (or nothing).

        The first Save of an SFTP integration generates its password, returned here in clear
        once and stored only as an argon2id hash.
        """
        errors = await asyncio.to_thread(validate_integration_form, form)
        if errors:
            raise FieldErrors(errors)
        current = await self.get_integration(mailbox_uuid)
        password: str | None = None
        password_hash: str | None = None
        if form.protocol is TransferProtocol.SFTP and not current.password_set:
            password = generate_password()
            password_hash = await asyncio.to_thread(hash_password, password)
        identity = None
        if form.protocol is TransferProtocol.AS2:
            identity = await self.ensure_as2_identity(mailbox_uuid)
        saved, stored = await self.db.write(
            _save_integration, self.actor, mailbox_uuid, form, password_hash
        )
        return SaveResult(
            integration=saved, new_password=password if stored else None, as2_identity=identity
        )

    async def set_enabled(self, mailbox_uuid: str, enabled: bool) -> Integration:
        """The kill switch: takes effect at once, independent of unsaved form changes."""
        return await self.db.write(_set_enabled, self.actor, mailbox_uuid, enabled)

    async def reset_password(self, mailbox_uuid: str) -> str:
        """A new SFTP password, returned in clear once; the old one stops working at once."""
        await self.get_integration(mailbox_uuid)  # clear NotFound before the slow hash
        password = generate_password()
        password_hash = await asyncio.to_thread(hash_password, password)
        await self.db.write(_reset_password, self.actor, mailbox_uuid, password_hash)
        return password

    async def check_password(self, mailbox_uuid: str, password: str) -> bool:
        stored = await self.db.call(integrations.get_password_hash, mailbox_uuid)
        if stored is None:
            return False
        return await asyncio.to_thread(verify_password, stored, password)

    async def ensure_as2_identity(self, mailbox_uuid: str) -> As2Identity:
        """The mailbox's AS2 key pair and self-signed certificate, generated on first need."""
        existing = await self.db.call(integrations.get_as2_identity, mailbox_uuid)
        if existing is not None:
            return existing
        identity = await self._new_as2_identity(mailbox_uuid)
        if await self.db.write(_store_as2_identity, self.actor, identity):
            return identity
        # Another process won the race: its identity stands.
        await asyncio.to_thread(Path(identity.key_path).unlink, missing_ok=True)
        stored = await self.db.call(integrations.get_as2_identity, mailbox_uuid)
        assert stored is not None
        return stored

    async def renew_as2_identity(self, mailbox_uuid: str) -> As2Identity:
        """A new key pair and self certificate for the mailbox; the old key still decrypts
        while the partner moves to the new certificate (which signs from now on)."""
        identity = await self._new_as2_identity(mailbox_uuid)
        await self.db.write(_renew_as2_identity, self.actor, identity)
        return identity

    async def _new_as2_identity(self, mailbox_uuid: str) -> As2Identity:
        """A key pair (0600 file) and self-signed certificate, not yet recorded."""
        mailbox = await self.db.call(_require_mailbox, mailbox_uuid)
        # A unique file per attempt: a crash between writing the key and recording it leaves
        # an orphan file, never a clash with the next attempt.
        key_path = self.config.keys_dir / "as2" / f"{mailbox_uuid}-{secrets.token_hex(4)}.key.pem"
        generated = await asyncio.to_thread(
            generate_identity, as2_id_from_name(mailbox.name), key_path
        )
        return As2Identity(
            mailbox_uuid=mailbox_uuid,
            certificate_pem=generated.certificate_pem,
            key_path=str(key_path),
            subject=generated.info.subject,
            fingerprint_sha256=generated.info.fingerprint_sha256,
            not_after=generated.info.not_after.isoformat(),
        )

    # -- conversion rules --------------------------------------------------------------------

    async def list_rules(self, mailbox_uuid: str) -> list[ConversionRule]:
        return await self.db.call(rules.list_rules, mailbox_uuid)

    async def get_rule(self, rule_uuid: str) -> ConversionRule:
        return await self.db.call(_require_rule, rule_uuid)

    async def create_rule(self, mailbox_uuid: str, form: RuleForm) -> ConversionRule:
        rule_uuid = str(uuid_module.uuid4())
        return await self.db.write(_create_rule, self.actor, mailbox_uuid, rule_uuid, form)

    async def update_rule(self, rule_uuid: str, form: RuleForm) -> ConversionRule:
        return await self.db.write(_update_rule, self.actor, rule_uuid, form)

    async def set_rule_enabled(self, rule_uuid: str, enabled: bool) -> ConversionRule:
        return await self.db.write(_set_rule_enabled, self.actor, rule_uuid, enabled)

    async def clone_rule(self, rule_uuid: str) -> RuleForm:
        """An unsaved copy, switched off, named '<name> (copy)'; saving it is create_rule."""
        return await self.db.call(_clone_rule, rule_uuid)

    async def delete_rule(self, rule_uuid: str) -> None:
        await self.db.write(_delete_rule, self.actor, rule_uuid)

    async def move_rule(self, rule_uuid: str, offset: int) -> ConversionRule:
        """Move a rule one place up (-1) or down (+1); at either end nothing changes."""
        if offset not in (-1, 1):
            raise ValueError("offset must be -1 or +1")
        return await self.db.write(_move_rule, self.actor, rule_uuid, offset)

    # -- envelopes ---------------------------------------------------------------------------

    async def receive_envelope(self, mailbox_uuid: str, data: bytes) -> Envelope:
        """Accept an incoming envelope for a mailbox from envelope XML (the platform's side).

        The XML is untrusted: parsed without entities or network, validated against the
        schema and against the template version it names, and its ``recipient`` role must be
        this mailbox (no envelope lands in a mailbox it was not sent to). Nothing is stored on
        error.
        """
        from core.envelope_xml import parse_envelope_xml

        parsed = await asyncio.to_thread(parse_envelope_xml, data)
        envelope_uuid = parsed.uuid or str(uuid_module.uuid4())
        return await self.db.write(_receive_envelope, mailbox_uuid, envelope_uuid, parsed, data)

    async def list_envelopes(
        self,
        mailbox_uuid: str | None = None,
        status: EnvelopeStatus | None = None,
        limit: int = 1000,
    ) -> list[Envelope]:
        """The *first* ``limit`` envelopes in arrival order (for processing order and tests);
        a person's list is :meth:`envelope_page`, newest first with the total."""
        return await self.db.call(envelopes.list_envelopes, mailbox_uuid, status, limit)

    async def envelope_page(
        self,
        mailbox_uuid: str | None = None,
        status: EnvelopeStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> EnvelopePage:
        """Newest first, ``limit`` envelopes after skipping ``offset``, with how many match in
        all, read in one snapshot so that the total and the page agree."""
        return await self.db.read(_envelope_page, mailbox_uuid, status, limit, offset)

    # -- engine ------------------------------------------------------------------------------

    async def engine_status(self) -> EngineStatus:
        """Whether an engine (in this process or a ``docbridge serve``) is running."""
        return await self.db.call(read_engine_status)

    async def list_jobs(
        self, states: tuple[JobState, ...] = (JobState.PARKED,), limit: int = 200
    ) -> list[Job]:
        """Queue items by state, e.g. parked ones for the Activity screen."""
        return await self.db.call(jobs.list_jobs, states, limit)

    async def reprocess(self, job_ids: list[int]) -> int:
        """Put parked items back in the queue, due now, with fresh attempts."""
        if not job_ids:
            return 0
        return await self.db.write(_reprocess, self.actor, job_ids)

    async def list_bans(self) -> list[Ban]:
        return await self.db.call(bans.list_bans)

    async def unban(self, address: str) -> bool:
        """Lift an SFTP ban at once (the engine drops it within a second)."""
        return await self.db.write(_unban, self.actor, address)

    # -- logs --------------------------------------------------------------------------------

    async def audit_log(
        self, mailbox_uuid: str | None = None, limit: int = 200
    ) -> list[AuditEntry]:
        return await self.db.call(logs.list_audit, mailbox_uuid, limit)

    async def activity_log(
        self, mailbox_uuid: str | None = None, limit: int = 200
    ) -> list[ActivityRecord]:
        return await self.db.call(logs.list_activity, mailbox_uuid, limit)

    def certificate_expiry(self, not_after: datetime) -> CertificateExpiry:
        """Days left and the warning threshold reached (30/14/7/1 days), for rendering."""
        from core.as2.expiry import expiry

        return expiry(not_after, utc_datetime())

    async def certificate_warnings(self) -> list[CertificateWarning]:
        """AS2 certificates (ours and partners') at or past a warning threshold."""
        from core.as2.expiry import warnings

        return await self.db.call(warnings, utc_datetime())

    async def as2_message(
        self, mailbox_uuid: str, direction: str, message_id: str
    ) -> As2Message | None:
        """One AS2 message by its Message-ID ("in" or "out")."""
        return await self.db.call(as2_messages.find_message, mailbox_uuid, direction, message_id)

    async def as2_messages(
        self, mailbox_uuid: str | None = None, limit: int = 200
    ) -> list[As2Message]:
        """AS2 messages in and out, newest first, with their MDNs."""
        return await self.db.call(as2_messages.list_messages, mailbox_uuid, limit)

    async def activity_view(
        self, mailbox_uuid: str | None = None, limit: int = 100
    ) -> ActivityView:
        """Everything the Activity screen shows, in one consistent read, with states a person
        reads ("retrying 3/8 in 40 s", "parked after 8/8") derived here, not in the screen."""
        from core.activity import read_activity

        return await self.db.read(read_activity, mailbox_uuid, limit)

    # -- form checks, certificates and files for the user interfaces --------------------------

    def validate_integration_form(self, form: IntegrationForm) -> dict[str, str]:
        """Field name -> message for every invalid field of ``form``; empty when it can be saved.

        The same checks :meth:`save_integration` runs, so a screen can show errors while the user
        types and Save never refuses what the screen accepted. Pure and fast: no I/O, so it is
        synchronous and safe to call on every keystroke.
        """
        return validate_integration_form(form)

    def validate_rule_form(self, form: RuleForm, template: Template | None) -> dict[str, str]:
        """Field name -> message for every invalid field of a rule form checked against
        ``template`` (None: the chosen template does not exist). Pure and fast, like
        :meth:`validate_integration_form`; uniqueness of the name is checked at Save.
        """
        return validate_rule_form(form, template)

    async def inspect_certificate(self, pem: str) -> CertificateInfo:
        """Describe the first certificate in ``pem``, parsed on a worker thread.

        Raises :class:`InvalidInput` with what to do for a private key, text that is not a PEM
        certificate, a damaged one, or one not valid now.
        """
        return await asyncio.to_thread(inspect_certificate, pem)

    def describe_certificate(self, pem: str) -> CertificateInfo | None:
        """What to show for a stored certificate: None when there is none or it cannot be used.

        Synchronous, for rendering: parsing one certificate takes well under a millisecond. Use
        :meth:`inspect_certificate` to learn *why* a certificate cannot be used.
        """
        if not pem.strip():
            return None
        try:
            return inspect_certificate(pem)
        except DocbridgeError:
            return None

    async def load_certificate(self, source: str) -> tuple[str, CertificateInfo]:
        """The PEM text and its description from pasted PEM text or the path of a PEM file.

        ``source`` starting with ``-----BEGIN`` is pasted text, anything else a path (``~``
        expanded). The file read is bounded (1 MB) and the certificate checked as by
        :meth:`inspect_certificate`; every refusal is an :class:`InvalidInput` saying what to do.
        """

        def load() -> tuple[str, CertificateInfo]:
            pem = load_certificate_text(source)
            return pem, inspect_certificate(pem)

        return await asyncio.to_thread(load)

    async def export_certificate(self, path: str, pem: str) -> Path:
        """Write the certificate ``pem`` to the new file ``path`` and return where it went.

        Never overwrites a file and never leaves a partial one (written, fsync'd, then linked
        into place); refuses text that is not a certificate, so a private key can never leave
        through this door. Errors are :class:`InvalidInput` saying what to do.
        """
        if "PRIVATE KEY-----" in pem or "-----BEGIN CERTIFICATE-----" not in pem:
            raise InvalidInput(
                "Only a certificate can be exported.",
                "Generate or load the certificate first; a private key never leaves its file.",
            )
        return await asyncio.to_thread(write_public_file, path, pem)

    async def read_example_source(self, path: str) -> bytes:
        """The content of an example source file (``~`` expanded), read on a worker thread.

        At most 10 MB (``core.files.MAX_EXAMPLE_BYTES``), a regular file only; every refusal is
        an :class:`InvalidInput` saying what to do.
        """
        return await asyncio.to_thread(read_example_file, path)

    # -- the engine in a user interface's own process ----------------------------------------

    async def start_engine(self) -> Engine | None:
        """Run the engine in this process (the TUI does, so one window is a whole gateway).

        None when another process already runs the engine of this data directory: this process
        is then its client, and :meth:`engine_status` names it. The engine is imported here so
        that opening the page does not pay for it, and in a thread: the first import loads
        asyncssh and the crypto libraries (a quarter of a second of disk reads).
        """
        await asyncio.to_thread(importlib.import_module, "core.engine.engine")
        from core.engine.engine import Engine, EngineBusy

        engine = Engine(self.config)
        try:
            await engine.start()
        except EngineBusy:
            return None
        return engine

    # == BEGIN AS2 from the command line (docbridge as2 certificate / send) ==================
    # Methods for core.cli_as2; the units of work they run are static methods of this block.

    AS2_SEND_FOLDER = ".as2-send"
    """Per mailbox root: the files ``send_as2_file`` queued, until their MDN acknowledged them."""

    async def as2_certificate(self, mailbox_uuid: str) -> As2Identity:
        """Our self certificate for the mailbox's AS2 partner, as stored; never generates one.

        The identity is made by the first Save with AS2: without it this is an
        :class:`InvalidInput` saying to choose AS2 and Save.
        """
        return await self.db.read(Service._as2_identity_or_error, mailbox_uuid)

    async def send_as2_file(self, mailbox_uuid: str, path: str) -> str:
        """Queue the file at ``path`` (``~`` expanded) for the mailbox's AS2 partner now and
        return the new message's Message-ID; the engine sends it (see :meth:`as2_messages`).

        Refused, with nothing queued or left behind, when the mailbox is not set up for AS2, its
        integration is off (nothing is sent while it is off), or the file is missing, not a
        regular file, unreadable or larger than ``as2.max_body_size``. The file is copied
        durably into ``<mailbox root>/.as2-send/<token>/`` (a dot name: never visible over SFTP)
        before the job is committed; the sender deletes it once the partner's MDN acknowledged
        it (a failed message keeps it, so that reprocessing it can send it again).
        """
        from core.engine.as2_queue import SOURCE_FILE, message_domain

        await self.db.read(Service._check_as2_sending, mailbox_uuid)
        name, data = await asyncio.to_thread(
            Service._read_as2_send_file, path, self.config.as2.max_body_size
        )
        token = secrets.token_hex(8)
        relative = f"{Service.AS2_SEND_FOLDER}/{token}/{name}"
        try:
            await asyncio.to_thread(
                Service._write_as2_send_file,
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
                Service._queue_as2_file,
                self.actor,
                mailbox_uuid,
                f"send:{token}",
                name,
                source,
                message_domain(self.config),
            )
        except Exception:  # not on a cancellation: the job may have been committed
            await asyncio.to_thread(
                Service._remove_as2_send_file, self.config.mailboxes_dir, mailbox_uuid, token, name
            )
            raise

    async def start_as2_engine(self) -> Engine | None:
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
        mailbox = _require_mailbox(tx, mailbox_uuid)
        identity = integrations.get_as2_identity(tx, mailbox_uuid)
        if identity is None:
            raise InvalidInput(
                f"{mailbox.name} has no AS2 certificate yet.",
                "It is generated on the first Save with AS2: choose AS2 on the mailbox's "
                "Integrations page (or 'docbridge integration set MAILBOX --protocol as2 ...') "
                "and Save.",
            )
        return identity

    @staticmethod
    def _check_as2_sending(tx: Tx, mailbox_uuid: str) -> None:
        """Raise :class:`InvalidInput` unless a message queued now for the mailbox is sent."""
        mailbox = _require_mailbox(tx, mailbox_uuid)
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

        Service._check_as2_sending(tx, mailbox_uuid)  # again: it may have changed meanwhile
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
        base = root / Service.AS2_SEND_FOLDER
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

        folder = mailboxes_dir / mailbox_uuid / Service.AS2_SEND_FOLDER / token
        with contextlib.suppress(OSError):
            (folder / name).unlink()
            folder.rmdir()

    # == END AS2 from the command line =========================================================


# -- units of work: each runs in one transaction (Database.write or read) or alone (call) ------


def _get_integration(tx: Tx, mailbox_uuid: str) -> Integration:
    mailbox = _require_mailbox(tx, mailbox_uuid)
    return _with_prefilled_self_id(integrations.get_integration(tx, mailbox_uuid), mailbox)


def _save_integration(
    tx: Tx, actor: str, mailbox_uuid: str, form: IntegrationForm, password_hash: str | None
) -> tuple[Integration, bool]:
    """The whole form, audited; the generated password's hash too, unless another process
    set a password meanwhile (never replaced silently). Returns the integration and whether
    the password was stored."""
    # Compared with what the page showed: a pre-filled Self ID the user kept is no change of
    # theirs, though it is stored for the first time now.
    before = _get_integration(tx, mailbox_uuid)
    integrations.save_form(tx, mailbox_uuid, form)
    details: dict[str, object] = {"changed": changed_fields(before.form, form)}
    stored_password = password_hash is not None and not before.password_set
    if stored_password and password_hash is not None:
        integrations.set_password_hash(tx, mailbox_uuid, password_hash)
        details["password"] = "generated"
    logs.append_audit(tx, actor, "integration.saved", mailbox_uuid, details)
    return integrations.get_integration(tx, mailbox_uuid), stored_password


def _set_enabled(tx: Tx, actor: str, mailbox_uuid: str, enabled: bool) -> Integration:
    _require_mailbox(tx, mailbox_uuid)
    if integrations.set_enabled(tx, mailbox_uuid, enabled):
        action = "integration.enabled" if enabled else "integration.disabled"
        logs.append_audit(tx, actor, action, mailbox_uuid)
    return integrations.get_integration(tx, mailbox_uuid)


def _reset_password(tx: Tx, actor: str, mailbox_uuid: str, password_hash: str) -> None:
    integrations.set_password_hash(tx, mailbox_uuid, password_hash)
    logs.append_audit(tx, actor, "password.reset", mailbox_uuid)


def _store_as2_identity(tx: Tx, actor: str, identity: As2Identity) -> bool:
    """Store a generated identity, audited; False when another process stored one first."""
    if not integrations.insert_as2_identity(tx, identity):
        return False
    logs.append_audit(
        tx,
        actor,
        "as2.identity_generated",
        identity.mailbox_uuid,
        {"fingerprint_sha256": identity.fingerprint_sha256},
    )
    return True


def _renew_as2_identity(tx: Tx, actor: str, identity: As2Identity) -> None:
    old = integrations.replace_as2_identity(tx, identity)
    details = {"fingerprint_sha256": identity.fingerprint_sha256}
    if old is not None:
        details["retired_fingerprint_sha256"] = old.fingerprint_sha256
    logs.append_audit(tx, actor, "as2.identity_renewed", identity.mailbox_uuid, details)


def _create_rule(
    tx: Tx, actor: str, mailbox_uuid: str, rule_uuid: str, form: RuleForm
) -> ConversionRule:
    _require_mailbox(tx, mailbox_uuid)
    _check_rule(tx, mailbox_uuid, form, except_uuid=None)
    rules.insert_rule(tx, rule_uuid, mailbox_uuid, form)
    logs.append_audit(tx, actor, "rule.created", mailbox_uuid, {"rule": rule_uuid})
    return _require_rule(tx, rule_uuid)


def _update_rule(tx: Tx, actor: str, rule_uuid: str, form: RuleForm) -> ConversionRule:
    rule = _require_rule(tx, rule_uuid)
    _check_rule(tx, rule.mailbox_uuid, form, except_uuid=rule_uuid)
    rules.update_rule(tx, rule_uuid, form)
    logs.append_audit(tx, actor, "rule.updated", rule.mailbox_uuid, {"rule": rule_uuid})
    return _require_rule(tx, rule_uuid)


def _set_rule_enabled(tx: Tx, actor: str, rule_uuid: str, enabled: bool) -> ConversionRule:
    rule = _require_rule(tx, rule_uuid)
    if rule.enabled != enabled:
        rules.set_rule_enabled(tx, rule_uuid, enabled)
        action = "rule.enabled" if enabled else "rule.disabled"
        logs.append_audit(tx, actor, action, rule.mailbox_uuid, {"rule": rule_uuid})
    return _require_rule(tx, rule_uuid)


def _clone_rule(tx: Tx, rule_uuid: str) -> RuleForm:
    rule = _require_rule(tx, rule_uuid)
    taken = {r.name for r in rules.list_rules(tx, rule.mailbox_uuid)}
    return replace(rule.form, name=clone_name(rule.name, taken), enabled=False)


def _delete_rule(tx: Tx, actor: str, rule_uuid: str) -> None:
    rule = _require_rule(tx, rule_uuid)
    rules.delete_rule(tx, rule)
    details = {"rule": rule_uuid, "name": rule.name}
    logs.append_audit(tx, actor, "rule.deleted", rule.mailbox_uuid, details)


def _move_rule(tx: Tx, actor: str, rule_uuid: str, offset: int) -> ConversionRule:
    rule = _require_rule(tx, rule_uuid)
    neighbour = rules.rule_at(tx, rule.mailbox_uuid, rule.position + offset)
    if neighbour is not None:
        rules.swap_positions(tx, rule, neighbour)
        details = {"rule": rule_uuid, "position": neighbour.position}
        logs.append_audit(tx, actor, "rule.moved", rule.mailbox_uuid, details)
    return _require_rule(tx, rule_uuid)


def _receive_envelope(
    tx: Tx, mailbox_uuid: str, envelope_uuid: str, parsed: EnvelopeXml, data: bytes
) -> Envelope:
    """Check and store an incoming envelope, and queue its job in the same transaction: an
    acknowledged envelope is never forgotten."""
    from core.envelope_checks import (
        check_envelope_against_template,
        check_recipient_is,
        stored_xml,
    )

    mailbox = _require_mailbox(tx, mailbox_uuid)
    check_recipient_is(parsed, mailbox.uuid, mailbox.name)
    check_envelope_against_template(tx, parsed)
    existing = envelopes.get_envelope(tx, envelope_uuid)
    if existing is not None:
        raise InvalidInput(
            f"Envelope {envelope_uuid} was already received "
            f"(mailbox {existing.mailbox_uuid}, status {existing.display_status}).",
            "Each envelope is received once; give a new envelope a new uuid.",
        )
    envelope = Envelope(
        uuid=envelope_uuid,
        mailbox_uuid=mailbox.uuid,
        direction=EnvelopeDirection.INCOMING,
        template_uuid=parsed.template_uuid,
        template_version=parsed.template_version,
        subject=parsed.subject,
        sender_mailbox=_sender_of(parsed, mailbox),
        recipient_mailbox=mailbox.uuid,
        status=EnvelopeStatus.WAITING,
        received_at=utc_now(),
    )
    documents = parsed.to_dict()["documents"]
    sequence = envelopes.insert_envelope(tx, envelope, stored_xml(data, parsed), documents)
    jobs.enqueue(tx, JobKind.ENVELOPE, envelope_uuid, mailbox.uuid)
    return replace(envelope, sequence=sequence)


def _envelope_page(
    tx: Tx, mailbox_uuid: str | None, status: EnvelopeStatus | None, limit: int, offset: int
) -> EnvelopePage:
    total = envelopes.count_envelopes(tx, mailbox_uuid, status)
    items = envelopes.list_envelopes(tx, mailbox_uuid, status, limit, offset, newest_first=True)
    return EnvelopePage(total=total, limit=limit, offset=offset, items=tuple(items))


def _reprocess(tx: Tx, actor: str, job_ids: list[int]) -> int:
    count = jobs.reprocess(tx, job_ids)
    as2_messages.retry_outgoing(tx, job_ids)  # a parked AS2 message is sent again
    logs.append_audit(tx, actor, "queue.reprocess", None, {"jobs": job_ids})
    return count


def _unban(tx: Tx, actor: str, address: str) -> bool:
    lifted = bans.delete_ban(tx, address)
    if lifted:
        logs.append_audit(tx, actor, "sftp.unban", None, {"address": address})
    return lifted


def _require_mailbox(tx: Tx, mailbox_uuid: str) -> Mailbox:
    mailbox = accounts.get_mailbox(tx, mailbox_uuid)
    if mailbox is None:
        raise NotFound(f"No mailbox {mailbox_uuid}.", "Run 'docbridge mailbox list' to see them.")
    return mailbox


def _resolve_mailbox(tx: Tx, reference: str) -> Mailbox:
    mailbox = accounts.get_mailbox(tx, reference.strip().lower())
    if mailbox is not None:
        return mailbox
    matches = accounts.find_mailboxes_by_name(tx, reference.strip())
    if len(matches) == 1:
        return matches[0]
    if matches:
        uuids = ", ".join(m.uuid for m in matches)
        raise InvalidInput(
            f"Several mailboxes are named '{reference}'.", f"Use one of their uuids: {uuids}."
        )
    raise NotFound(
        f"No mailbox with uuid or name '{reference}'.", "Run 'docbridge mailbox list' to see them."
    )


def _require_rule(tx: Tx, rule_uuid: str) -> ConversionRule:
    rule = rules.get_rule(tx, rule_uuid)
    if rule is None:
        raise NotFound(f"No conversion rule {rule_uuid}.", "It may have been deleted meanwhile.")
    return rule


def _check_rule(tx: Tx, mailbox_uuid: str, form: RuleForm, except_uuid: str | None) -> None:
    template = accounts.get_template(tx, form.template_uuid) if form.template_uuid else None
    mailbox = _require_mailbox(tx, mailbox_uuid)
    if template is not None and template.account_uuid != mailbox.account_uuid:
        template = None
    errors = validate_rule_form(form, template)
    if "name" not in errors and rules.name_taken(tx, mailbox_uuid, form.name.strip(), except_uuid):
        errors["name"] = f"This mailbox already has a rule named '{form.name.strip()}'."
    if errors:
        raise FieldErrors(errors)


def _with_prefilled_self_id(integration: Integration, mailbox: Mailbox) -> Integration:
    """Self ID starts as the mailbox name (made a valid AS2 ID) until the user changes it."""
    if integration.form.as2.self_id:
        return integration
    as2 = replace(integration.form.as2, self_id=as2_id_from_name(mailbox.name))
    return replace(integration, form=replace(integration.form, as2=as2))


def _sender_of(parsed: EnvelopeXml, mailbox: Mailbox) -> str:
    """The sending mailbox: the ``sender`` role, else the first role that is not the mailbox."""
    from core.envelope_checks import SENDER_ROLE

    sender = parsed.role_mailbox(SENDER_ROLE)
    if sender is not None:
        return sender
    others = [role.mailbox_uuid for role in parsed.roles if role.mailbox_uuid != mailbox.uuid]
    return others[0] if others else ""
