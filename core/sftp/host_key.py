"""The SFTP server's host key: generated once, private from the first byte, stable forever.

Customers pin the fingerprint, so the key must survive restarts and is never replaced behind
anyone's back. A new key is written with :func:`core.files.fill_new_file` to a temp file created
0600 (``O_EXCL``, never through a link), fsync'd, and published with ``link()``, which fails
instead of replacing a key another process wrote meanwhile; the folder is then fsync'd. So the key
file is complete or absent, even after a power cut.

Loose permissions are refused, not repaired, as OpenSSH's sshd refuses a host key others can
read: a key that was readable by others may already be copied, and only the admin can decide
whether to rotate it (every customer then accepts a new fingerprint). Tightening it silently
would hide that question. The same holds for a ``keys/`` folder others can enter, where they
could have swapped the key. A damaged key is refused too: generating a new one would lock every
customer out until they accept it, so that is the admin's call, with a hint on how.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
from pathlib import Path

import asyncssh

from core.errors import EngineUnavailable
from core.files import NEW_FILE_FLAGS, fill_new_file, fsync_dir

log = logging.getLogger("docbridge.sftp")

ED25519 = "ssh-ed25519"
RSA = "ssh-rsa"
RSA_BITS = 3072
MAX_KEY_BYTES = 64 * 1024
"""A 16,384-bit RSA key is ~12 KB in the OpenSSH format; anything larger is not a host key."""

_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP)


class HostKeyUnusable(EngineUnavailable):
    """The host key or its folder cannot be used as is; the SFTP server does not start."""


def load_or_create_host_key(path: Path, algorithm: str = ED25519) -> asyncssh.SSHKey:
    """Read the key at ``path``, generating it first if there is none. Blocking: use a thread.

    Raises :class:`HostKeyUnusable` when the folder or the key is accessible to other users,
    is not a regular file, or does not hold an OpenSSH private key.
    """
    _ensure_private_directory(path.parent)
    data = _read_key(path)
    if data is None:
        _create(path, algorithm)
        data = _read_key(path)
        if data is None:  # removed between our link and our read: someone is interfering
            raise HostKeyUnusable(
                f"The SFTP host key {path} disappeared right after it was written.",
                "Check what else manages that folder, then start again.",
            )
    try:
        return asyncssh.import_private_key(data)
    except ValueError as exc:  # asyncssh.KeyImportError is one
        raise HostKeyUnusable(
            f"The SFTP host key {path} is damaged or not an OpenSSH private key ({exc}).",
            f"Restore it from a backup. Only if there is none, move it away (mv {path} "
            f"{path}.damaged) and start again: a new key is generated, and every customer's "
            "client refuses the server until they accept the new fingerprint.",
        ) from exc


def fingerprint(key: asyncssh.SSHKey) -> str:
    """``SHA256:…`` exactly as ``ssh-keygen -lf`` and OpenSSH's prompts print it."""
    return key.get_fingerprint("sha256")


def _ensure_private_directory(directory: Path) -> None:
    """Create ``directory`` 0700 if missing; refuse one that other users can enter."""
    try:
        if not os.path.lexists(directory):
            directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # created meanwhile: checked below
                os.mkdir(directory, 0o700)
                fsync_dir(directory.parent)
    except OSError as exc:
        raise _unusable_dir(directory, exc) from exc
    try:
        info = os.lstat(directory)
    except OSError as exc:
        raise _unusable_dir(directory, exc) from exc
    if not stat.S_ISDIR(info.st_mode):
        raise HostKeyUnusable(
            f"{directory} must be a directory for the SFTP host key, not a file or a link.",
            f"Move it away (mv {directory} {directory}.old) so docbridge can create it 0700.",
        )
    _check_owner(directory, info)
    if stat.S_IMODE(info.st_mode) == 0o700:
        return
    if info.st_mode & 0o077:
        raise HostKeyUnusable(
            f"The key directory {directory} is accessible to other users "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); the SFTP server does not start.",
            f"Run 'chmod 700 {directory}'. Whoever could enter it may have read or replaced "
            "the private keys inside: rotate them if you cannot rule that out.",
        )
    # Stricter than 0700 (a umask of 0277 at creation): we must be able to write and enter it.
    os.chmod(directory, 0o700)


def _read_key(path: Path) -> bytes | None:
    """The key file's bytes (bounded, never through a link), or None when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _not_regular(path) from exc
        raise HostKeyUnusable(
            f"The SFTP host key {path} cannot be read ({exc.strerror or exc}).",
            "Make it readable by the user running docbridge (and by nobody else).",
        ) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(path)
        _check_owner(path, info)
        if info.st_mode & 0o077:
            raise HostKeyUnusable(
                f"The SFTP host key {path} is accessible to other users "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); the SFTP server does not start.",
                f"Run 'chmod 600 {path}'. If others could have copied it, rotate it: move it "
                "away, start again, and give customers the new fingerprint.",
            )
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(MAX_KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_BYTES:
        raise HostKeyUnusable(
            f"The SFTP host key {path} is larger than {MAX_KEY_BYTES // 1024} KB: not a host key.",
            "Restore the key from a backup.",
        )
    return data


def _check_owner(path: Path, info: os.stat_result) -> None:
    """As OpenSSH: a key (or its folder) must belong to the user running the server, or root."""
    if info.st_uid not in (os.geteuid(), 0):
        raise HostKeyUnusable(
            f"{path} belongs to user id {info.st_uid}, not to the user running docbridge.",
            f"Run 'chown {os.geteuid()} {path}' as root, or start docbridge as its owner.",
        )


def _create(path: Path, algorithm: str) -> None:
    if algorithm == RSA:
        key = asyncssh.generate_private_key(RSA, key_size=RSA_BITS)
    else:
        key = asyncssh.generate_private_key(algorithm)
    data = key.export_private_key("openssh")
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fill_new_file(os.open(temp, NEW_FILE_FLAGS, 0o600), temp, data, mode=0o600)
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another process won the race: keep its key, customers may have pinned it
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            # No hard links on this file system. One engine per data directory (its lease)
            # is the only writer, so checking for a key before the rename is enough here.
            if not os.path.lexists(path):
                os.rename(temp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        raise HostKeyUnusable(
            f"The SFTP host key {path} cannot be written ({exc.strerror or exc}).",
            f"Check that {path.parent} is writable by the user running docbridge and that "
            "its disk has space; nothing was written.",
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)
    log.info("generated SFTP host key %s (%s)", path, algorithm)


def _not_regular(path: Path) -> HostKeyUnusable:
    return HostKeyUnusable(
        f"The SFTP host key {path} must be a regular file, not a link or a device.",
        "Replace it with the key file itself (restore it from a backup), keeping mode 0600.",
    )


def _unusable_dir(directory: Path, exc: OSError) -> HostKeyUnusable:
    return HostKeyUnusable(
        f"The key directory {directory} cannot be created or read ({exc.strerror or exc}).",
        "Check that the data directory is writable by the user running docbridge.",
    )
