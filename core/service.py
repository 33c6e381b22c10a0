"""The service API: the only way the TUI and the CLI read or change anything.

Every method is async and keeps the event loop free: SQLite runs on the database thread, argon2
and key generation on worker threads. Each change is one transaction together with its audit
entry, so a change is either complete and audited or absent.
"""

from __future__ import annotations

import asyncio
import getpass
import importlib
import uuid as uuid_module
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from core import intake
from core.as2_desk import As2Desk
from core.config import Config, load_config
from core.conversion_desk import ConversionDesk
from core.errors import ChangedElsewhere, DocbridgeError, FieldErrors, InvalidInput, NotFound
from core.files import read_example_file, write_public_file
from core.integration import changed_fields, validate_integration_form
from core.models import (
    Account,
    ActivityRecord,
    ActivityView,
    As2Identity,
    AuditEntry,
    Ban,
    CertificateInfo,
    ConversionRule,
    EngineStatus,
    Envelope,
    EnvelopeStatus,
    Integration,
    IntegrationForm,
    Job,
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
    secrets,
)
from core.storage.connection import Tx
from core.storage.engine_state import read_engine_status
from core.storage.store import Store, open_store
from core.validation import as2_id_from_name

if TYPE_CHECKING:
    from core.engine.engine import Engine


# Heavy libraries (cryptography, lxml) load on first use: opening the page needs neither.


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
        self.db: Store = open_store(config.database_path, config.store_url)
        self._host_fingerprint: str | None = None
        # Run, examples, rules as JSON, the conversion log and its reprocess.
        self.conversions = ConversionDesk(self.db, config, actor)
        self.as2 = As2Desk(self.db, config, actor)

    @classmethod
    async def open(cls, data_dir: Path, actor: str) -> Service:
        """Open an initialised data directory (``docbridge init`` makes one)."""
        config = await asyncio.to_thread(load_config, data_dir)
        if not config.store_url and not await asyncio.to_thread(config.database_path.exists):
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
        return await self.db.call(intake.resolve_mailbox, reference)

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
            mailbox = intake.require_mailbox(tx, mailbox_uuid)
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
        if self._host_fingerprint is None and self.config.store_url:
            from core.engine.cluster_keys import HOST_KEY_SECRET, stored_fingerprint

            stored = await self.db.read(secrets.get_secret, HOST_KEY_SECRET)
            self._host_fingerprint = stored_fingerprint(stored)
        elif self._host_fingerprint is None:
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

    async def save_integration(
        self, mailbox_uuid: str, form: IntegrationForm, based_on: IntegrationForm | None = None
    ) -> SaveResult:
        """Validate every field, then persist the whole form at once (or nothing).

        The first Save of an SFTP integration generates its password, returned here in clear
        once and stored only as an argon2id hash. ``based_on``: the settings the form was
        loaded with; if the stored ones differ now (the CLI or another window saved), nothing
        is saved and :class:`ChangedElsewhere` says so, instead of undoing that change.
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
            _save_integration, self.actor, mailbox_uuid, form, password_hash, based_on
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
        return await self.as2.ensure_identity(mailbox_uuid)

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
        return await self.db.write_grouped(
            intake.receive_envelope, mailbox_uuid, envelope_uuid, parsed, data
        )

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


# -- units of work: each runs in one transaction (Database.write or read) or alone (call) ------


def _get_integration(tx: Tx, mailbox_uuid: str) -> Integration:
    mailbox = intake.require_mailbox(tx, mailbox_uuid)
    return _with_prefilled_self_id(integrations.get_integration(tx, mailbox_uuid), mailbox)


def _save_integration(
    tx: Tx,
    actor: str,
    mailbox_uuid: str,
    form: IntegrationForm,
    password_hash: str | None,
    based_on: IntegrationForm | None = None,
) -> tuple[Integration, bool]:
    """The whole form, audited; the generated password's hash too, unless another process
    set a password meanwhile (never replaced silently). Returns the integration and whether
    the password was stored."""
    # Compared with what the page showed: a pre-filled Self ID the user kept is no change of
    # theirs, though it is stored for the first time now.
    before = _get_integration(tx, mailbox_uuid)
    if based_on is not None and before.form != based_on:
        raise ChangedElsewhere(
            "These settings were changed elsewhere (the command line or another window) "
            "since this page loaded them; nothing was saved, so that change is not undone.",
            f"Changed: {', '.join(changed_fields(based_on, before.form))}. Reload the page "
            "(switch to the mailbox again) and redo your edits.",
        )
    integrations.save_form(tx, mailbox_uuid, form)
    details: dict[str, object] = {"changed": changed_fields(before.form, form)}
    stored_password = password_hash is not None and not before.password_set
    if stored_password and password_hash is not None:
        integrations.set_password_hash(tx, mailbox_uuid, password_hash)
        details["password"] = "generated"
    logs.append_audit(tx, actor, "integration.saved", mailbox_uuid, details)
    return integrations.get_integration(tx, mailbox_uuid), stored_password


def _set_enabled(tx: Tx, actor: str, mailbox_uuid: str, enabled: bool) -> Integration:
    intake.require_mailbox(tx, mailbox_uuid)
    if integrations.set_enabled(tx, mailbox_uuid, enabled):
        action = "integration.enabled" if enabled else "integration.disabled"
        logs.append_audit(tx, actor, action, mailbox_uuid)
    return integrations.get_integration(tx, mailbox_uuid)


def _reset_password(tx: Tx, actor: str, mailbox_uuid: str, password_hash: str) -> None:
    integrations.set_password_hash(tx, mailbox_uuid, password_hash)
    logs.append_audit(tx, actor, "password.reset", mailbox_uuid)


def _create_rule(
    tx: Tx, actor: str, mailbox_uuid: str, rule_uuid: str, form: RuleForm
) -> ConversionRule:
    intake.require_mailbox(tx, mailbox_uuid)
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


def _require_rule(tx: Tx, rule_uuid: str) -> ConversionRule:
    rule = rules.get_rule(tx, rule_uuid)
    if rule is None:
        raise NotFound(f"No conversion rule {rule_uuid}.", "It may have been deleted meanwhile.")
    return rule


def _check_rule(tx: Tx, mailbox_uuid: str, form: RuleForm, except_uuid: str | None) -> None:
    template = accounts.get_template(tx, form.template_uuid) if form.template_uuid else None
    mailbox = intake.require_mailbox(tx, mailbox_uuid)
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
