"""The SFTP server's host key: generated once, private from the first byte, stable forever.

Customers pin the fingerprint, so the key must survive restarts, and a second process starting
at the same moment must end up with the same key rather than overwrite it. The key is written to
a private temp file (``O_EXCL``, mode 0600, so it is never readable by others even for an
instant) and published with ``link()``, which fails instead of replacing an existing key.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from pathlib import Path

import asyncssh

log = logging.getLogger("docbridge.sftp")

ED25519 = "ssh-ed25519"
RSA = "ssh-rsa"
RSA_BITS = 3072


def load_or_create_host_key(path: Path, algorithm: str = ED25519) -> asyncssh.SSHKey:
    """Read the key at ``path``, generating it first if there is none. Blocking: use a thread."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        _create(path, algorithm)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        raise OSError(f"{path} must be a regular file, not a link")
    if info.st_mode & 0o077:
        log.warning("host key %s was readable by others; restricting it to 0600", path)
        os.chmod(path, 0o600)
    return asyncssh.import_private_key(path.read_bytes())


def fingerprint(key: asyncssh.SSHKey) -> str:
    """``SHA256:…`` exactly as ``ssh-keygen -lf`` and OpenSSH's prompts print it."""
    return key.get_fingerprint("sha256")


def _create(path: Path, algorithm: str) -> None:
    if algorithm == RSA:
        key = asyncssh.generate_private_key(RSA, key_size=RSA_BITS)
    else:
        key = asyncssh.generate_private_key(algorithm)
    data = key.export_private_key("openssh")
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process won: keep its key
            os.link(temp, path)
    finally:
        os.unlink(temp)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
