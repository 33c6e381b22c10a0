"""Customer files: envelope XML from ``outbox/`` becomes an outgoing envelope; what cannot be
taken in moves to ``error/`` with ``<name>.error.txt`` saying why.

A file is identified by its name and (inode, size, mtime, ctime): the same upload is taken in
once, even if a crash left it in place after its envelope was recorded; moving it back from
``error/`` changes its ctime, so it counts as a new attempt.
"""

from __future__ import annotations

import os
import sqlite3
import uuid as uuid_module
from dataclasses import dataclass
from pathlib import Path

from core.clock import utc_now
from core.envelope_checks import check_envelope_against_template, stored_xml
from core.envelope_xml import EnvelopeXml, parse_envelope_xml
from core.errors import DocbridgeError
from core.models import Envelope, EnvelopeDirection, EnvelopeStatus
from core.sftp.folders import move_to_error
from core.storage import envelopes, jobs, logs
from core.storage.jobs import Job

CUSTOMER_FOLDERS = ("outbox", "coutbox")
_NAMESPACE = uuid_module.UUID("6f1c3f0e-5d0c-4a53-9a55-0b5c2f1d7e10")


@dataclass(frozen=True)
class SeenFile:
    mailbox_uuid: str
    folder: str
    name: str
    signature: str

    @property
    def ref(self) -> str:
        return f"{self.mailbox_uuid}/{self.folder}/{self.name}@{self.signature}"


def signature_of(path: Path) -> str | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def scan(mailboxes_dir: Path, mailbox_uuid: str) -> list[SeenFile]:
    """Regular files waiting in a mailbox's customer folders (blocking: run in a thread)."""
    seen: list[SeenFile] = []
    for folder in CUSTOMER_FOLDERS:
        directory = mailboxes_dir / mailbox_uuid / folder
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and not entry.name.startswith("."):
                signature = signature_of(Path(entry.path))
                if signature:
                    seen.append(SeenFile(mailbox_uuid, folder, entry.name, signature))
    return seen


def enqueue_seen(conn: sqlite3.Connection, files: list[SeenFile]) -> list[SeenFile]:
    """Queue new files; returns files already taken in (their removal was interrupted)."""
    leftovers: list[SeenFile] = []
    for seen in files:
        payload = {"folder": seen.folder, "name": seen.name, "signature": seen.signature}
        queued = jobs.enqueue(conn, jobs.FILE, seen.ref, seen.mailbox_uuid, payload)
        if not queued and jobs.job_state(conn, jobs.FILE, seen.ref) == "done":
            leftovers.append(seen)
    return leftovers


@dataclass(frozen=True)
class FileWork:
    job: Job
    path: Path
    folder: str
    name: str
    parsed: EnvelopeXml | None = None
    data: bytes = b""
    error: str | None = None  # why it goes to error/
    gone: bool = False  # nothing left to do (moved or already handled)


def read_file(mailboxes_dir: Path, job: Job) -> FileWork:
    """Blocking: check the file is the one queued and parse it."""
    folder, name = str(job.payload["folder"]), str(job.payload["name"])
    path = mailboxes_dir / job.mailbox_uuid / folder / name
    if signature_of(path) != job.payload["signature"]:
        return FileWork(job, path, folder, name, gone=True)
    if folder == "coutbox":
        return FileWork(job, path, folder, name, error="No conversion rule matches this file.")
    data = path.read_bytes()
    try:
        parsed = parse_envelope_xml(data)
    except DocbridgeError as exc:
        return FileWork(job, path, folder, name, error=str(exc))
    return FileWork(job, path, folder, name, parsed=parsed, data=data)


def take_in(conn: sqlite3.Connection, work: FileWork) -> str | None:
    """Record the outgoing envelope and end the claim, in the caller's transaction.

    Returns an error for error/ when the envelope cannot be accepted (nothing recorded then).
    """
    assert work.parsed is not None
    parsed = work.parsed
    try:
        check_envelope_against_template(conn, parsed)
    except DocbridgeError as exc:
        return str(exc)
    roles = [role.mailbox_uuid for role in parsed.roles]
    if work.job.mailbox_uuid not in roles:
        return (
            f"The envelope names no role with this mailbox ({work.job.mailbox_uuid}). "
            "Give the sending role this mailbox's uuid."
        )
    envelope_uuid = parsed.uuid or str(uuid_module.uuid5(_NAMESPACE, work.job.ref))
    if envelopes.get_envelope(conn, envelope_uuid) is not None:
        return f"An envelope with uuid {envelope_uuid} already exists. Give it a new uuid."
    recipients = [r for r in roles if r != work.job.mailbox_uuid]
    now = utc_now()
    envelope = Envelope(
        uuid=envelope_uuid,
        mailbox_uuid=work.job.mailbox_uuid,
        direction=EnvelopeDirection.OUTGOING,
        template_uuid=parsed.template_uuid,
        template_version=parsed.template_version,
        subject=parsed.subject,
        sender_mailbox=work.job.mailbox_uuid,
        recipient_mailbox=recipients[0] if recipients else "",
        status=EnvelopeStatus.SENT,
        received_at=now,
        sent_at=now,
    )
    xml = stored_xml(work.data, parsed)
    envelopes.insert_envelope(conn, envelope, xml, parsed.to_dict()["documents"])
    conn.execute("UPDATE envelopes SET sent_at = ? WHERE uuid = ?", (now, envelope_uuid))
    jobs.complete(conn, work.job.id)
    logs.append_activity(
        conn,
        work.job.mailbox_uuid,
        "outbox",
        "sent",
        envelope_uuid=envelope_uuid,
        file_name=f"{work.folder}/{work.name}",
    )
    return None


def remove_taken(work: FileWork) -> None:
    """After the envelope is recorded: the file leaves outbox/, an old error note goes too."""
    work.path.unlink(missing_ok=True)
    (work.path.parent.parent / "error" / f"{work.name}.error.txt").unlink(missing_ok=True)


def send_to_error(work: FileWork, reason: str) -> None:
    move_to_error(work.path.parent.parent, work.folder, work.name, reason)


def record_error(conn: sqlite3.Connection, work: FileWork, reason: str) -> None:
    jobs.complete(conn, work.job.id)
    logs.append_activity(
        conn,
        work.job.mailbox_uuid,
        work.folder,
        "error",
        file_name=f"{work.folder}/{work.name}",
        error=reason,
    )
