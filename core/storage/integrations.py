"""Per-mailbox integration settings, SFTP password hash and AS2 identity rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.clock import utc_now
from core.models import (
    As2Identity,
    As2Settings,
    DefaultRule,
    Integration,
    IntegrationForm,
    MdnMode,
    TransferProtocol,
)
from core.storage.connection import Tx, notify_job


def get_integration(conn: Tx, mailbox_uuid: str) -> Integration:
    """The saved integration, or the defaults a fresh page shows (SFTP, default rule 1, off)."""
    row = conn.execute(
        "SELECT * FROM integrations WHERE mailbox_uuid = ?", (mailbox_uuid,)
    ).fetchone()
    if row is None:
        return Integration(
            mailbox_uuid=mailbox_uuid,
            enabled=False,
            form=IntegrationForm(),
            saved=False,
            password_set=False,
            password_changed_at=None,
            updated_at=None,
        )
    defaults = As2Settings()
    as2 = As2Settings(
        self_id=row["as2_self_id"] or "",
        partner_url=row["as2_partner_url"] or "",
        partner_certificate=row["as2_partner_certificate"] or "",
        partner_id=row["as2_partner_id"] or "",
        partner_email=row["as2_partner_email"] or "",
        encryption=row["as2_encryption"] or defaults.encryption,
        signing=row["as2_signing"] or defaults.signing,
        mdn_mode=MdnMode(row["as2_mdn_mode"] or defaults.mdn_mode),
        mdn_signed=bool(row["as2_mdn_signed"]) if row["as2_mdn_signed"] is not None else True,
        compression=bool(row["as2_compression"]),
        partner_tls_certificate=row["as2_partner_tls_certificate"] or "",
    )
    form = IntegrationForm(
        protocol=TransferProtocol(row["protocol"]),
        notify_email=row["notify_email"] or "",
        default_rule=DefaultRule(row["default_rule"]),
        reject_reason=row["reject_reason"] or "",
        as2=as2,
    )
    return Integration(
        mailbox_uuid=mailbox_uuid,
        enabled=bool(row["enabled"]),
        form=form,
        saved=bool(row["saved"]),
        password_set=row["password_hash"] is not None,
        password_changed_at=row["password_changed_at"],
        updated_at=row["updated_at"],
    )


def _ensure_row(conn: Tx, mailbox_uuid: str) -> None:
    conn.execute(
        "INSERT INTO integrations (mailbox_uuid) VALUES (?) ON CONFLICT(mailbox_uuid) DO NOTHING",
        (mailbox_uuid,),
    )


def save_form(conn: Tx, mailbox_uuid: str, form: IntegrationForm) -> None:
    _ensure_row(conn, mailbox_uuid)
    as2 = form.as2
    conn.execute(
        "UPDATE integrations SET saved = 1, protocol = ?, notify_email = ?, default_rule = ?, "
        "reject_reason = ?, as2_self_id = ?, as2_partner_url = ?, as2_partner_certificate = ?, "
        "as2_partner_id = ?, as2_partner_email = ?, as2_encryption = ?, as2_signing = ?, "
        "as2_mdn_mode = ?, as2_mdn_signed = ?, as2_compression = ?, "
        "as2_partner_tls_certificate = ?, updated_at = ? "
        "WHERE mailbox_uuid = ?",
        (
            form.protocol.value,
            form.notify_email,
            form.default_rule.value,
            form.reject_reason,
            as2.self_id,
            as2.partner_url,
            as2.partner_certificate,
            as2.partner_id,
            as2.partner_email,
            as2.encryption,
            as2.signing,
            as2.mdn_mode.value,
            int(as2.mdn_signed),
            int(as2.compression),
            as2.partner_tls_certificate,
            utc_now(),
            mailbox_uuid,
        ),
    )


def set_enabled(conn: Tx, mailbox_uuid: str, enabled: bool) -> bool:
    """Set the toggle; returns whether it changed."""
    _ensure_row(conn, mailbox_uuid)
    cursor = conn.execute(
        "UPDATE integrations SET enabled = ?, updated_at = ? "
        "WHERE mailbox_uuid = ? AND enabled != ?",
        (int(enabled), utc_now(), mailbox_uuid, int(enabled)),
    )
    if enabled and cursor.rowcount:
        notify_job(conn, "")  # its waiting work may be claimed now
    return cursor.rowcount > 0


def set_password_hash(conn: Tx, mailbox_uuid: str, password_hash: str) -> None:
    _ensure_row(conn, mailbox_uuid)
    conn.execute(
        "UPDATE integrations SET password_hash = ?, password_changed_at = ? WHERE mailbox_uuid = ?",
        (password_hash, utc_now(), mailbox_uuid),
    )


def get_password_hash(conn: Tx, mailbox_uuid: str) -> str | None:
    row = conn.execute(
        "SELECT password_hash FROM integrations WHERE mailbox_uuid = ?", (mailbox_uuid,)
    ).fetchone()
    return row["password_hash"] if row else None


def enabled_mailboxes(conn: Tx) -> list[str]:
    """The mailboxes whose integration is on: the folders the engine watches (an AS2
    mailbox's payloads wait there as claims)."""
    rows = conn.execute("SELECT mailbox_uuid FROM integrations WHERE enabled = 1").fetchall()
    return [str(r[0]) for r in rows]


def login_hash(conn: Tx, login: str) -> str | None:
    """The password hash an SFTP login (a mailbox uuid, canonical) is checked against; None
    unless the mailbox's integration is on and SFTP: only such a login may succeed."""
    row = conn.execute(
        "SELECT password_hash FROM integrations WHERE mailbox_uuid = ? AND enabled = 1 "
        "AND protocol = 'sftp'",
        (login,),
    ).fetchone()
    return str(row[0]) if row and row[0] else None


def sftp_session_rules(conn: Tx) -> dict[str, float]:
    """Mailboxes that may keep SFTP sessions (on, SFTP, with a password), each with the unix
    time its password last changed (0: unknown): a session older than that must end."""
    rows = conn.execute(
        "SELECT mailbox_uuid, password_changed_at FROM integrations "
        "WHERE enabled = 1 AND protocol = 'sftp' AND password_hash IS NOT NULL"
    ).fetchall()
    return {str(r[0]): _timestamp(r[1]) for r in rows}


def _timestamp(iso: str | None) -> float:
    if not iso:
        return 0.0
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def get_as2_identity(conn: Tx, mailbox_uuid: str) -> As2Identity | None:
    row = conn.execute(
        "SELECT * FROM as2_identities WHERE mailbox_uuid = ?", (mailbox_uuid,)
    ).fetchone()
    if row is None:
        return None
    return As2Identity(
        mailbox_uuid=mailbox_uuid,
        certificate_pem=row["certificate_pem"],
        key_path=row["key_path"],
        subject=row["subject"],
        fingerprint_sha256=row["fingerprint_sha256"],
        not_after=row["not_after"],
    )


def insert_as2_identity(conn: Tx, identity: As2Identity) -> bool:
    """Store a generated identity unless another process stored one first; True if stored."""
    cursor = conn.execute(
        "INSERT INTO as2_identities (mailbox_uuid, certificate_pem, key_path, subject, "
        "fingerprint_sha256, not_after, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(mailbox_uuid) DO NOTHING",
        (
            identity.mailbox_uuid,
            identity.certificate_pem,
            identity.key_path,
            identity.subject,
            identity.fingerprint_sha256,
            identity.not_after,
            utc_now(),
        ),
    )
    return cursor.rowcount > 0


def replace_as2_identity(conn: Tx, new: As2Identity) -> As2Identity | None:
    """Make ``new`` the mailbox's identity; the one it replaces is kept as retired (its key
    still decrypts) and returned."""
    old = get_as2_identity(conn, new.mailbox_uuid)
    if old is not None:
        conn.execute(
            "INSERT INTO as2_retired_identities (mailbox_uuid, certificate_pem, key_path, "
            "subject, fingerprint_sha256, not_after, retired_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                old.mailbox_uuid,
                old.certificate_pem,
                old.key_path,
                old.subject,
                old.fingerprint_sha256,
                old.not_after,
                utc_now(),
            ),
        )
        conn.execute("DELETE FROM as2_identities WHERE mailbox_uuid = ?", (new.mailbox_uuid,))
    insert_as2_identity(conn, new)
    return old


def retired_as2_identities(conn: Tx, mailbox_uuid: str) -> list[As2Identity]:
    """Earlier identities of the mailbox, newest first (their keys still decrypt)."""
    rows = conn.execute(
        "SELECT * FROM as2_retired_identities WHERE mailbox_uuid = ? ORDER BY id DESC",
        (mailbox_uuid,),
    ).fetchall()
    return [
        As2Identity(
            mailbox_uuid=mailbox_uuid,
            certificate_pem=row["certificate_pem"],
            key_path=row["key_path"],
            subject=row["subject"],
            fingerprint_sha256=row["fingerprint_sha256"],
            not_after=row["not_after"],
        )
        for row in rows
    ]


@dataclass(frozen=True)
class StoredCertificate:
    mailbox_uuid: str
    mailbox_name: str
    which: str  # "self" (ours) or "partner"
    pem: str
    notify_email: str


def as2_certificates(conn: Tx) -> list[StoredCertificate]:
    """The certificates of every saved AS2 integration: ours and the partner's."""
    rows = conn.execute(
        "SELECT i.mailbox_uuid, m.name, i.notify_email, i.as2_partner_certificate, "
        "a.certificate_pem FROM integrations i JOIN mailboxes m ON m.uuid = i.mailbox_uuid "
        "LEFT JOIN as2_identities a ON a.mailbox_uuid = i.mailbox_uuid "
        "WHERE i.protocol = 'as2' ORDER BY m.name"
    ).fetchall()
    found: list[StoredCertificate] = []
    for mailbox_uuid, name, email, partner_pem, self_pem in rows:
        if self_pem:
            found.append(StoredCertificate(mailbox_uuid, name, "self", self_pem, email or ""))
        if partner_pem:
            found.append(StoredCertificate(mailbox_uuid, name, "partner", partner_pem, email or ""))
    return found
