"""A mailbox's root on disk: five folders, a hidden staging area and atomic writes into them.

Layout: ``<mailboxes_dir>/<mailbox_uuid>/`` holds ``inbox/ cinbox/ outbox/ coutbox/ error/`` and
``.staging/``. Every file that appears in a folder, whether the platform wrote it or a customer
uploaded it, is first written complete under a temporary name in ``.staging/`` (same file system,
never listed nor reachable over SFTP) and then renamed into place, so nobody ever sees half a
file. Renames are followed by an fsync of the directory, so what was acknowledged survives a
crash. Temp files a killed process leaves in ``.staging/`` are removed by :func:`sweep_staging`.

Everything here is blocking file I/O: async callers run it in a thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Container
from pathlib import Path
from typing import Final

from core.clock import timestamp
from core.errors import InvalidInput
from core.files import fsync_dir as fsync_dir  # re-exported: SFTP and engine code use it
from core.files import replace_file_durably, replace_files_durably

INBOX: Final = "inbox"
CINBOX: Final = "cinbox"
OUTBOX: Final = "outbox"
COUTBOX: Final = "coutbox"
ERROR: Final = "error"
FOLDERS: Final = (INBOX, CINBOX, OUTBOX, COUTBOX, ERROR)
STAGING: Final = ".staging"

# Customers write only here; everything else is written by the platform.
UPLOAD_FOLDERS: Final = frozenset({OUTBOX, COUTBOX})
# Customers read (and delete what they picked up) only here.
DOWNLOAD_FOLDERS: Final = frozenset({INBOX, CINBOX, ERROR})

ERROR_SUFFIX: Final = ".error.txt"
# Temp names in staging: customer uploads in progress, and the platform's own writes.
UPLOAD_PREFIX: Final = ".upload-"
WRITE_PREFIX: Final = ".write-"
STALE_STAGING_S: Final = 3600.0
# Another node's upload temp file is left alone this long: its session may be open on that node
# (several nodes share one mailbox tree), which this node cannot see.
OTHER_NODES_STALE_S: Final = 7 * 86400.0
_TOKEN_HEX = 16  # staging_path's secrets.token_hex(8)
"""A temp file in staging untouched this long was left by an interrupted process: the platform
writes a file within seconds, and an upload that is still open is never swept, however idle."""
MAX_NAME_BYTES: Final = 255


def validate_name(name: str) -> str:
    """Return ``name`` if it is one plain file name, else raise :class:`InvalidInput`.

    One rule for both sides: whatever the platform may write, a customer may read back, and the
    other way round. No separators, no ``.``/``..``, no control characters (they break listings
    and logs), at most 255 bytes in UTF-8 (the usual file-system limit).
    """
    if not name or name in (".", ".."):
        raise InvalidInput(f"{name!r} is not a file name.", "Use a plain name such as order.xml.")
    if "/" in name or "\\" in name:
        raise InvalidInput(
            f"{name!r} contains a path separator.", "Use a plain name without / or \\."
        )
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise InvalidInput(f"{name!r} contains control characters.", "Remove them from the name.")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise InvalidInput(f"{name[:40]!r}… is too long.", "Use at most 255 bytes.")
    return name


def validate_folder(folder: str) -> str:
    if folder not in FOLDERS:
        raise InvalidInput(f"Unknown folder {folder!r}.", f"Use one of {', '.join(FOLDERS)}.")
    return folder


def mailbox_root(mailboxes_dir: Path, mailbox_uuid: str) -> Path:
    """Where a mailbox's folders live; the uuid is validated like a file name."""
    return mailboxes_dir / validate_name(mailbox_uuid)


def ensure_mailbox_root(mailboxes_dir: Path, mailbox_uuid: str) -> Path:
    """Create the mailbox root, its five folders and staging (all 0700); return the root.

    Idempotent. Refuses a root or folder that is a symbolic link, so a link planted on disk
    cannot redirect a mailbox elsewhere.
    """
    mailboxes_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    root = mailbox_root(mailboxes_dir, mailbox_uuid)
    for directory in (root, *(root / name for name in (*FOLDERS, STAGING))):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
        if directory.is_symlink() or not directory.is_dir():
            raise InvalidInput(
                f"{directory} is not a plain directory.",
                "Remove it; docbridge recreates the mailbox folders.",
            )
    return root


def upload_prefix(node: str = "") -> str:
    """The temp names of one node's uploads: ``.upload-<node>-<token>`` on a node of a cluster
    (its sweeps must know its own from another node's), ``.upload-<token>`` alone."""
    return f"{UPLOAD_PREFIX}{node}-" if node else UPLOAD_PREFIX


def _is_own_upload(name: str, own_prefix: str) -> bool:
    """Whether an upload temp file is this node's: alone (no node in the prefix) every one is;
    on a node, exactly ``own_prefix`` + a token, so node "a" never takes node "a-b"'s."""
    if own_prefix == UPLOAD_PREFIX:
        return True
    token = name[len(own_prefix) :]
    return name.startswith(own_prefix) and len(token) == _TOKEN_HEX and "-" not in token


def staging_path(root: Path, prefix: str = WRITE_PREFIX) -> Path:
    """A fresh, unguessable temp name in the mailbox's staging area."""
    return root / STAGING / f"{prefix}{secrets.token_hex(8)}"


def write_atomically(root: Path, folder: str, name: str, data: bytes) -> Path:
    """Put ``data`` into ``<root>/<folder>/<name>`` so that it appears complete or not at all.

    Written to staging, fsync'd, renamed over any file of the same name, then the folder is
    fsync'd: once this returns the file is durable. Used by the platform to fill ``inbox/``,
    ``cinbox/`` and ``error/``.
    """
    target = root / validate_folder(folder) / validate_name(name)
    replace_file_durably(staging_path(root), target, data)
    return target


def write_files_atomically(root: Path, files: list[tuple[str, str, bytes]]) -> list[Path]:
    """:func:`write_atomically` for many ``(folder, name, data)`` files under ``root`` at once
    (one flush for the batch); returns their final paths."""
    staged = [
        (staging_path(root), root / validate_folder(folder) / validate_name(name), data)
        for folder, name, data in files
    ]
    replace_files_durably(staged)
    return [target for _, target, _ in staged]


def _numbered(name: str, counter: int) -> str:
    stem, dot, ext = name.rpartition(".")
    if not stem:
        stem, dot, ext = name, "", ""
    return f"{stem} ({counter}){dot}{ext}"


def shorten(name: str, max_bytes: int) -> str:
    """``name`` cut to ``max_bytes`` of UTF-8, keeping its extension (and whole characters)."""
    if len(name.encode("utf-8", "surrogateescape")) <= max_bytes:
        return name
    stem, dot, ext = name.rpartition(".")
    if not stem or len(ext) > 16:
        stem, dot, ext = name, "", ""
    room = max_bytes - len(f"{dot}{ext}".encode("utf-8", "surrogateescape"))
    cut = stem.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")
    return f"{cut}{dot}{ext}"


def free_name(directory: Path, name: str, companion_suffix: str = "") -> str:
    """``name`` if free in ``directory``, else ``stem (2).ext``, ``stem (3).ext``, …

    With ``companion_suffix``, ``<name><suffix>`` must be free too, so an old companion file
    never describes a new file.
    """

    def taken(candidate: str) -> bool:
        return os.path.lexists(directory / candidate) or (
            bool(companion_suffix) and os.path.lexists(directory / f"{candidate}{companion_suffix}")
        )

    candidate = name
    counter = 1
    while taken(candidate):
        counter += 1
        candidate = _numbered(name, counter)
        too_long = len(f"{candidate}{companion_suffix}".encode()) > MAX_NAME_BYTES
        if too_long or counter > 10_000:
            candidate = f"{secrets.token_hex(8)}-{name}"[: MAX_NAME_BYTES - len(companion_suffix)]
            break
    return candidate


def move_to_error(root: Path, folder: str, name: str, reason: str) -> str:
    """Move a file that could not be processed to ``error/`` with ``<name>.error.txt`` beside it.

    The reason is written first, so a customer never sees a failed file without its
    explanation. Files already in ``error/`` are kept: the moved file gets a ``name (2).ext``
    style name, which is returned. The customer retries by renaming the file back into
    ``outbox/`` or ``coutbox/``.
    """
    source = root / validate_folder(folder) / validate_name(name)
    error_dir = root / ERROR
    fitting = shorten(name, MAX_NAME_BYTES - len(ERROR_SUFFIX))
    if folder == ERROR and fitting == name:
        final = name
    else:
        final = free_name(error_dir, fitting, ERROR_SUFFIX)
    text = reason if reason.endswith("\n") else f"{reason}\n"
    write_atomically(root, ERROR, f"{final}{ERROR_SUFFIX}", text.encode("utf-8"))
    if source != error_dir / final:
        os.rename(source, error_dir / final)
        fsync_dir(error_dir)
        fsync_dir(source.parent)
    return final


def sweep_staging(
    root: Path,
    *,
    in_use: Container[str] = frozenset(),
    all_uploads: bool = False,
    older_than_s: float = STALE_STAGING_S,
    now: float | None = None,
    own_uploads: str = UPLOAD_PREFIX,
) -> int:
    """Remove the temp files interrupted processes left in a mailbox's staging area; return
    how many. Blocking.

    A kill -9 (or a power cut) between creating a temp file and renaming it into place leaves
    it behind: ``.write-*`` from the platform's writes, ``.upload-*`` from the SFTP server.
    Removed: such files last modified at least ``older_than_s`` ago, except the upload temp
    files named in ``in_use`` (uploads still open, whose client may be idle for hours). With
    ``all_uploads`` every upload temp file of this node (``own_uploads``, see
    :func:`upload_prefix`) not in ``in_use`` goes whatever its age: for when the caller's SFTP
    server, the only writer of those, has no session open (at its start). Another node's
    upload temp files (nodes sharing the mailbox tree) go only after ``OTHER_NODES_STALE_S``.

    A file being written is never removed: platform writes finish within seconds, and open
    uploads are in ``in_use``. Only regular files with docbridge's temp prefixes are touched,
    and a staging folder that is not a real directory (a planted link) is left alone.
    """
    now = timestamp() if now is None else now
    cutoff, others_cutoff = now - older_than_s, now - max(older_than_s, OTHER_NODES_STALE_S)
    try:
        dir_fd = os.open(root / STAGING, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return 0
        raise
    removed = 0
    try:
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                name = entry.name
                upload = name.startswith(UPLOAD_PREFIX)
                if not (upload or name.startswith(WRITE_PREFIX)) or name in in_use:
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                    if not stat.S_ISREG(info.st_mode):
                        continue
                    own = upload and _is_own_upload(name, own_uploads)
                    if upload and not own:
                        if info.st_mtime > others_cutoff:
                            continue
                    elif info.st_mtime > cutoff and not (own and all_uploads):
                        continue
                    os.unlink(name, dir_fd=dir_fd)
                except FileNotFoundError:  # renamed into place (or removed) meanwhile
                    continue
                removed += 1
    finally:
        os.close(dir_fd)
    return removed


def sweep_mailboxes(
    mailboxes_dir: Path,
    *,
    in_use: Container[str] = frozenset(),
    all_uploads: bool = False,
    older_than_s: float = STALE_STAGING_S,
    own_uploads: str = UPLOAD_PREFIX,
) -> dict[str, int]:
    """:func:`sweep_staging` for every mailbox; returns the mailboxes where files were removed,
    with how many. Blocking. Links among the mailboxes are not followed."""
    removed: dict[str, int] = {}
    try:
        scan = os.scandir(mailboxes_dir)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    with scan:
        for entry in scan:
            if not entry.is_dir(follow_symlinks=False):
                continue
            count = sweep_staging(
                Path(entry.path),
                in_use=in_use,
                all_uploads=all_uploads,
                older_than_s=older_than_s,
                own_uploads=own_uploads,
            )
            if count:
                removed[entry.name] = count
    return removed
