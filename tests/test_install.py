"""A non-editable install (``pip install .``, ``pipx install``) works on its own.

The wheel is built from this tree and installed into a fresh virtual environment in a temporary
directory; its commands then run from a folder where the source tree is not importable. The
project's dependencies are borrowed from this test's own environment through a path entry, so
no network is needed; the editable install living there is not picked up (its ``.pth`` files are
not processed for a plain path entry), which the test checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT


def run(*args: str | Path, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "DOCBRIDGE_HOME", "PYTHONHOME", "VIRTUAL_ENV")
    }
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``pip install .`` would build from this tree (built offline with hatchling)."""
    out = tmp_path_factory.mktemp("wheel")
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        out,
        PROJECT_ROOT,
        cwd=out,
    )
    (built,) = out.glob("docbridge-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel installed; returns its bin directory."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv.parent)
    python = venv / "bin" / "python"
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        wheel,
        cwd=venv.parent,
    )
    # Dependencies from this environment, after the wheel's own files (installed first, so pip
    # did not find this environment's editable docbridge and skip the wheel).
    purelib = run(
        python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=venv.parent
    ).stdout.strip()
    (Path(purelib) / "zz_test_dependencies.pth").write_text(
        sysconfig.get_path("purelib") + "\n", encoding="utf-8"
    )
    return venv / "bin"


def test_the_wheel_ships_the_schema_and_the_demo_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "core/data/envelope.xsd" in names
    assert "core/data/demo/account.json" in names
    shipped = {n for n in names if n.startswith("core/data/demo/envelopes/")}
    assert len(shipped) == len(list((PROJECT_ROOT / "data/demo/envelopes").glob("*.xml")))


def test_the_installed_command_runs_without_the_source_tree(
    installed: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run(
        installed / "python",
        "-c",
        "import core, tui; print(core.__file__, tui.__file__)",
        cwd=elsewhere,
    ).stdout
    assert str(PROJECT_ROOT) not in where, where

    version = run(installed / "docbridge", "--version", cwd=elsewhere).stdout
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert version == f"docbridge {project['project']['version']}\n"

    home = tmp_path / "home"
    init = run(installed / "docbridge", "--data-dir", home, "init", "--demo", cwd=elsewhere)
    assert "demo account loaded, 10 envelopes received" in init.stdout, init.stdout
    listed = run(
        installed / "docbridge", "--data-dir", home, "envelope", "list", "--json", cwd=elsewhere
    )
    assert '"status": "WAITING"' in listed.stdout
