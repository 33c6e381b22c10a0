"""Customer files: envelope XML from ``outbox/`` becomes an outgoing envelope; what cannot be
taken in moves to ``error/`` with ``<name>.error.txt`` saying why.

Files are taken by identity, never by name. The scan first *claims* each file: one rename moves
it out of the customer's folder into the mailbox's private ``.taking/`` area (a folder per claim,
``.taking/<folder>-<token>/<name>``; dot names are invisible over SFTP). Everything after works
on the claimed file, so a newer upload of the same name that lands in ``outbox/`` meanwhile is a
new file with a claim of its own; nothing here ever removes a path in ``outbox/``.

Each claim has exactly one job (its ref names the claim), which makes crashes harmless: a claim
whose job was never queued is queued by the next scan; a claim whose job is done (the envelope
was recorded, then the process died before removing the file) is removed by the next scan; a
claim whose job gave up is handed back to the customer in ``error/`` with the reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import uuid as uuid_module
from dataclasses import dataclass, replace
from pathlib import Path

from core.clock import timestamp, utc_now
from core.envelope_checks import (
    RECIPIENT_ROLE,
    check_envelope_against_template,
    check_field_values,
    check_sender_is,
    stored_xml,
)
from core.envelope_xml import DEFAULT_MAX_BYTES as ENVELOPE_MAX_BYTES
from core.envelope_xml import EnvelopeXml, parse_envelope_xml
from core.errors import DocbridgeError
from core.files import rename_no_replace, replace_file_durably
from core.models import (
    AttemptOutcome,
    Envelope,
    EnvelopeDirection,
    EnvelopeStatus,
    Job,
    JobKind,
    JobState,
)
from core.sftp.folders import (
    ERROR,
    ERROR_SUFFIX,
    MAX_NAME_BYTES,
    ensure_mailbox_root,
    free_name,
    fsync_dir,
    shorten,
    validate_name,
    write_atomically,
)
from core.storage import envelopes, jobs, logs
from core.storage.db import Tx

CUSTOMER_FOLDERS = ("outbox", "coutbox")
TAKING = ".taking"
_NAMESPACE = uuid_module.UUID("6f1c3f0e-5d0c-4a53-9a55-0b5c2f1d7e10")


@dataclass(frozen=True)
class Claim:
    """A customer file the engine has moved into ``.taking/`` (its identity: the token)."""

    mailbox_uuid: str
    folder: str
    name: str
    token: str

    @property
    def ref(self) -> str:
        return f"{self.mailbox_uuid}/{self.folder}/{self.name}@{self.token}"

    @property
    def payload(self) -> dict[str, str]:
        return {"folder": self.folder, "name": self.name, "claim": self.token}


def claim_path(mailboxes_dir: Path, mailbox_uuid: str, folder: str, token: str, name: str) -> Path:
    return mailboxes_dir / mailbox_uuid / TAKING / f"{folder}-{token}" / name


def scan(mailboxes_dir: Path, mailbox_uuid: str) -> list[Claim]:
    """Claim the files waiting in a mailbox's customer folders; return every claim held
    (new ones and those a crash left behind). Blocking: run in a thread."""
    root = mailboxes_dir / mailbox_uuid
    taking = root / TAKING
    touched: list[Path] = []
    for folder in CUSTOMER_FOLDERS:
        directory = root / folder
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            if not touched:
                _ensure_private_dir(taking)
            holder = taking / f"{folder}-{secrets.token_hex(8)}"
            holder.mkdir(mode=0o700)
            try:
                # The claim: whatever file has this name now is the one taken, by this rename.
                os.rename(entry.path, holder / entry.name)
            except FileNotFoundError:
                holder.rmdir()
                continue
            touched += [holder, directory]
    if touched:
        # Durable before any job is queued for them: a claim must not come undone after the
        # envelope it produced was recorded (the file would be taken in twice).
        for directory in dict.fromkeys([taking, *touched]):
            fsync_dir(directory)
    return _claims(taking, mailbox_uuid)


def stage_claim(mailboxes_dir: Path, mailbox_uuid: str, name: str, data: bytes) -> Claim:
    """Put ``data`` into a new claim of a ``coutbox/`` file called ``name``, durably (blocking):
    a kept input handed to the OUT rules again (reprocess). If its job is never queued, the
    next scan queues it like any other claim."""
    root = ensure_mailbox_root(mailboxes_dir, mailbox_uuid)  # e.g. restored without folders
    _ensure_private_dir(root / TAKING)
    token = secrets.token_hex(8)
    holder = root / TAKING / f"coutbox-{token}"
    holder.mkdir(mode=0o700)
    staged = holder / f".{token}.part"
    replace_file_durably(staged, holder / validate_name(name), data)
    fsync_dir(root / TAKING)
    return Claim(mailbox_uuid, "coutbox", name, token)


NEW_CLAIM_PREFIX = ".new-"
STALE_NEW_CLAIM_S = 3600.0  # a half-written claim older than this was left by a crash


def place_claim(
    mailboxes_dir: Path, mailbox_uuid: str, folder: str, token: str, name: str, data: bytes
) -> Claim:
    """Put a file that arrived another way (AS2) straight into ``.taking/`` as a claim, durably.

    ``token`` is stable for one message, so a repeat after a crash lands on the same claim and
    the claim's single job takes it in once. The claim folder appears with its file in it (one
    rename of a folder written aside under a dot name): the scan, which removes claim folders
    it finds empty, never sees it half made. Blocking: run in a thread.
    """
    root = ensure_mailbox_root(mailboxes_dir, mailbox_uuid)
    taking = root / TAKING
    _ensure_private_dir(taking)
    holder = taking / f"{folder}-{token}"
    base = validate_name(name)
    aside = taking / f"{NEW_CLAIM_PREFIX}{token}-{secrets.token_hex(4)}"
    aside.mkdir(mode=0o700)
    try:
        with open(aside / base, "xb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        fsync_dir(aside)
        try:
            os.rename(aside, holder)  # also replaces an empty claim folder
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            # A repeat (the partner resent after a crash): the claim stands; its file is the
            # same message's payload, replaced whole.
            os.replace(aside / base, holder / base)
            fsync_dir(holder)
    finally:
        if aside.exists():
            shutil.rmtree(aside, ignore_errors=True)
    fsync_dir(taking)
    return Claim(mailbox_uuid, folder, base, token)


def _remove_stale_new_claims(taking: Path) -> None:
    """Claims a crash left half written (their message was never answered: the partner
    resends it) go after an hour."""
    cutoff = timestamp() - STALE_NEW_CLAIM_S
    for entry in os.scandir(taking):
        if entry.name.startswith(NEW_CLAIM_PREFIX):
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    shutil.rmtree(entry.path, ignore_errors=True)


def _ensure_private_dir(directory: Path) -> None:
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    if directory.is_symlink() or not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a plain directory")


def _claims(taking: Path, mailbox_uuid: str) -> list[Claim]:
    if not taking.is_dir():
        return []
    _remove_stale_new_claims(taking)
    claims: list[Claim] = []
    for entry in sorted(os.scandir(taking), key=lambda e: e.name):
        folder, _, token = entry.name.rpartition("-")
        if folder not in CUSTOMER_FOLDERS or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            # Dot names are never customer files (the scan skips them): a reprocess's staging.
            names = [n for n in os.listdir(entry.path) if not n.startswith(".")]
        except FileNotFoundError:  # taken in and removed meanwhile by the file loop
            continue
        if not names:  # a crash between mkdir and rename, or after the file was removed
            with contextlib.suppress(FileNotFoundError, OSError):
                os.rmdir(entry.path)
            continue
        claims.extend(Claim(mailbox_uuid, folder, name, token) for name in names)
    return claims


@dataclass(frozen=True)
class Settled:
    """Claims whose job already ended: ``leftovers`` were taken in, ``parked`` gave up."""

    leftovers: list[Claim]
    parked: list[tuple[Claim, Job]]


def enqueue_claims(tx: Tx, claims: list[Claim]) -> Settled:
    """Queue a job for each new claim (idempotent), in the caller's transaction."""
    settled = Settled([], [])
    for claim in claims:
        if jobs.enqueue(tx, JobKind.FILE, claim.ref, claim.mailbox_uuid, claim.payload):
            continue
        row = jobs.job_row(tx, JobKind.FILE, claim.ref)
        if row is None or row.state is JobState.DONE:
            settled.leftovers.append(claim)
        elif row.state is JobState.PARKED:
            settled.parked.append((claim, row))
    return settled


@dataclass(frozen=True)
class FileWork:
    job: Job
    path: Path  # the claimed file in .taking/
    folder: str
    name: str
    parsed: EnvelopeXml | None = None
    data: bytes = b""
    error: str | None = None  # why it goes to error/
    gone: bool = False  # nothing left to do (already handled)
    size: int = 0  # of the file on disk
    whole: bool = True  # False: ``data`` is the file's head only (a source not yet matched)


def work_for(mailboxes_dir: Path, job: Job) -> FileWork:
    folder, name = str(job.payload["folder"]), str(job.payload["name"])
    token = job.payload.get("claim")
    if not token:  # queued by a version that took files by name: the scan claims it anew
        return FileWork(job, mailboxes_dir / job.mailbox_uuid / folder / name, folder, name)
    path = claim_path(mailboxes_dir, job.mailbox_uuid, folder, str(token), name)
    return FileWork(job, path, folder, name)


def read_file(
    mailboxes_dir: Path, job: Job, max_file_size: int, source_head: int | None = None
) -> FileWork:
    """Blocking: read and parse the claimed file, never more than the limits allow.

    The file is opened without following links and checked on the open descriptor (a regular
    file, and its size) before a byte is read; the read itself stops one byte past the limit,
    so a file that grows meanwhile cannot fill the memory either. ``max_file_size`` is the
    upload limit (``sftp.max_file_size``; 0 or less: none); envelope XML is also bounded by
    what the parser accepts. A ``coutbox/`` source larger than ``source_head`` bytes is read
    only that far: which rule takes it is decided on its name and head, and a file no rule
    takes is never held whole (:func:`read_whole` reads the rest for a rule).
    """
    work = work_for(mailboxes_dir, job)
    if not job.payload.get("claim"):
        return replace(work, gone=True)
    head = source_head if work.folder == "coutbox" else None
    return _read(work, max_file_size, head)


def read_whole(work: FileWork, max_file_size: int) -> FileWork:
    """Blocking: the whole of a source :func:`read_file` read the head of."""
    return work if work.whole else _read(work, max_file_size, None)


def _read(work: FileWork, max_file_size: int, head: int | None) -> FileWork:
    folder, path = work.folder, work.path

    def refused(reason: str) -> FileWork:
        return replace(work, error=reason)

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return replace(work, gone=True)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        return refused("This is a symbolic link, not a regular file: docbridge does not follow it.")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return refused("This is not a regular file: docbridge takes regular files only.")
        if info.st_nlink > 1:
            # Planted on the server (SFTP cannot make links): its content may live outside
            # the mailbox, so it is neither read nor sent; error/ keeps it out of sight.
            return refused(
                "This file has another name on disk (a hard link), so docbridge does not read "
                "it: ask the gateway's operator to remove it."
            )
        limit, too_big = _limit(folder, max_file_size, info.st_size)
        if too_big:
            return refused(too_big)
        if head is not None and info.st_size > head:
            data = _read_at_most(fd, head, info.st_size)
            return replace(work, data=data, size=info.st_size, whole=False)
        data = _read_at_most(fd, limit + 1, info.st_size)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew after the check
        return refused(_limit(folder, max_file_size, len(data))[1] or "This file is too large.")
    if folder == "coutbox":  # a source for the OUT rules: the conversion reads it
        return replace(work, data=data, size=len(data), whole=True)
    try:
        parsed = parse_envelope_xml(data, max_bytes=limit)
    except DocbridgeError as exc:
        return refused(str(exc))
    return replace(work, parsed=parsed, data=data, size=len(data))


def _limit(folder: str, max_file_size: int, size: int) -> tuple[int, str | None]:
    """The most docbridge reads of a file in ``folder``, and why a file of ``size`` bytes is
    too large (None if it is not)."""
    xml_limit = ENVELOPE_MAX_BYTES if folder == "outbox" else None
    upload_limit = max_file_size if max_file_size > 0 else None
    limits = [limit for limit in (upload_limit, xml_limit) if limit is not None]
    limit = min(limits) if limits else 2**62
    if upload_limit is not None and size > upload_limit:
        return limit, (
            f"This file is {_amount(size)}, above the upload limit of {_amount(upload_limit)}: "
            "docbridge did not read it. Split it into smaller files, or ask the administrator "
            "to raise sftp.max_file_size."
        )
    if xml_limit is not None and size > xml_limit:
        return limit, (
            f"This file is {_amount(size)}, and envelope XML in outbox/ is at most "
            f"{_amount(xml_limit)}: docbridge did not read it. Send fewer or smaller documents "
            "per envelope."
        )
    return limit, None


def _read_at_most(fd: int, count: int, size: int) -> bytes:
    """Up to ``count`` bytes from ``fd``, a file of ``size`` bytes when it was checked.

    One read of the expected size (one bytes object, no chunks joined into a second copy), and
    one more that finds the end; only a file that grew meanwhile is read on, up to ``count``.
    """
    data = os.read(fd, min(count, size + 1))
    if len(data) >= count:
        return data
    chunks = [data]  # the end of the file (the next read says so), or it grew
    left = count - len(data)
    while left > 0:
        chunk = os.read(fd, min(left, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return data if len(chunks) == 1 else b"".join(chunks)


def _amount(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f}".removesuffix(".0") + " MB"
    return f"{size} bytes"


def take_in(tx: Tx, work: FileWork) -> str | None:
    """Record the outgoing envelope and end the claim, in the caller's transaction.

    Returns an error for error/ when the envelope cannot be accepted (nothing recorded then).
    """
    assert work.parsed is not None
    envelope_uuid = work.parsed.uuid or str(uuid_module.uuid5(_NAMESPACE, work.job.ref))
    error = accept_outgoing(tx, work.job.mailbox_uuid, work.parsed, work.data, envelope_uuid)
    if error is not None:
        return error
    jobs.complete(tx, work.job)
    logs.append_activity(
        tx,
        work.job.mailbox_uuid,
        "outbox",
        AttemptOutcome.SENT,
        envelope_uuid=envelope_uuid,
        file_name=f"{work.folder}/{work.name}",
    )
    return None


def accept_outgoing(
    tx: Tx, mailbox_uuid: str, parsed: EnvelopeXml, data: bytes, envelope_uuid: str
) -> str | None:
    """Check an envelope a mailbox sends and store it as sent; or the reason it cannot be
    (nothing stored then). Shared by ``outbox/`` files and OUT rules' output."""
    try:
        # The sender is the mailbox that uploaded it: it never sends as another mailbox.
        check_sender_is(parsed, mailbox_uuid)
        check_envelope_against_template(tx, parsed)
        check_field_values(tx, parsed)
    except DocbridgeError as exc:
        return str(exc)
    if envelopes.get_envelope(tx, envelope_uuid) is not None:
        return f"An envelope with uuid {envelope_uuid} already exists. Give it a new uuid."
    recipient = parsed.role_mailbox(RECIPIENT_ROLE)
    others = [r.mailbox_uuid for r in parsed.roles if r.mailbox_uuid != mailbox_uuid]
    recipients = [recipient] if recipient else others
    now = utc_now()
    envelope = Envelope(
        uuid=envelope_uuid,
        mailbox_uuid=mailbox_uuid,
        direction=EnvelopeDirection.OUTGOING,
        template_uuid=parsed.template_uuid,
        template_version=parsed.template_version,
        subject=parsed.subject,
        sender_mailbox=mailbox_uuid,
        recipient_mailbox=recipients[0] if recipients else "",
        status=EnvelopeStatus.SENT,
        received_at=now,
        sent_at=now,
    )
    xml = stored_xml(data, parsed)
    envelopes.insert_envelope(tx, envelope, xml, parsed.to_dict()["documents"])
    return None


def remove_taken(work: FileWork) -> None:
    """After the envelope is recorded: the claim goes.

    A failed file of the same name in ``error/`` stays, with its note: it is another upload,
    which this success does not explain; the customer removes it or moves it back to retry.
    Only a note whose file is gone (moved back outside SFTP, which drops the note itself) is
    removed: a note and its file stay together.
    """
    remove_claim(work.path)
    error_dir = work.path.parent.parent.parent / ERROR
    if not os.path.lexists(error_dir / work.name):
        (error_dir / f"{work.name}{ERROR_SUFFIX}").unlink(missing_ok=True)


def clear_resolved_error(work: FileWork) -> None:
    """After a reprocess of a failed file succeeded: its copy in ``error/`` (same name, same
    bytes) and its note go, so the customer no longer sees a failure that was mended. Another
    file of that name, or a note without its file, stays."""
    error_dir = work.path.parent.parent.parent / ERROR
    copy = error_dir / work.name
    try:
        with open(copy, "rb") as handle:
            same = handle.read(len(work.data) + 1) == work.data
    except (FileNotFoundError, IsADirectoryError):
        return
    if same:
        (error_dir / f"{work.name}{ERROR_SUFFIX}").unlink(missing_ok=True)
        copy.unlink(missing_ok=True)
        fsync_dir(error_dir)


def remove_claim(path: Path) -> None:
    """Remove a claimed file and its claim folder (blocking)."""
    path.unlink(missing_ok=True)
    with contextlib.suppress(FileNotFoundError, OSError):
        path.parent.rmdir()


def send_to_error(work: FileWork, reason: str) -> str:
    """Move the claimed file to ``error/`` with ``<name>.error.txt`` (written first, so the
    customer never sees a failed file without its reason); returns the name in ``error/``.

    Never replaces a file in ``error/``: an older failure of the same name keeps its copy and
    its note, and the new one gets a ``name (2).ext`` style name.
    """
    root = work.path.parent.parent.parent
    error_dir = root / ERROR
    fitting = shorten(work.name, MAX_NAME_BYTES - len(ERROR_SUFFIX))
    text = reason if reason.endswith("\n") else f"{reason}\n"
    for _ in range(10):
        final = free_name(error_dir, fitting, ERROR_SUFFIX)
        write_atomically(root, ERROR, f"{final}{ERROR_SUFFIX}", text.encode("utf-8"))
        try:
            # Never over a file in error/; the file itself moves (a link is never followed),
            # and it never has two names, even for a moment.
            rename_no_replace(str(work.path), str(error_dir / final))
        except FileExistsError:
            continue  # the customer renamed a file to that name meanwhile
        break
    else:
        raise FileExistsError(f"no free name in {error_dir} for {work.name}")
    fsync_dir(error_dir)
    remove_claim(work.path)
    return final


def record_error(tx: Tx, work: FileWork, reason: str) -> None:
    """A claimed file went to error/: its job is done."""
    jobs.complete(tx, work.job)
    _log_error(tx, work, reason)


def record_handed_back(tx: Tx, work: FileWork, reason: str) -> None:
    """A parked file is back in error/: its job is done (parked: no claim to end; another
    node that handed it back first wins, :class:`~core.storage.jobs.ClaimLost`)."""
    jobs.close_parked(tx, work.job)
    _log_error(tx, work, reason)


def _log_error(tx: Tx, work: FileWork, reason: str) -> None:
    logs.append_activity(
        tx,
        work.job.mailbox_uuid,
        work.folder,
        "error",
        file_name=f"{work.folder}/{work.name}",
        error=reason,
    )


def fail(tx: Tx, job: Job, error: str, policy: jobs.RetryPolicy) -> None:
    """A file job failed outside the normal outcomes (a defect, error/ not writable): its own
    error, on record. Once parked, the scan hands the file back in error/."""
    state = jobs.fail(tx, job, error, policy)
    folder, name = job.payload.get("folder", "?"), job.payload.get("name", "?")
    logs.append_activity(
        tx, job.mailbox_uuid, str(folder), state, file_name=f"{folder}/{name}", error=error
    )
