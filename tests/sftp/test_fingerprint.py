"""The page's host key fingerprint, read without asyncssh, matches what SSH clients show."""

from __future__ import annotations

from pathlib import Path

import asyncssh
import pytest

from core.sftp.fingerprint import read_fingerprint


@pytest.mark.parametrize("algorithm", ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"])
def test_fingerprint_matches_asyncssh(tmp_path: Path, algorithm: str) -> None:
    key = asyncssh.generate_private_key(algorithm)
    path = tmp_path / "host_key"
    path.write_bytes(key.export_private_key("openssh"))
    assert read_fingerprint(path) == key.get_fingerprint("sha256")


def test_no_key_yet_is_none_and_a_damaged_one_is_refused(tmp_path: Path) -> None:
    assert read_fingerprint(tmp_path / "missing") is None
    damaged = tmp_path / "damaged"
    damaged.write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    with pytest.raises(ValueError):
        read_fingerprint(damaged)
