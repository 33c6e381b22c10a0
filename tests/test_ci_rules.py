"""Rules for the test run itself: under CI, a missing system tool fails instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT


def run_openssh_tests(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    """Only the tests marked ``openssh``, on a PATH without sftp, ssh or sshpass."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(empty)
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/sftp", "-m", "openssh", "-q", "-rfEs"]
        + ["-p", "no:cacheprovider"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )


def summary(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.strip().splitlines()[-1]


def test_without_openssh_a_developer_run_skips_those_tests(tmp_path: Path) -> None:
    result = run_openssh_tests(tmp_path, ci=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipped" in summary(result)
    assert "passed" not in summary(result) and "error" not in summary(result)
    assert "needs sftp, scp, ssh, sshpass on PATH" in result.stdout


def test_without_openssh_a_ci_run_fails_those_tests(tmp_path: Path) -> None:
    result = run_openssh_tests(tmp_path, ci=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error" in summary(result)
    assert "skipped" not in summary(result) and "passed" not in summary(result)
    assert "CI is set and this test needs sftp, scp, ssh, sshpass on PATH" in result.stdout
