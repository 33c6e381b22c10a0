"""The domain: what an account, a mailbox's integration, a rule and an envelope are.

Plain frozen dataclasses and enums, free of storage and screen concerns, so every layer can
pass them around and tests can build them directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class TransferProtocol(StrEnum):
    SFTP = "sftp"
    AS2 = "as2"


class DefaultRule(StrEnum):
    """What happens to an incoming envelope that no enabled conversion rule matches."""

    COPY = "copy"
    NOTIFY = "notify"
    REJECT = "reject"

    @property
    def label(self) -> str:
        return DEFAULT_RULE_LABELS[self]


DEFAULT_RULE_LABELS = {
    DefaultRule.COPY: "Get incoming envelope on the platform and put a copy to the remote server",
    DefaultRule.NOTIFY: "Get incoming envelope on the platform and send notification email",
    DefaultRule.REJECT: "Autoreject incoming envelopes",
}


class Direction(StrEnum):
    IN = "IN"  # In (My incoming envelopes): envelope -> customer file
    OUT = "OUT"  # Out (Envelopes I sent): customer file -> envelope


class EnvelopeDirection(StrEnum):
    INCOMING = "incoming"
    OUTGOING = "outgoing"


class EnvelopeStatus(StrEnum):
    WAITING = "WAITING"
    SENT = "SENT"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    DRAFT = "DRAFT"


class MatchTarget(StrEnum):
    NAME = "name"
    CONTENT = "content"


class MdnMode(StrEnum):
    SYNC = "sync"
    ASYNC = "async"
    NONE = "none"


ENCRYPTION_ALGORITHMS = (
    "aes_256_cbc",
    "aes_192_cbc",
    "aes_128_cbc",
    "tripledes_192_cbc",
    "none",
)
SIGNING_ALGORITHMS = ("sha256", "sha384", "sha512", "sha224", "sha1", "none")


@dataclass(frozen=True)
class Account:
    uuid: str
    name: str


@dataclass(frozen=True)
class Mailbox:
    uuid: str
    account_uuid: str
    name: str


@dataclass(frozen=True)
class TemplateVersion:
    template_uuid: str
    version: int
    documents: tuple[dict[str, Any], ...]

    def field_names(self, document_id: str) -> set[str]:
        """Plain field names of one document (fields inside groups not included)."""
        for document in self.documents:
            if document["id"] == document_id:
                return {f["name"] for f in document.get("fields", [])}
        return set()

    def group_field_names(self, document_id: str, group: str) -> set[str]:
        for document in self.documents:
            if document["id"] == document_id:
                for fieldgroup in document.get("fieldgroups", []):
                    if fieldgroup["name"] == group:
                        return {f["name"] for f in fieldgroup.get("fields", [])}
        return set()


@dataclass(frozen=True)
class Template:
    uuid: str
    account_uuid: str
    name: str
    versions: tuple[int, ...]

    @property
    def latest_version(self) -> int:
        return max(self.versions)


@dataclass(frozen=True)
class As2Settings:
    """The AS2 fields a user types in; our own URL and certificate are generated."""

    self_id: str = ""
    partner_url: str = ""
    partner_certificate: str = ""  # PEM text
    partner_id: str = ""
    partner_email: str = ""
    encryption: str = "aes_256_cbc"
    signing: str = "sha256"
    mdn_mode: MdnMode = MdnMode.SYNC
    mdn_signed: bool = True
    compression: bool = False
    # For an https Recipient URL whose certificate the system CAs do not vouch for (often
    # self-signed): the partner's TLS certificate (PEM), trusted for that URL alone.
    partner_tls_certificate: str = ""


@dataclass(frozen=True)
class IntegrationForm:
    """Everything Save persists at once (the toggle is separate: it acts immediately)."""

    protocol: TransferProtocol = TransferProtocol.SFTP
    notify_email: str = ""
    default_rule: DefaultRule = DefaultRule.COPY
    reject_reason: str = ""
    as2: As2Settings = field(default_factory=As2Settings)


@dataclass(frozen=True)
class Integration:
    mailbox_uuid: str
    enabled: bool
    form: IntegrationForm
    saved: bool  # False until the first Save: the form shows defaults
    password_set: bool
    password_changed_at: str | None
    updated_at: str | None


@dataclass(frozen=True)
class As2Identity:
    """Our side of a mailbox's AS2 link: generated key pair and self-signed certificate."""

    mailbox_uuid: str
    certificate_pem: str
    key_path: str
    subject: str
    fingerprint_sha256: str
    not_after: str


@dataclass(frozen=True)
class SftpDetails:
    host: str
    port: int
    login: str
    password_set: bool
    host_key_fingerprint: str | None = None  # None until the engine first started


@dataclass(frozen=True)
class RuleForm:
    """The editable fields of a conversion rule (SPEC §7)."""

    name: str
    direction: Direction
    template_uuid: str
    template_version: int | None = None  # None: always the latest version
    enabled: bool = False
    match_pattern: str = ""
    match_target: MatchTarget = MatchTarget.NAME
    naming_pattern: str = ""
    conversion_map: str = ""
    example_source_name: str = ""
    example_source: bytes = b""
    multiple_envelopes: bool = False


@dataclass(frozen=True)
class ConversionRule:
    uuid: str
    mailbox_uuid: str
    position: int
    form: RuleForm
    success_count: int
    failure_count: int
    created_at: str
    updated_at: str

    @property
    def name(self) -> str:
        return self.form.name

    @property
    def enabled(self) -> bool:
        return self.form.enabled


@dataclass(frozen=True)
class Envelope:
    uuid: str
    mailbox_uuid: str
    direction: EnvelopeDirection
    template_uuid: str
    template_version: int
    subject: str
    sender_mailbox: str
    recipient_mailbox: str
    status: EnvelopeStatus
    received_at: str
    sent_at: str | None = None
    reject_reason: str | None = None
    rejected_by: str | None = None
    sequence: int = 0

    @property
    def display_status(self) -> str:
        if self.status is EnvelopeStatus.CANCELLED and self.reject_reason:
            return "Rejected"
        return self.status.value


@dataclass(frozen=True)
class EnvelopeDelivery:
    """An incoming envelope with what its default rule's effect needs: the XML to copy, and
    the names a notification mail shows (None: the template or sender is not known here)."""

    envelope: Envelope
    xml: str
    mailbox_name: str
    template_name: str | None
    sender_name: str | None
    account_uuid: str = ""


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    mailbox_uuid: str | None
    action: str
    details: dict[str, Any]


@dataclass(frozen=True)
class ActivityRecord:
    id: int
    at: str
    mailbox_uuid: str
    rule: str  # rule uuid or "default:<rule>"
    envelope_uuid: str | None
    file_name: str | None
    status: str
    error: str | None


@dataclass(frozen=True)
class PageState:
    """What the Integrations page shows for one mailbox."""

    account: Account
    mailboxes: tuple[Mailbox, ...]
    mailbox: Mailbox
    integration: Integration
    sftp: SftpDetails
    as2_self_url: str
    as2_identity: As2Identity | None
    rules: tuple[ConversionRule, ...]
    templates: tuple[Template, ...]


@dataclass(frozen=True)
class EngineStatus:
    """Whether an engine holds this data directory's lease, and where."""

    running: bool
    owner: str | None = None
    pid: int | None = None
    host: str | None = None
    started_at: str | None = None
    heartbeat_at: str | None = None
    listeners: dict[str, str] = field(default_factory=dict)
    sessions: tuple[dict[str, str], ...] = ()  # connected SFTP sessions: mailbox, address, since
    queue_depth: int = 0
    parked: int = 0
    # Every node that ran on this store: name, running (False: gone), pid, host, started_at,
    # heartbeat_at, listeners. One on a single host; several on a shared PostgreSQL store.
    nodes: tuple[dict[str, object], ...] = ()


@dataclass(frozen=True)
class Ban:
    address: str
    failures: int
    banned_at: str
    banned_until: float  # unix time


# -- activity: states a person reads, derived in the core (core/activity.py) -----------------


class JobState(StrEnum):
    """A queue row's state as stored."""

    READY = "ready"
    RUNNING = "running"
    DONE = "done"
    PARKED = "parked"


class JobKind(StrEnum):
    """What a queued job does; also what the engine is woken for (``Engine.wake``)."""

    ENVELOPE = "envelope"  # an incoming envelope: the default rule's effect
    FILE = "file"  # a customer file claimed from outbox/ or coutbox/
    MAIL = "mail"  # a notification mail
    AS2_SEND = "as2_send"  # an AS2 message to the partner, until its MDN is checked
    AS2_MDN = "as2_mdn"  # an asynchronous MDN we owe a partner


@dataclass(frozen=True)
class Job:
    """One row of the durable queue: as the engine claims it (with its payload) and as the
    Activity screen shows it (listings leave the payload empty)."""

    id: int
    kind: JobKind
    ref: str
    mailbox_uuid: str
    state: JobState
    attempts: int
    next_attempt_at: float = 0.0  # unix time
    last_error: str | None = None
    updated_at: str | None = None
    max_attempts: int | None = None  # the retry policy that last failed it; None: never failed
    payload: dict[str, Any] = field(default_factory=dict)


class ItemState(StrEnum):
    """What an item of work is doing now."""

    QUEUED = "queued"  # waiting for its first try (or reprocessed)
    RUNNING = "running"
    RETRYING = "retrying"  # failed, another try is scheduled
    PARKED = "parked"  # failed too often: waits for a person to reprocess it
    DONE = "done"


class AttemptOutcome(StrEnum):
    """How one processing attempt ended (one line of the activity log)."""

    DELIVERED = "delivered"
    NOTIFIED = "notified"
    REJECTED = "rejected"
    SENT = "sent"
    QUEUED = "queued"  # handed to the AS2 sender; "sent" follows with the partner's MDN
    RECEIVED = "received"  # an AS2 message taken in (its payload follows the OUT path)
    REFUSED = "refused"  # an AS2 message answered with an error (nothing stored)
    DUPLICATE = "duplicate"  # an AS2 message received before: answered with its first MDN
    MAILED = "mailed"
    RETRYING = "retrying"  # failed; the next try is scheduled
    FAILED = "failed"  # failed; later tries followed, or the file went to error/
    PARKED = "parked"  # failed for the last time
    GONE = "gone"
    OTHER = "other"


@dataclass(frozen=True)
class ItemView:
    """A job that needs attention: retrying, running again after a failure, or parked."""

    job: Job
    state: ItemState
    mailbox_name: str
    due_in_s: float | None  # retrying: seconds until the next try (0: due now)
    label: str  # "retrying 3/8 in 40 s", "parked after 8/8"


@dataclass(frozen=True)
class AttemptView:
    record: ActivityRecord
    outcome: AttemptOutcome
    mailbox_name: str
    job_id: int | None
    attempt: int | None  # 1-based; None when it cannot be told (reprocessed since)
    max_attempts: int | None
    label: str  # "retrying 1/8 in 2 s", "failed 2/8", "delivered"


@dataclass(frozen=True)
class BanView:
    ban: Ban
    remaining_s: float
    label: str  # time left: "10 min"


@dataclass(frozen=True)
class ActivityView:
    """One consistent read of everything the Activity screen and ``docbridge activity`` show."""

    now: float  # unix time of the read (core.clock.unix_now: pinned in snapshots)
    status: EngineStatus
    items: tuple[ItemView, ...]
    attempts: tuple[AttemptView, ...]
    bans: tuple[BanView, ...]
    mailbox_names: dict[str, str]
    as2_messages: tuple[As2Message, ...] = ()  # newest first, in and out, with their MDNs


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What a user needs to recognise a certificate and to know until when it can be used."""

    subject: str
    """RFC 4514 string, e.g. ``CN=acme AS2,O=ACME``."""
    fingerprint_sha256: str
    """Upper-case hex with colons, the form partners read out to each other to compare."""
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class CertificateExpiry:
    """How long a certificate stays usable, and the warning threshold (30/14/7/1 days) it
    reached, if any."""

    not_after: datetime
    days_left: int
    expired: bool
    threshold: int | None


@dataclass(frozen=True)
class CertificateWarning:
    """An AS2 certificate (ours or the partner's) at or past a warning threshold."""

    mailbox_uuid: str
    mailbox_name: str
    which: str  # "self" or "partner"
    fingerprint: str
    notify_email: str
    expiry: CertificateExpiry


class ConversionStatus(StrEnum):
    """How one conversion attempt ended (the conversion log, SPEC §6)."""

    PROCESSED = "PROCESSED"
    REPROCESSED = "REPROCESSED"  # a reprocess of an earlier record succeeded
    FAILED = "FAILED"


@dataclass(frozen=True)
class ConversionRecord:
    """One attempt to convert: an envelope into a file (IN) or a file into envelopes (OUT).

    ``rule_uuid`` is None when no rule matched (the default rule took the envelope, or the
    file went to error/); ``rule_name`` is kept as it was, so a renamed or deleted rule's
    records still read right.
    """

    id: int
    at: str
    mailbox_uuid: str
    direction: Direction
    rule_uuid: str | None
    rule_name: str
    envelope_uuid: str
    file_name: str
    subject: str
    status: ConversionStatus
    error: str
    input_size: int | None = None  # None: nothing kept
    output_size: int | None = None


@dataclass(frozen=True)
class ConversionFilter:
    mailbox_uuid: str | None = None
    rule_uuid: str | None = None
    no_rule: bool = False  # only attempts no rule took (default rule, or error/)
    status: ConversionStatus | None = None
    keyword: str = ""  # in the file name, subject, envelope uuid or rule name
    limit: int = 200
    offset: int = 0


@dataclass(frozen=True)
class ConversionPayload:
    """What a conversion read and wrote, as kept (empty when over the keep bound)."""

    input_name: str
    input: bytes
    input_size: int
    output: bytes
    output_size: int


@dataclass(frozen=True)
class RunResult:
    """What a Run of a rule form on its example gave.

    IN: ``text`` is the file's content as text and ``file_name`` what the naming pattern gives.
    OUT: ``envelopes`` holds each envelope's XML and ``text`` all of them; ``source_details``
    says what the example was read as. On failure ``error`` says what and ``line`` where (the
    conversion map's line, when known).
    """

    ok: bool
    direction: Direction
    text: str = ""
    file_name: str = ""
    envelopes: tuple[str, ...] = ()
    error: str = ""
    line: int | None = None
    source_details: str = ""


@dataclass(frozen=True)
class ReprocessResult:
    queued: tuple[int, ...]
    skipped: tuple[tuple[int, str], ...]  # (record id, why it cannot be reprocessed)


class As2Status(StrEnum):
    """Where one AS2 message stands."""

    RECEIVED = "received"  # in: processed, the payload taken in, MDN "processed"
    REFUSED = "refused"  # in: answered with an error MDN (a retry is processed again)
    SENDING = "sending"  # out: queued or retrying
    AWAITING_MDN = "awaiting-mdn"  # out: sent; the asynchronous MDN has not come yet
    DELIVERED = "delivered"  # out: the partner's MDN says processed and the MIC matches
    FAILED = "failed"  # out: parked (error MDN, MIC mismatch, refused, overdue MDN)


@dataclass(frozen=True)
class As2Message:
    """One AS2 message in or out and its MDN, as ``docbridge as2 messages`` lists it."""

    id: int
    direction: str  # "in" or "out"
    mailbox_uuid: str
    partner_id: str
    message_id: str
    created_at: str
    updated_at: str
    status: As2Status
    filename: str
    size: int
    mdn_mode: str
    mdn_disposition: str
    mic_check: str  # "ok", "mismatch", or "" (no MIC to check)
    error: str
    attempts: int
