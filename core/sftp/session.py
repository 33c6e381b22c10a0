"""One customer's SFTP session: what a mailbox may see and do, enforced on every request.

The client sees ``/`` with the five folders and nothing else. Every path the client sends is
parsed into (folder, name) by :func:`parse_path`; anything deeper, unknown or hidden (such as
``.staging``) does not exist for the client, ``..`` cannot climb above ``/``, and files are
opened relative to a folder descriptor opened with ``O_NOFOLLOW`` and then themselves with
``O_NOFOLLOW``, so a symbolic link planted on disk (a folder or a file pointing elsewhere) is
refused rather than followed. Links are hidden from listings and cannot be created. A file
with more than one name on disk (a hard link: it may be a file from outside the mailbox, planted
by someone with shell access) is treated like a symbolic link: hidden, refused, logged.

Uploads go to a private temp file in ``.staging/`` and are renamed into ``outbox/``/``coutbox/``
only when the client closes the handle (FXP_CLOSE). asyncssh also calls ``close()`` for every
handle still open when a session ends (connection lost, channel closed, malformed packet); those
uploads are incomplete and are discarded. asyncssh documents no way to tell the two apart; see
:func:`_called_for_client_close` for how it is done and :func:`require_close_hook`, which the
server runs at start-up so that an asyncssh release that breaks it stops the server loudly
instead of silently discarding (or accepting) uploads.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import grp
import logging
import os
import pwd
import stat
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import asyncssh
from asyncssh.constants import (
    ACE4_APPEND_DATA,
    ACE4_READ_DATA,
    ACE4_WRITE_DATA,
    FXF_ACCESS_DISPOSITION,
    FXF_APPEND,
    FXF_APPEND_DATA,
    FXF_CREATE_NEW,
    FXF_EXCL,
    FXF_READ,
    FXF_WRITE,
)

from core.errors import InvalidInput
from core.files import rename_no_replace
from core.sftp.backend import SftpBackend
from core.sftp.close_hook import called_for_client_close
from core.sftp.folders import (
    DOWNLOAD_FOLDERS,
    ERROR,
    ERROR_SUFFIX,
    FOLDERS,
    UPLOAD_FOLDERS,
    UPLOAD_PREFIX,
    staging_path,
    validate_name,
)
from core.sftp.quota import MailboxUsage

log = logging.getLogger("docbridge.sftp")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
# Blocks above this go through a thread; smaller ones are a page-cache copy, cheaper inline.
_INLINE_IO_BYTES = 256 * 1024
# Start writing a large upload back to disk every this many bytes, so the fsync that
# acknowledges it only has the tail left to flush.
_WRITEBACK_BYTES = 32 * 1024 * 1024
# Open files per session: enough for any client's parallelism, not enough to run out of fds.
MAX_OPEN_FILES = 64
# How long an upload waits for the engine to take in a file of the same name still waiting.
NAME_BUSY_WAIT_S = 5.0


@dataclass
class FileBudget:
    """Files all sessions together may hold open. One customer opening many sessions, each
    with many files, must not use up the process's descriptors: the store, the engine and the
    other mailboxes need them too."""

    capacity: int
    in_use: int = 0

    def available(self) -> bool:
        return self.in_use < self.capacity

    def take(self) -> None:
        self.in_use += 1

    def give_back(self) -> None:
        self.in_use = max(0, self.in_use - 1)


@dataclass(frozen=True)
class MailboxContext:
    """What a session needs from the server: whose mailbox, where, and the shared limits."""

    mailbox_uuid: str
    root: Path
    backend: SftpBackend
    usage: MailboxUsage
    max_file_size: int  # 0 or less: unlimited
    # Names of the upload temp files open in any session of the server: its staging sweep
    # (core.sftp.folders.sweep_staging) must leave them alone however idle their client is.
    staging_in_use: set[str]
    files: FileBudget = field(default_factory=lambda: FileBudget(capacity=1024))
    upload_prefix: str = UPLOAD_PREFIX  # this node's upload temp names (folders.upload_prefix)


@dataclass(frozen=True)
class VirtualPath:
    """A client path after parsing: ``/`` (no folder), ``/<folder>`` or ``/<folder>/<name>``."""

    folder: str | None = None
    name: str | None = None

    def __str__(self) -> str:
        return "/" + "/".join(part for part in (self.folder, self.name) if part)


def parse_path(raw: bytes) -> VirtualPath:
    """Turn a client path into a :class:`VirtualPath`, or raise an SFTP error.

    Relative paths start at ``/`` (the client's home is the mailbox root); ``.`` is dropped and
    ``..`` never climbs above ``/``, as in any chroot. Only the five folders exist, and they have
    no subfolders.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise asyncssh.SFTPInvalidFilename("File names must be UTF-8") from None
    parts: list[str] = []
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    if not parts:
        return VirtualPath()
    if parts[0] not in FOLDERS:
        raise asyncssh.SFTPNoSuchFile(
            f"/{parts[0]} does not exist: the folders are {', '.join(FOLDERS)}"
        )
    if len(parts) == 1:
        return VirtualPath(parts[0])
    if len(parts) > 2:
        raise asyncssh.SFTPNoSuchFile(f"/{parts[0]} has no subfolders")
    try:
        name = validate_name(parts[1])
    except InvalidInput as exc:
        raise asyncssh.SFTPInvalidFilename(str(exc)) from None
    return VirtualPath(parts[0], name)


def _require_file(path: VirtualPath) -> tuple[str, str]:
    if path.folder is None or path.name is None:
        raise asyncssh.SFTPFileIsADirectory(f"{path} is a folder")
    return path.folder, path.name


def _symlink_refused(path: VirtualPath) -> asyncssh.SFTPError:
    return asyncssh.SFTPPermissionDenied(f"{path} is a link; links are not followed")


def _hard_link_refused(path: VirtualPath) -> asyncssh.SFTPError:
    return asyncssh.SFTPPermissionDenied(
        f"{path} has another name on disk (a hard link), so it is not served: ask the "
        "gateway's operator to remove it"
    )


@dataclass(eq=False)
class _Download:
    fd: int
    path: VirtualPath

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """asyncssh's ranges extension seeks the file object to find data and holes."""
        return os.lseek(self.fd, offset, whence)


@dataclass(eq=False)
class _Upload:
    fd: int
    temp: Path
    folder: str
    name: str
    size: int = 0
    refused: str | None = None  # why a write was refused; the upload then stores nothing
    closed: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # commit vs discard
    unsynced: int = 0
    writeback: asyncio.Task[None] | None = None  # an early fdatasync running in a thread

    async def settle(self) -> None:
        """Wait for the early writeback, so the descriptor can be closed (or synced) safely."""
        task, self.writeback = self.writeback, None
        if task is not None:
            await task

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return os.lseek(self.fd, offset, whence)


def _refuse_dot_name(name: str) -> None:
    """docbridge never picks up dot files (its own temporary files start with "."): taking
    one into an upload folder would acknowledge a file that is never processed."""
    if name.startswith("."):
        raise asyncssh.SFTPPermissionDenied(
            f"{name!r} starts with '.': such files are never picked up. Upload it under a name "
            "without the leading dot."
        )


class MailboxSftpSession(asyncssh.SFTPServer):
    """The asyncssh SFTP server for one session, confined to one mailbox root.

    Every request is served by the methods below; anything they do not override goes through
    :meth:`map_path`, which cannot leave the root either. (asyncssh's own ``chroot`` is not
    set: it only feeds the ``map_path``/``reverse_map_path`` overridden here, and asyncssh
    would resolve it with ``realpath`` on the event loop at each session start.)

    Requests of one session are handled one at a time, in order. File system work runs in a
    thread, batched into one hop per request (small-file throughput depends on it).
    """

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], context: MailboxContext) -> None:
        super().__init__(chan)
        # The server resolved the parent of ``root``; ``root`` itself is checked to be a real
        # directory at login, so no component here is a link.
        self._context = context
        self._root = context.root
        self._uploads: set[_Upload] = set()
        self._staged = 0  # uploads whose temp file is still in staging (open or being closed)
        self._open_files = 0
        self._interrupted = False  # an upload was cut off by the end of the session
        self._hard_links_seen: set[VirtualPath] = set()  # each logged once per session

    @property
    def mailbox_uuid(self) -> str:
        return self._context.mailbox_uuid

    @property
    def settled(self) -> bool:
        """No upload of this session has a temp file left: each was stored or discarded."""
        return self._staged == 0

    # -- paths --------------------------------------------------------------------------------

    def map_path(self, path: bytes) -> bytes:
        """Local path for a client path; only used by asyncssh code paths not overridden here."""
        virtual = parse_path(path)
        return os.fsencode(self._local(virtual))

    def reverse_map_path(self, path: bytes) -> bytes:
        root = os.fsencode(self._root)
        if path == root:
            return b"/"
        if path.startswith(root + b"/"):
            return path[len(root) :]
        raise asyncssh.SFTPNoSuchFile("File not found")

    def _local(self, path: VirtualPath) -> Path:
        if path.folder is None:
            return self._root
        if path.name is None:
            return self._root / path.folder
        return self._root / path.folder / path.name

    def _open_folder(self, folder: str) -> int:
        """A descriptor for a folder that is a real directory, never a link planted in its place."""
        try:
            return os.open(self._root / folder, _DIR_FLAGS)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _symlink_refused(VirtualPath(folder)) from None
            raise

    def _lstat(self, path: VirtualPath) -> os.stat_result:
        """Blocking: callers on the event loop run it in a thread."""
        if path.folder is None:
            return os.stat(self._root)
        dir_fd = self._open_folder(path.folder)
        try:
            if path.name is None:
                return os.fstat(dir_fd)
            info = os.stat(path.name, dir_fd=dir_fd, follow_symlinks=False)
        finally:
            os.close(dir_fd)
        if stat.S_ISLNK(info.st_mode):
            raise _symlink_refused(path)
        if not stat.S_ISREG(info.st_mode):
            raise asyncssh.SFTPNoSuchFile(f"{path} does not exist")
        if info.st_nlink > 1:
            self._report_hard_link(path, info)
            raise _hard_link_refused(path)
        return info

    def _report_hard_link(self, path: VirtualPath, info: os.stat_result) -> None:
        """docbridge never leaves a hard link in a folder: one there was planted (or is a bug),
        and the operator should hear of it. Once per session, however often it is listed."""
        if path in self._hard_links_seen:
            return
        self._hard_links_seen.add(path)
        log.warning(
            "mailbox %s: %s has %d names on disk (a hard link, inode %d); hidden and refused "
            "over SFTP. Remove it: docbridge never makes one.",
            self.mailbox_uuid,
            str(path).lstrip("/"),
            info.st_nlink,
            info.st_ino,
        )

    # -- attributes ---------------------------------------------------------------------------

    def realpath(self, path: bytes) -> bytes:
        return str(parse_path(path)).encode()

    async def lstat(self, path: bytes) -> os.stat_result:
        return await asyncio.to_thread(self._lstat, parse_path(path))

    async def stat(self, path: bytes) -> os.stat_result:
        return await asyncio.to_thread(self._lstat, parse_path(path))

    def fstat(self, file_obj: object) -> os.stat_result:
        return os.fstat(self._file(file_obj).fd)

    async def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        """Times and modes are accepted and ignored (clients that preserve them must not fail
        uploads); a size change of a stored file is refused, never acknowledged and ignored."""
        virtual = parse_path(path)
        await asyncio.to_thread(self._lstat, virtual)
        if attrs.size is not None:
            raise asyncssh.SFTPOpUnsupported(
                f"{virtual}: the size of a stored file cannot be changed; upload it again"
            )

    async def lsetstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        await self.setstat(path, attrs)

    async def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        """An upload in progress may be cut short (truncate); the stored file is then exactly
        that long. Growing it would leave a hole of zeros, so it is refused: write the bytes."""
        handle = self._file(file_obj)
        if attrs.size is None:
            return
        if not isinstance(handle, _Upload):
            raise asyncssh.SFTPPermissionDenied("Downloads are opened for reading only")
        if handle.refused is not None:
            raise asyncssh.SFTPFailure(handle.refused)
        if attrs.size > handle.size:
            raise asyncssh.SFTPOpUnsupported(
                f"An upload can be shortened but not grown by a size change "
                f"(it has {handle.size} bytes): write the bytes instead"
            )
        await asyncio.to_thread(os.ftruncate, handle.fd, attrs.size)
        self._context.usage.release(handle.size - attrs.size)
        handle.size = attrs.size

    def statvfs(self, path: bytes) -> os.statvfs_result:
        raise asyncssh.SFTPOpUnsupported("statvfs is not supported")

    def fstatvfs(self, file_obj: object) -> os.statvfs_result:
        raise asyncssh.SFTPOpUnsupported("statvfs is not supported")

    # -- listings -----------------------------------------------------------------------------

    # asyncssh looks the owner up (getpwuid/getgrgid, ~30 µs each) for every entry of every
    # listing; a mailbox's files all have the same owner, so remember the answers.
    def format_user(self, uid: int | None) -> str:
        return "" if uid is None else _user_name(uid)

    def format_group(self, gid: int | None) -> str:
        return "" if gid is None else _group_name(gid)

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        virtual = parse_path(path)
        if virtual.name is not None:
            raise asyncssh.SFTPNotADirectory(f"{virtual} is a file")
        entries = await asyncio.to_thread(self._list, virtual)
        for name, info in entries:
            yield asyncssh.SFTPName(name.encode(), attrs=asyncssh.SFTPAttrs.from_local(info))

    def _list(self, path: VirtualPath) -> list[tuple[str, os.stat_result]]:
        here = self._lstat(path)
        entries = [(".", here), ("..", os.stat(self._root))]
        if path.folder is None:
            for folder in FOLDERS:
                with contextlib.suppress(OSError, asyncssh.SFTPError):
                    entries.append((folder, self._lstat(VirtualPath(folder))))
            return entries
        folder_path = self._local(path)
        with os.scandir(folder_path) as scan:
            for entry in scan:
                with contextlib.suppress(FileNotFoundError):
                    info = entry.stat(follow_symlinks=False)
                    if not stat.S_ISREG(info.st_mode):  # links and anything odd stay invisible
                        continue
                    if info.st_nlink > 1:
                        self._report_hard_link(VirtualPath(path.folder, entry.name), info)
                        continue
                    entries.append((entry.name, info))
        return entries

    # -- files --------------------------------------------------------------------------------

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        write = bool(pflags & FXF_WRITE)
        read_write = write and bool(pflags & FXF_READ)
        append = bool(pflags & FXF_APPEND)
        exclusive = bool(pflags & FXF_EXCL)
        return await self._open(parse_path(path), write, read_write, append, exclusive)

    async def open56(
        self, path: bytes, desired_access: int, flags: int, attrs: asyncssh.SFTPAttrs
    ) -> object:
        write = bool(desired_access & (ACE4_WRITE_DATA | ACE4_APPEND_DATA))
        read = bool(desired_access & ACE4_READ_DATA)
        append = bool(desired_access & ACE4_APPEND_DATA or flags & FXF_APPEND_DATA)
        exclusive = flags & FXF_ACCESS_DISPOSITION == FXF_CREATE_NEW
        return await self._open(parse_path(path), write, read and write, append, exclusive)

    async def _open(
        self, path: VirtualPath, write: bool, read_write: bool, append: bool, exclusive: bool
    ) -> object:
        folder, name = _require_file(path)
        if self._open_files >= MAX_OPEN_FILES:
            raise asyncssh.SFTPFailure(f"At most {MAX_OPEN_FILES} files can be open at once")
        if not self._context.files.available():
            log.warning(
                "SFTP open refused for mailbox %s: the server's file budget is used up",
                self.mailbox_uuid,
            )
            raise asyncssh.SFTPFailure(
                "The gateway has too many files open right now: close some, or try again later"
            )
        if not write:
            download = self._open_download(path, folder, name)
            self._opened()
            return download
        if folder not in UPLOAD_FOLDERS:
            raise asyncssh.SFTPPermissionDenied(
                f"/{folder} is read-only: upload into /outbox or /coutbox"
            )
        _refuse_dot_name(name)
        if read_write or append:
            raise asyncssh.SFTPOpUnsupported(
                "Uploads cannot be appended to or resumed: upload the whole file again"
            )
        if exclusive and await asyncio.to_thread(os.path.lexists, self._local(path)):
            raise asyncssh.SFTPFileAlreadyExists(f"{path} already exists")
        await self._context.usage.refresh()
        # In a thread: right after the previous upload's fsyncs, creating a file waits for
        # ext4's journal, measured at 0.3-1 ms per upload of a stream of small files.
        fd, temp = await asyncio.to_thread(self._create_staging)
        self._context.staging_in_use.add(temp.name)
        self._staged += 1
        upload = _Upload(fd, temp, folder, name)
        self._uploads.add(upload)
        self._opened()
        return upload

    def _create_staging(self) -> tuple[int, Path]:
        temp = staging_path(self._root, self._context.upload_prefix)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        return fd, temp

    def _open_download(self, path: VirtualPath, folder: str, name: str) -> _Download:
        if folder not in DOWNLOAD_FOLDERS:
            raise asyncssh.SFTPPermissionDenied(
                f"/{folder} is for uploads, which docbridge picks up: nothing to download there"
            )
        dir_fd = self._open_folder(folder)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _symlink_refused(path) from None
            raise
        finally:
            os.close(dir_fd)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise asyncssh.SFTPPermissionDenied(f"{path} is not a plain file")
        if info.st_nlink > 1:  # checked on the open file: a link made after a listing counts
            os.close(fd)
            self._report_hard_link(path, info)
            raise _hard_link_refused(path)
        return _Download(fd, path)

    def _file(self, file_obj: object) -> _Download | _Upload:
        if isinstance(file_obj, _Download | _Upload):
            return file_obj
        raise asyncssh.SFTPInvalidHandle("Invalid file handle")

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        handle = self._file(file_obj)
        if isinstance(handle, _Upload):
            raise asyncssh.SFTPPermissionDenied("Uploads are opened for writing only")
        if size > _INLINE_IO_BYTES:
            return await asyncio.to_thread(os.pread, handle.fd, size, offset)
        return os.pread(handle.fd, size, offset)

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        upload = self._file(file_obj)
        if not isinstance(upload, _Upload):
            raise asyncssh.SFTPPermissionDenied("Downloads are opened for reading only")
        if upload.refused is not None:
            raise asyncssh.SFTPFailure(upload.refused)
        end = offset + len(data)
        limit = self._context.max_file_size
        if limit > 0 and end > limit:
            await self._refuse(upload, f"File too large: the limit is {_size(limit)} per file")
        grow = max(0, end - upload.size)
        if grow and not self._context.usage.reserve(grow):
            quota = _size(self._context.usage.quota)
            await self._refuse(
                upload,
                f"Mailbox quota of {quota} exceeded: delete files you picked up from "
                "/inbox, /cinbox or /error, then upload again",
                quota=True,
            )
        upload.size += grow
        try:
            return await self._store(upload, offset, data)
        except OSError as exc:  # a file with a hole must never be accepted: give it up
            await self._refuse(upload, f"Cannot store the file: {exc.strerror or exc}")

    async def _store(self, upload: _Upload, offset: int, data: bytes) -> int:
        if len(data) > _INLINE_IO_BYTES:
            written = await asyncio.to_thread(os.pwrite, upload.fd, data, offset)
        else:
            written = os.pwrite(upload.fd, data, offset)
        if written != len(data):
            raise OSError(errno.EIO, "short write")
        upload.unsynced += written
        if upload.unsynced >= _WRITEBACK_BYTES and (
            upload.writeback is None or upload.writeback.done()
        ):
            await upload.settle()  # surfaces an error of the previous writeback
            upload.unsynced = 0
            upload.writeback = asyncio.create_task(asyncio.to_thread(os.fdatasync, upload.fd))
        return written

    async def _refuse(self, upload: _Upload, reason: str, *, quota: bool = False) -> NoReturn:
        """Discard the upload now (nothing is stored) and fail this and every later write."""
        upload.refused = f"{reason}; nothing was stored"
        await self._discard(upload)
        log.info("upload refused for mailbox %s: %s", self.mailbox_uuid, reason)
        if quota:
            raise asyncssh.SFTPQuotaExceeded(upload.refused)
        raise asyncssh.SFTPFailure(upload.refused)

    async def fsync(self, file_obj: object) -> None:
        handle = self._file(file_obj)
        if isinstance(handle, _Upload) and not handle.closed:
            await asyncio.to_thread(os.fsync, handle.fd)

    def close(self, file_obj: object) -> Awaitable[None]:
        # Decided here, synchronously: the caller's frame is only on the stack now.
        return self._close(file_obj, clean=called_for_client_close())

    async def _close(self, file_obj: object, *, clean: bool) -> None:
        if isinstance(file_obj, _Download):
            os.close(file_obj.fd)
            self._closed()
            return
        if not isinstance(file_obj, _Upload):
            return
        if not clean:
            if not file_obj.closed:
                self._interrupted = True
                log.info(
                    "upload of %s/%s for mailbox %s interrupted; discarded",
                    file_obj.folder,
                    file_obj.name,
                    self.mailbox_uuid,
                )
            await self._discard(file_obj)
            return
        if file_obj.refused is not None:
            await self._discard(file_obj)
            raise asyncssh.SFTPFailure(file_obj.refused)
        await self._commit(file_obj)

    def _opened(self) -> None:
        self._open_files += 1
        self._context.files.take()

    def _closed(self) -> None:
        self._open_files -= 1
        self._context.files.give_back()

    def _release_handle(self, upload: _Upload) -> bool:
        """Mark an upload closed exactly once (caller holds its lock); False if it already was."""
        if upload.closed:
            return False
        upload.closed = True
        self._uploads.discard(upload)
        self._closed()
        return True

    def _unstage(self, upload: _Upload) -> None:
        """The upload's temp file is gone (stored or removed): once per upload."""
        self._context.staging_in_use.discard(upload.temp.name)
        self._staged -= 1

    async def _discard(self, upload: _Upload) -> None:
        async with upload.lock:
            if not self._release_handle(upload):
                return
            self._context.usage.release(upload.size)
            try:
                with contextlib.suppress(OSError):
                    await upload.settle()
                await asyncio.to_thread(_remove_temp, upload)
            finally:
                self._unstage(upload)

    async def _commit(self, upload: _Upload) -> None:
        async with upload.lock:
            if not self._release_handle(upload):
                return
            try:
                try:
                    await upload.settle()
                except BaseException:
                    await asyncio.to_thread(_remove_temp, upload)
                    raise
                await self._publish_without_replacing(upload)
            except BaseException:
                self._context.usage.release(upload.size)
                raise
            finally:
                self._unstage(upload)
            self._context.usage.commit(upload.size)
        log.info(
            "received %s/%s (%d bytes) for mailbox %s",
            upload.folder,
            upload.name,
            upload.size,
            self.mailbox_uuid,
        )
        await self._notify(upload.folder, upload.name)

    async def _publish_without_replacing(self, upload: _Upload) -> None:
        """Make the upload visible, never over a file of the same name still waiting in the
        folder: that one was acknowledged too, and replacing it would lose it unseen.

        While the name is taken, the engine is woken to take the waiting file in (it claims a
        file within milliseconds of a wake-up); if the name is still taken after
        ``NAME_BUSY_WAIT_S``, the upload is refused with a clear message and stores nothing.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + NAME_BUSY_WAIT_S
        pause = 0.01
        placed = await asyncio.to_thread(self._publish, upload)
        while not placed:
            if loop.time() >= deadline:
                await asyncio.to_thread(_unlink_quietly, upload.temp)
                raise asyncssh.SFTPFailure(
                    f"/{upload.folder}/{upload.name} is still waiting to be picked up by "
                    "docbridge: upload it again in a moment, or under another name"
                )
            await self._notify(upload.folder, upload.name)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)
            placed = await asyncio.to_thread(self._place, upload)

    def _publish(self, upload: _Upload) -> bool:
        """Durable first, then visible: fsync and close the temp file, then :meth:`_place` it.
        Blocking: one thread hop per upload."""
        try:
            try:
                os.fdatasync(upload.fd)
            finally:
                os.close(upload.fd)
        except BaseException:
            _unlink_quietly(upload.temp)
            raise
        return self._place(upload)

    def _place(self, upload: _Upload) -> bool:
        """Rename the synced temp file into its folder unless the name is taken (False, the
        temp kept), then fsync the folder; on any error the temp file is removed. Blocking."""
        try:
            dir_fd = self._open_folder(upload.folder)
            try:
                try:
                    rename_no_replace(str(upload.temp), upload.name, dst_dir_fd=dir_fd)
                except FileExistsError:
                    return False
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except BaseException:
            _unlink_quietly(upload.temp)
            raise
        return True

    async def _notify(self, folder: str, name: str) -> None:
        try:
            await self._context.backend.file_arrived(self.mailbox_uuid, folder, name)
        except Exception:
            log.exception("file_arrived failed for %s/%s of %s", folder, name, self.mailbox_uuid)

    # -- changes ------------------------------------------------------------------------------

    async def remove(self, path: bytes) -> None:
        virtual = parse_path(path)
        folder, name = _require_file(virtual)
        if folder not in DOWNLOAD_FOLDERS:
            raise asyncssh.SFTPPermissionDenied(
                f"{virtual} is waiting to be picked up by docbridge and cannot be deleted"
            )
        size = await asyncio.to_thread(self._remove, virtual, folder, name)
        self._context.usage.removed(size)

    def _remove(self, path: VirtualPath, folder: str, name: str) -> int:
        """Delete a plain file (never a link); return its size. Blocking."""
        size = self._lstat(path).st_size
        dir_fd = self._open_folder(folder)
        try:
            os.unlink(name, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        return size

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        """SFTP v3 rename: refuses to replace an existing file."""
        await self._rename(parse_path(oldpath), parse_path(newpath), replace=False)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        """posix-rename@openssh.com (what OpenSSH's sftp uses): replaces an existing file."""
        await self._rename(parse_path(oldpath), parse_path(newpath), replace=True)

    async def _rename(self, source: VirtualPath, target: VirtualPath, *, replace: bool) -> None:
        """Rename within a download folder (e.g. mark a file as read), or into an upload folder.

        Renaming from ``/error`` (or between ``/outbox`` and ``/coutbox``) into an upload folder
        submits the file again, exactly like an upload, and drops its ``.error.txt``.
        """
        src_folder, src_name = _require_file(source)
        dst_folder, dst_name = _require_file(target)
        submits = dst_folder in UPLOAD_FOLDERS
        if submits:
            _refuse_dot_name(dst_name)
        if submits and src_folder not in (*UPLOAD_FOLDERS, ERROR):
            raise asyncssh.SFTPPermissionDenied(
                f"{source} cannot be moved to /{dst_folder}: only files from /error can be retried"
            )
        if not submits and src_folder != dst_folder:
            raise asyncssh.SFTPPermissionDenied(
                f"{source} can only be renamed within /{src_folder}, or moved from /error "
                "to /outbox or /coutbox to retry it"
            )
        await asyncio.to_thread(self._move, source, target, replace)
        if submits:
            log.info("%s resubmitted as %s for mailbox %s", source, target, self.mailbox_uuid)
            await self._notify(dst_folder, dst_name)

    def _move(self, source: VirtualPath, target: VirtualPath, replace: bool) -> None:
        """Blocking: the checks, the rename and the fsyncs in one thread hop."""
        src_folder, src_name = _require_file(source)
        dst_folder, dst_name = _require_file(target)
        self._lstat(source)  # refuses links, hard links included
        src_fd = self._open_folder(src_folder)
        try:
            dst_fd = self._open_folder(dst_folder)
            try:
                if not replace and os.path.lexists(self._local(target)):
                    raise asyncssh.SFTPFileAlreadyExists(f"{target} already exists")
                with contextlib.suppress(FileNotFoundError):
                    existing = os.stat(dst_name, dir_fd=dst_fd, follow_symlinks=False)
                    if not stat.S_ISREG(existing.st_mode):
                        raise asyncssh.SFTPPermissionDenied(f"{target} is not a plain file")
                if dst_folder in UPLOAD_FOLDERS:
                    # A file waiting there was acknowledged: never replace it unseen.
                    try:
                        rename_no_replace(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                    except FileExistsError:
                        raise asyncssh.SFTPFileAlreadyExists(
                            f"{target} is still waiting to be picked up by docbridge: "
                            "try again in a moment, or use another name"
                        ) from None
                else:
                    os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                if src_folder == ERROR and dst_folder != ERROR:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{src_name}{ERROR_SUFFIX}", dir_fd=src_fd)
                os.fsync(dst_fd)
                if dst_fd != src_fd:
                    os.fsync(src_fd)
            finally:
                os.close(dst_fd)
        finally:
            os.close(src_fd)

    def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        raise asyncssh.SFTPPermissionDenied("The five folders are fixed: no folders can be added")

    def rmdir(self, path: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("The five folders are fixed: none can be removed")

    def readlink(self, path: bytes) -> bytes:
        raise asyncssh.SFTPPermissionDenied("Links are not supported")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("Symbolic links cannot be created here")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("Hard links cannot be created here")

    async def exit(self) -> None:
        """Session over: discard any upload still open, then report an exit status.

        Any upload still open is incomplete (asyncssh normally closed them just before). The
        exit status is what OpenSSH's ``scp`` (which speaks SFTP since OpenSSH 9.0) exits with:
        without one it reports failure after a successful transfer, and scripts that retry on
        failure deliver the file twice. 0 unless an upload was cut off by the end of the session;
        if the connection or channel is already gone there is nobody to tell, and asyncssh
        sends nothing.
        """
        for upload in list(self._uploads):
            self._interrupted = True
            await self._discard(upload)
        self.channel.exit(1 if self._interrupted else 0)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _remove_temp(upload: _Upload) -> None:
    """Close an upload's temp file and remove it (it may be gone already). Blocking."""
    try:
        os.close(upload.fd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(upload.temp)


@functools.lru_cache(maxsize=64)
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@functools.lru_cache(maxsize=64)
def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _size(size: int) -> str:
    """Human-readable size for error messages."""
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.4g} {unit}"
