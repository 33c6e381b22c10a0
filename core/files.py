"""Files a user names in a form: a certificate to export, an example source to read.

Both are paths typed by a person, so every failure is an :class:`~core.errors.InvalidInput` that
says what to do, and neither ever replaces or half-writes a file. Every function here blocks:
call them in a thread (the service does).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import stat
from pathlib import Path

from core.errors import InvalidInput

__all__ = ["MAX_EXAMPLE_BYTES", "read_example_file", "write_public_file"]

MAX_EXAMPLE_BYTES = 10 * 1024 * 1024
"""An example source is a typical document, not a data dump: larger files are refused."""


def write_public_file(name: str, text: str) -> Path:
    """Write ``text`` to the new file ``name`` (``~`` expanded) and return its path.

    Never replaces an existing file, and the file appears complete or not at all: the text is
    written to a temporary file in the same folder, fsync'd, then linked to ``name`` (which fails
    if ``name`` exists), and the folder is fsync'd. On a file system without hard links the file
    is created exclusively and written in place. The mode follows the umask, as for any file the
    user creates: the content is public (a certificate).
    """
    raw = name.strip()
    if not raw:
        raise InvalidInput("No file path given.", "Enter the path of the file to write.")
    path = Path(raw).expanduser()
    if path.is_dir():
        raise InvalidInput(
            f"{path} is a folder.", f"Add a file name, e.g. {path / 'certificate.pem'}."
        )
    data = text.encode("utf-8")
    temp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        _write_new(temp, data)
        try:
            os.link(temp, path)
        except OSError as exc:
            no_links = exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV)
            if isinstance(exc, FileExistsError) or not no_links:
                raise
            _write_new(path, data)  # no hard links here (FAT, some network file systems)
        fsync_dir(path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)
    return path


def read_example_file(name: str) -> bytes:
    """The content of the regular file ``name`` (``~`` expanded), at most 10 MB."""
    if not name.strip():
        raise InvalidInput("No file given.", "Enter the path of a typical example file.")
    return read_regular_file(
        name, MAX_EXAMPLE_BYTES, "Use a smaller, typical example file.", "a saved example document"
    )


ENVELOPE_TOO_BIG_HINT = "Envelope XML is never that large; check that this is the right file."


def read_regular_file(name: str, limit: int, too_big_hint: str, expected: str) -> bytes:
    """The content of the regular file ``name`` (``~`` expanded), at most ``limit`` bytes.

    The size is checked on the open file and the read is bounded, so a file that grows meanwhile,
    or a device such as ``/dev/zero``, never fills the memory; a FIFO never blocks the read.
    """
    if not name.strip():
        raise InvalidInput("No file given.", f"Give the path of {expected}.")
    path = Path(name.strip()).expanduser()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise InvalidInput(f"There is no file at {path}.", "Check the path.") from exc
    except PermissionError as exc:
        raise InvalidInput(
            f"{path} cannot be read: permission denied.",
            "Make it readable for the user running docbridge, or copy it somewhere readable.",
        ) from exc
    except OSError as exc:
        raise InvalidInput(
            f"{path} cannot be read ({exc.strerror or exc}).", "Check the path and permissions."
        ) from exc
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InvalidInput(f"{path} is a directory.", "Give the path of a file.")
        if not stat.S_ISREG(mode):
            raise InvalidInput(f"{path} is not a regular file.", f"Give the path of {expected}.")
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(limit + 1)
    except OSError as exc:
        raise InvalidInput(
            f"{path} cannot be read ({exc.strerror or exc}).", "Check the path and permissions."
        ) from exc
    finally:
        os.close(fd)
    if len(data) > limit:
        raise InvalidInput(f"{path} is larger than {describe_limit(limit)}.", too_big_hint)
    return data


def describe_limit(limit: int) -> str:
    """A byte limit as people read it: "20 MB", or "100 bytes"."""
    mib = limit / (1024 * 1024)
    return f"{mib:g} MB" if mib >= 1 else f"{limit} bytes"


NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
"""Create, never replace, never through a symlink."""


def _write_new(path: Path, data: bytes) -> None:
    fill_new_file(os.open(path, NEW_FILE_FLAGS, 0o666), path, data)


def replace_file_durably(temp: Path, target: Path, data: bytes) -> None:
    """Put ``data`` at ``target`` so that it appears complete or not at all, and stays.

    Written to ``temp`` (a fresh name on the same file system), fsync'd, renamed over any file
    at ``target``, then the folder is fsync'd: once this returns the file is durable.
    """
    fill_new_file(os.open(temp, NEW_FILE_FLAGS, 0o600), temp, data)
    try:
        os.rename(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_dir(target.parent)


def replace_files_durably(files: list[tuple[Path, Path, bytes]]) -> None:
    """:func:`replace_file_durably` for many ``(temp, target, data)`` files, with one flush.

    Each file is written to its temp name; then the whole file system is flushed once
    (``syncfs``), every file renamed into place and each target folder fsync'd once. The same
    guarantee as one file at a time (complete or absent, durable on return) for one journal
    commit per batch instead of two per file. All temps share the first target's file system.
    """
    written: list[Path] = []
    try:
        for temp, _, data in files:
            fd = os.open(temp, NEW_FILE_FLAGS, 0o600)
            written.append(temp)
            _write_all(fd, data, sync=_syncfs is None)
        if files and _syncfs is not None:
            _flush_file_system(files[0][1].parent)
        for temp, target, _ in files:
            os.rename(temp, target)
    except BaseException:
        for temp in written:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        raise
    for folder in dict.fromkeys(target.parent for _, target, _ in files):
        fsync_dir(folder)


def _write_all(fd: int, data: bytes, *, sync: bool) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _flush_file_system(directory: Path) -> None:
    syncfs = _syncfs
    assert syncfs is not None
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(directory))
    finally:
        os.close(fd)


def fill_new_file(fd: int, path: Path, data: bytes, mode: int | None = None) -> None:
    """Write all of ``data`` to the just-created ``path`` (open as ``fd``) and fsync it; on any
    failure the file is removed, so no half-written file is ever left. Closes ``fd``."""
    try:
        if mode is not None:
            os.fchmod(fd, mode)  # the umask can only have removed bits; make the mode exact
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make a rename, link or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_error(path: Path, exc: OSError) -> InvalidInput:
    if isinstance(exc, FileExistsError):
        return InvalidInput(
            f"{path} already exists.", "Choose another file name; nothing was overwritten."
        )
    if isinstance(exc, FileNotFoundError):
        return InvalidInput(
            f"The folder {path.parent} does not exist.", "Create it first or choose another path."
        )
    if isinstance(exc, NotADirectoryError):
        return InvalidInput(
            f"{path.parent} is not a folder.", "Choose a path inside an existing folder."
        )
    if isinstance(exc, PermissionError):
        return InvalidInput(
            f"{path} cannot be written: permission denied.",
            "Choose a folder the user running docbridge may write to.",
        )
    if exc.errno == errno.ENOSPC:
        return InvalidInput(
            f"{path} cannot be written: the disk is full.",
            "Free disk space or choose another disk; nothing was written.",
        )
    return InvalidInput(
        f"{path} cannot be written ({exc.strerror or exc}).", "Choose another path."
    )


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)
_syncfs = getattr(_libc, "syncfs", None)
_renameat2 = getattr(_libc, "renameat2", None)


def rename_no_replace(
    src: str, dst: str, *, src_dir_fd: int | None = None, dst_dir_fd: int | None = None
) -> None:
    """Rename ``src`` to ``dst`` unless ``dst`` exists (then FileExistsError), atomically.

    A plain rename replaces what is there: an acknowledged upload still waiting under the same
    name would vanish unseen. Linux's renameat2(RENAME_NOREPLACE) refuses in the same step; on
    file systems without it, link + unlink does the same (the file has two names for a moment).
    """
    if _renameat2 is not None:
        result = _renameat2(
            _AT_FDCWD if src_dir_fd is None else src_dir_fd,
            os.fsencode(src),
            _AT_FDCWD if dst_dir_fd is None else dst_dir_fd,
            os.fsencode(dst),
            _RENAME_NOREPLACE,
        )
        if result == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), dst)
    os.link(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, follow_symlinks=False)
    os.unlink(src, dir_fd=src_dir_fd)
