"""Schema, created and migrated by ``PRAGMA user_version``.

Each migration runs once, inside the same ``BEGIN IMMEDIATE`` transaction that bumps the
version, so two processes starting together never both migrate and a crash never leaves a
half-built schema. Append new migrations; never edit an old one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

TYPE_CHECKING = False  # not typing: the quick commands start without it (core.cli_quick)

if TYPE_CHECKING:
    import sqlite_utils


def _v1_initial(db: sqlite_utils.Database) -> None:
    db.table("accounts").create({"uuid": str, "name": str}, pk="uuid", not_null={"name"})
    db.table("mailboxes").create(
        {"uuid": str, "account_uuid": str, "name": str, "position": int},
        pk="uuid",
        not_null={"account_uuid", "name", "position"},
        foreign_keys=[("account_uuid", "accounts", "uuid")],
    )
    db.table("templates").create(
        {"uuid": str, "account_uuid": str, "name": str},
        pk="uuid",
        not_null={"account_uuid", "name"},
        foreign_keys=[("account_uuid", "accounts", "uuid")],
    )
    db.table("template_versions").create(
        {"template_uuid": str, "version": int, "documents": str},
        pk=("template_uuid", "version"),
        not_null={"documents"},
        foreign_keys=[("template_uuid", "templates", "uuid")],
    )
    db.table("integrations").create(
        {
            "mailbox_uuid": str,
            "enabled": int,
            "saved": int,
            "protocol": str,
            "notify_email": str,
            "default_rule": str,
            "reject_reason": str,
            "as2_self_id": str,
            "as2_partner_url": str,
            "as2_partner_certificate": str,
            "as2_partner_id": str,
            "as2_partner_email": str,
            "as2_encryption": str,
            "as2_signing": str,
            "as2_mdn_mode": str,
            "as2_mdn_signed": int,
            "as2_compression": int,
            "password_hash": str,
            "password_changed_at": str,
            "updated_at": str,
        },
        pk="mailbox_uuid",
        not_null={"enabled", "saved", "protocol", "default_rule"},
        defaults={"enabled": 0, "saved": 0, "protocol": "sftp", "default_rule": "copy"},
        foreign_keys=[("mailbox_uuid", "mailboxes", "uuid")],
    )
    db.table("as2_identities").create(
        {
            "mailbox_uuid": str,
            "certificate_pem": str,
            "key_path": str,
            "subject": str,
            "fingerprint_sha256": str,
            "not_after": str,
            "created_at": str,
        },
        pk="mailbox_uuid",
        not_null={"certificate_pem", "key_path"},
        foreign_keys=[("mailbox_uuid", "mailboxes", "uuid")],
    )
    db.table("rules").create(
        {
            "uuid": str,
            "mailbox_uuid": str,
            "position": int,
            "name": str,
            "enabled": int,
            "direction": str,
            "template_uuid": str,
            "template_version": int,
            "match_pattern": str,
            "match_target": str,
            "naming_pattern": str,
            "conversion_map": str,
            "example_source_name": str,
            "example_source": bytes,
            "multiple_envelopes": int,
            "success_count": int,
            "failure_count": int,
            "created_at": str,
            "updated_at": str,
        },
        pk="uuid",
        not_null={"mailbox_uuid", "position", "name", "enabled", "direction", "template_uuid"},
        defaults={"success_count": 0, "failure_count": 0, "enabled": 0},
        foreign_keys=[
            ("mailbox_uuid", "mailboxes", "uuid"),
            ("template_uuid", "templates", "uuid"),
        ],
    )
    db.table("rules").create_index(["mailbox_uuid", "position"], unique=True)
    db.table("rules").create_index(["mailbox_uuid", "name"], unique=True)
    db.table("envelopes").create(
        {
            "seq": int,
            "uuid": str,
            "mailbox_uuid": str,
            "direction": str,
            "template_uuid": str,
            "template_version": int,
            "subject": str,
            "sender_mailbox": str,
            "recipient_mailbox": str,
            "status": str,
            "xml": str,
            "documents": str,
            "received_at": str,
            "sent_at": str,
            "reject_reason": str,
            "rejected_by": str,
        },
        pk="seq",
        not_null={"uuid", "mailbox_uuid", "direction", "status", "xml", "received_at"},
        foreign_keys=[("mailbox_uuid", "mailboxes", "uuid")],
    )
    db.table("envelopes").create_index(["uuid"], unique=True)
    db.table("envelopes").create_index(["mailbox_uuid", "status", "seq"])
    db.table("audit_log").create(
        {"id": int, "at": str, "actor": str, "mailbox_uuid": str, "action": str, "details": str},
        pk="id",
        not_null={"at", "actor", "action", "details"},
    )
    db.table("audit_log").create_index(["mailbox_uuid", "id"])
    db.table("activity_log").create(
        {
            "id": int,
            "at": str,
            "mailbox_uuid": str,
            "rule": str,
            "envelope_uuid": str,
            "file_name": str,
            "status": str,
            "error": str,
        },
        pk="id",
        not_null={"at", "mailbox_uuid", "rule", "status"},
    )
    db.table("activity_log").create_index(["mailbox_uuid", "id"])


def _v2_engine(db: sqlite_utils.Database) -> None:
    # One engine per data directory: the row is its lease, renewed while it runs.
    db.table("engine_lease").create(
        {
            "id": int,
            "owner": str,
            "pid": int,
            "host": str,
            "started_at": str,
            "heartbeat_at": str,
            "lease_until": float,
            "listeners": str,
            "sessions": str,
        },
        pk="id",
        not_null={"owner", "pid", "host", "started_at", "heartbeat_at", "lease_until"},
    )
    # The durable work queue: envelopes to handle, customer files to take in, mails to send.
    db.table("jobs").create(
        {
            "id": int,
            "kind": str,
            "ref": str,
            "mailbox_uuid": str,
            "state": str,
            "attempts": int,
            "next_attempt_at": float,
            "lease_owner": str,
            "lease_until": float,
            "payload": str,
            "last_error": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"kind", "ref", "mailbox_uuid", "state", "attempts", "next_attempt_at"},
        defaults={"state": "ready", "attempts": 0, "next_attempt_at": 0.0},
    )
    db.table("jobs").create_index(["kind", "ref"], unique=True)
    db.table("jobs").create_index(["state", "kind", "next_attempt_at", "id"])
    db.table("sftp_bans").create(
        {"address": str, "failures": int, "banned_at": str, "banned_until": float},
        pk="address",
        not_null={"failures", "banned_at", "banned_until"},
    )
    # Envelopes that arrived before the queue existed still wait to be handled.
    db.execute(
        "INSERT INTO jobs (kind, ref, mailbox_uuid) SELECT 'envelope', uuid, mailbox_uuid "
        "FROM envelopes WHERE status = 'WAITING' AND direction = 'incoming' ORDER BY seq"
    )


def _v3_job_policy(db: sqlite_utils.Database) -> None:
    # The retry policy's limit at the last failure, so any process can say "retrying 3/8".
    db.execute("ALTER TABLE jobs ADD COLUMN max_attempts INTEGER")


def _v4_conversion_log(db: sqlite_utils.Database) -> None:
    # Every attempt to convert (IN: envelope -> file, OUT: file -> envelopes), with or without
    # a rule; the rules table's counters are kept in step in the same transaction.
    db.table("conversions").create(
        {
            "id": int,
            "at": str,
            "mailbox_uuid": str,
            "direction": str,
            "rule_uuid": str,
            "rule_name": str,
            "envelope_uuid": str,
            "file_name": str,
            "subject": str,
            "status": str,
            "error": str,
            "job_ref": str,
        },
        pk="id",
        not_null={"at", "mailbox_uuid", "direction", "status"},
    )
    db.table("conversions").create_index(["mailbox_uuid", "id"])
    db.table("conversions").create_index(["rule_uuid", "id"])
    # Input and output kept for inspection, apart so that listing the log stays light.
    db.table("conversion_payloads").create(
        {
            "conversion_id": int,
            "input_name": str,
            "input": bytes,
            "input_size": int,
            "output": bytes,
            "output_size": int,
        },
        pk="conversion_id",
        foreign_keys=[("conversion_id", "conversions", "id")],
    )


def _v5_as2_messages(db: sqlite_utils.Database) -> None:
    # Every AS2 message in or out, with its MDN. One row per (mailbox, direction, partner,
    # Message-ID): a partner's retry of a message finds it (duplicates), and so does an MDN.
    db.table("as2_messages").create(
        {
            "id": int,
            "direction": str,
            "mailbox_uuid": str,
            "partner_id": str,
            "message_id": str,
            "created_at": str,
            "updated_at": str,
            "status": str,
            "filename": str,
            "size": int,
            "signed": int,
            "encrypted": int,
            "compressed": int,
            "mic": str,
            "mic_algorithm": str,
            "mdn_mode": str,
            "mdn_url": str,
            "mdn_disposition": str,
            "mic_check": str,
            "mdn_headers": str,
            "mdn_body": bytes,
            "mdn_due": float,
            "error": str,
            "job_ref": str,
            "attempts": int,
        },
        pk="id",
        not_null={"direction", "mailbox_uuid", "partner_id", "message_id", "status"},
        defaults={"attempts": 0},
    )
    db.table("as2_messages").create_index(
        ["mailbox_uuid", "direction", "partner_id", "message_id"], unique=True
    )
    db.table("as2_messages").create_index(["mailbox_uuid", "id"])


def _v6_retired_as2_identities(db: sqlite_utils.Database) -> None:
    # A renewed self certificate: the old key still decrypts (and its certificate is listed)
    # while partners move to the new one.
    db.table("as2_retired_identities").create(
        {
            "id": int,
            "mailbox_uuid": str,
            "certificate_pem": str,
            "key_path": str,
            "subject": str,
            "fingerprint_sha256": str,
            "not_after": str,
            "retired_at": str,
        },
        pk="id",
        not_null={"mailbox_uuid", "certificate_pem", "key_path"},
    )
    db.table("as2_retired_identities").create_index(["mailbox_uuid"])


def _v7_partner_tls_certificate(db: sqlite_utils.Database) -> None:
    db.execute("ALTER TABLE integrations ADD COLUMN as2_partner_tls_certificate TEXT")


def _v8_claim_index(db: sqlite_utils.Database) -> None:
    # The claim walks ready jobs of a kind in id order and stops at its limit, instead of
    # sorting every ready job (0.6 ms flat from 1,000 to 50,000 waiting; sorting took 25 ms).
    db.execute("CREATE INDEX jobs_claim ON jobs (kind, state, id)")


def _v9_nodes(db: sqlite_utils.Database) -> None:
    # The one-engine lease becomes one row per node (docbridge serve --node-name), so that
    # several engines may share a store; the lease itself held nothing worth keeping.
    db.execute("DROP TABLE engine_lease")
    db.execute(NODES_TABLE)


def _v10_secrets(db: sqlite_utils.Database) -> None:
    # Sealed private keys shared by the nodes of a store (core.sealing); on one host the keys
    # stay files in keys/, so this table stays empty there.
    db.execute(SECRETS_TABLE.replace("BYTES", "BLOB"))


SECRETS_TABLE = (
    "CREATE TABLE secrets (name TEXT PRIMARY KEY, algorithm TEXT NOT NULL, "
    "public_part TEXT NOT NULL, private_enc BYTES NOT NULL, nonce BYTES NOT NULL, "
    "key_id TEXT NOT NULL, created_at TEXT NOT NULL)"
)


def _v11_singleton_leases(db: sqlite_utils.Database) -> None:
    # Work that must run once per store, whatever the number of nodes (pruning, certificate
    # expiry mails): the node holding the named lease does it.
    db.execute(SINGLETON_LEASES_TABLE)


SINGLETON_LEASES_TABLE = (
    "CREATE TABLE singleton_leases (name TEXT PRIMARY KEY, node TEXT NOT NULL, "
    "lease_until REAL NOT NULL)"
)


# Shared with the PostgreSQL schema (core/storage/postgres/schema.py), which has the same table.
NODES_TABLE = (
    "CREATE TABLE nodes (name TEXT PRIMARY KEY, owner TEXT NOT NULL, pid INTEGER NOT NULL, "
    "host TEXT NOT NULL, started_at TEXT NOT NULL, heartbeat_at TEXT NOT NULL, "
    "lease_until REAL NOT NULL, listeners TEXT, sessions TEXT)"
)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _v1_initial,
    _v2_engine,
    _v3_job_policy,
    _v4_conversion_log,
    _v5_as2_messages,
    _v6_retired_as2_identities,
    _v7_partner_tls_certificate,
    _v8_claim_index,
    _v9_nodes,
    _v10_secrets,
    _v11_singleton_leases,
]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    """The database's schema version: a read of the file header, no lock taken."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the database to ``SCHEMA_VERSION``; refuse a database from a newer docbridge.

    The usual case, a current schema, costs one header read: no write lock (which would wait
    behind a running engine's commit) and no sqlite-utils. Only a schema that is behind takes
    the lock, and then looks again, since another process may have migrated meanwhile.
    """
    if schema_version(conn) == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)
        if current > SCHEMA_VERSION:
            from core.errors import DocbridgeError

            raise DocbridgeError(
                f"The database has schema version {current}, newer than this docbridge "
                f"({SCHEMA_VERSION}).",
                "Upgrade docbridge before opening this data directory.",
            )
        if current == SCHEMA_VERSION:
            conn.execute("COMMIT")
            return  # migrated by another process meanwhile
        import sqlite_utils

        db = sqlite_utils.Database(conn)
        for version in range(current, SCHEMA_VERSION):
            MIGRATIONS[version](db)
            conn.execute(f"PRAGMA user_version = {version + 1}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
