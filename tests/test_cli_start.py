"""Cold start of the quick commands (issue 11): ``docbridge status`` and ``envelope receive`` in
their plain spelling skip argparse, asyncio and the service, and answer as the full path does.

Behaviour only (which modules a command loads, what it prints, which lock it takes); the time
itself is measured by ``python -m bench cli_start``.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core import cli_commands
from core.cli import main
from core.cli_quick import recognise
from core.storage import lease
from core.storage.db import connect, write_transaction
from core.storage.schema import SCHEMA_VERSION, migrate
from tests.conftest import DOCBRIDGE, PROJECT_ROOT, run_cli

PURCHASING = "26c79f73-753d-4148-b26a-5d3e9abbc6fb"
DEMO_ENVELOPE = PROJECT_ROOT / "data/demo/envelopes/01-purchase-order-acme.xml"
HEAVY = (
    "argparse",
    "asyncio",
    "concurrent.futures",
    "core.models",
    "core.service",
    "cryptography",
    "dataclasses",
    "importlib.metadata",
    "lxml",
    "sqlite_utils",
    "tomllib",
    "typing",
)


def loaded_after(argv: list[str]) -> tuple[int, set[str], str]:
    """Exit code, the HEAVY modules loaded, and stdout of ``core.cli.main(argv)`` in a fresh
    interpreter (as the console script starts it: through ``tui.launcher``)."""
    probe = (
        "import sys, io, contextlib\n"
        "out = io.StringIO()\n"
        "from tui.launcher import cli_main\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    code = cli_main({argv!r})\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print(code); print(','.join(heavy)); print(out.getvalue(), end='')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    code, heavy, output = result.stdout.split("\n", 2)
    return int(code), set(filter(None, heavy.split(","))), output


def test_status_loads_neither_asyncio_nor_the_service_nor_the_models(data_dir: Path) -> None:
    code, heavy, output = loaded_after(["--data-dir", str(data_dir), "status"])
    assert code == 0
    assert "queue:      10 waiting" in output.splitlines()
    assert heavy == set()


def test_status_json_loads_json_but_nothing_heavy(data_dir: Path) -> None:
    code, heavy, output = loaded_after(["status", "--json", f"--data-dir={data_dir}"])
    assert code == 0
    assert json.loads(output)["queue_depth"] == 10
    assert heavy == set()


def test_the_probe_would_notice_the_full_path(data_dir: Path) -> None:
    """Guard against a probe that cannot fail: an abbreviated option goes through argparse and
    the service, and the probe sees them."""
    code, heavy, output = loaded_after(["--data-dir", str(data_dir), "status", "--js"])
    assert code == 0 and json.loads(output)["queue_depth"] == 10
    assert {"argparse", "asyncio", "core.service"} <= heavy


def test_receive_skips_argparse_and_the_event_loop(data_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "fresh.xml"
    source.write_text(fresh_envelope("aaaaaaaa-1111-4222-8333-444444444444"), encoding="utf-8")
    argv = ["--data-dir", str(data_dir), "envelope", "receive", "Purchasing", str(source)]
    code, heavy, output = loaded_after(argv)
    assert (code, output) == (0, "aaaaaaaa-1111-4222-8333-444444444444\n")
    assert "argparse" not in heavy and "sqlite_utils" not in heavy
    listed = run_cli(data_dir, "envelope", "list", "--json")
    assert listed.stdout and json.loads(listed.stdout)["items"][0]["uuid"] == (
        "aaaaaaaa-1111-4222-8333-444444444444"
    )


def fresh_envelope(uuid: str) -> str:
    text = DEMO_ENVELOPE.read_text(encoding="utf-8")
    start = text.index(' uuid="') + len(' uuid="')
    return text[:start] + uuid + text[start + 36 :]


# -- the same answers as the full path ------------------------------------------------------------


def both_paths(
    data_dir: Path, capsys: pytest.CaptureFixture[str], *words: str
) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """(exit code, stdout, stderr) of the quick path and of argparse + the service."""
    argv = ["--data-dir", str(data_dir), *words]
    assert recognise(argv) is not None
    quick = main(argv)
    quick_out = capsys.readouterr()
    args, resolved = cli_commands.parse(argv)
    full = cli_commands.run(args, resolved)
    full_out = capsys.readouterr()
    return (quick, quick_out.out, quick_out.err), (full, full_out.out, full_out.err)


def publish_running_engine(data_dir: Path) -> None:
    sessions = [{"mailbox": PURCHASING, "address": "192.0.2.7:50123", "since": "2030-01-01"}]
    conn = connect(data_dir / "docbridge.sqlite3")
    try:
        with write_transaction(conn):
            holder = lease.try_acquire(conn, "n", "t", os.getpid(), socket.gethostname(), 300)
            assert holder is None
            listeners = {"sftp": "127.0.0.1:2222", "as2": "127.0.0.1:4080"}
            lease.publish(conn, "n", "t", listeners, sessions)
    finally:
        conn.close()


@pytest.mark.parametrize("running", [False, True], ids=["stopped", "running"])
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_quick_status_prints_what_the_service_path_prints(
    data_dir: Path, capsys: pytest.CaptureFixture[str], running: bool, as_json: bool
) -> None:
    if running:
        publish_running_engine(data_dir)
    quick, full = both_paths(data_dir, capsys, "status", *(["--json"] if as_json else []))
    assert quick == full
    assert quick[0] == 0 and quick[1]
    if running and not as_json:
        assert f"            Purchasing ({PURCHASING}) from 192.0.2.7:50123" in quick[1]


def test_quick_receive_answers_and_refuses_as_the_service_path(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "first.xml", tmp_path / "second.xml"
    first.write_text(fresh_envelope("aaaaaaaa-1111-4222-8333-000000000001"), encoding="utf-8")
    second.write_text(fresh_envelope("aaaaaaaa-1111-4222-8333-000000000002"), encoding="utf-8")
    argv = ["--data-dir", str(data_dir), "envelope", "receive", "Purchasing"]
    assert main([*argv, str(first)]) == 0
    assert capsys.readouterr().out == "aaaaaaaa-1111-4222-8333-000000000001\n"
    args, resolved = cli_commands.parse([*argv, str(second)])
    assert cli_commands.run(args, resolved) == 0
    assert capsys.readouterr().out == "aaaaaaaa-1111-4222-8333-000000000002\n"
    for path in (first, second):  # the same refusal either way: received once
        assert main([*argv, str(path)]) == 1
        assert "was already received" in capsys.readouterr().err
    assert main([*argv[:-1], "Nobody", str(first)]) == 1
    assert "No mailbox with uuid or name 'Nobody'" in capsys.readouterr().err


def test_status_on_a_missing_data_dir_says_how_to_make_one_and_creates_nothing(
    tmp_path: Path,
) -> None:
    result = run_cli(tmp_path / "nothing-here", "status")
    assert result.returncode == 1
    assert "docbridge init" in result.stderr
    assert not (tmp_path / "nothing-here").exists()


def test_status_refuses_a_broken_config_as_before(data_dir: Path) -> None:
    (data_dir / "docbridge.toml").write_text("[sftp]\nport = 'x'\n", encoding="utf-8")
    result = run_cli(data_dir, "status")
    assert result.returncode == 1 and result.stdout == ""
    assert "sftp.port must be an integer" in result.stderr


def test_status_with_an_edited_config_reads_it_and_answers(data_dir: Path) -> None:
    (data_dir / "docbridge.toml").write_text("[sftp]\nport = 2022\n", encoding="utf-8")
    result = run_cli(data_dir, "status")
    assert result.returncode == 0, result.stderr
    assert "queue:      10 waiting" in result.stdout.splitlines()


def test_status_of_a_store_behind_migrates_it_through_the_full_path(data_dir: Path) -> None:
    conn = sqlite3.connect(data_dir / "docbridge.sqlite3")
    conn.execute("DROP TABLE singleton_leases")  # undo the last migration (v11)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    conn.close()
    result = run_cli(data_dir, "status")
    assert result.returncode == 0, result.stderr
    conn = sqlite3.connect(data_dir / "docbridge.sqlite3")
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--js"],  # argparse's abbreviation
        ["--data", "d", "status"],
        ["status", "-h"],
        ["--version"],
        ["--data-dir", "a", "--data-dir", "b", "status"],
        ["--data-dir", "--json", "status"],
        ["--json", "status"],
        ["status", "--json", "--json"],
        ["envelope", "receive", "Purchasing"],
        ["envelope", "receive", "-x", "file.xml"],
        ["envelope", "receive", "Purchasing", "file.xml", "--json"],
        ["mailbox", "list"],
        [],
    ],
)
def test_only_the_plain_spelling_takes_the_quick_path(argv: list[str]) -> None:
    assert recognise(argv) is None


def test_the_plain_spelling_is_recognised_wherever_data_dir_stands() -> None:
    assert recognise(["--data-dir", "d", "status"]) == ("d", ["status"])
    assert recognise(["status", "--data-dir=d", "--json"]) == ("d", ["status", "--json"])
    assert recognise(["envelope", "--data-dir", "d", "receive", "M", "f.xml"]) == (
        "d",
        ["envelope", "receive", "M", "f.xml"],
    )
    assert recognise(["status"]) == (None, ["status"])


# -- the schema check takes no lock ----------------------------------------------------------------


def test_a_current_schema_is_checked_without_waiting_for_the_write_lock(data_dir: Path) -> None:
    """Every connection used to take BEGIN IMMEDIATE to look at the version: a status or a
    receive waited behind whatever the engine was committing."""
    path = data_dir / "docbridge.sqlite3"
    writer = sqlite3.connect(path, isolation_level=None)
    reader = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")
        migrate(reader)  # returns at once; with the lock it raised "database is locked"
        assert not reader.in_transaction
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        reader.close()


def test_connecting_to_a_current_store_does_not_load_sqlite_utils(data_dir: Path) -> None:
    probe = (
        "import sys; from core.storage.db import connect; "
        f"connect({str(data_dir / 'docbridge.sqlite3')!r}).close(); "
        "print('sqlite_utils' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


def test_the_quick_commands_find_the_data_directory_where_the_full_path_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pathlib, the same directory as ``Path(...).expanduser().resolve()``: relative,
    ``~``, ``..``, a symbolic link, one that does not exist yet, and from the environment."""
    from core.data_dir import resolve_data_dir, resolve_data_dir_text

    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for given in ("real", "./link/", "~/link", "real/../link", "missing/deeper", str(real)):
        expected = str(Path(given).expanduser().resolve())
        assert resolve_data_dir_text(given) == expected == str(resolve_data_dir(given))
    monkeypatch.setenv("DOCBRIDGE_HOME", "~/link")
    assert resolve_data_dir_text(None) == str(real)
    monkeypatch.delenv("DOCBRIDGE_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "link"))
    assert resolve_data_dir_text(None) == str(real / "docbridge")
    monkeypatch.delenv("XDG_DATA_HOME")
    assert resolve_data_dir_text(None) == str(real.parent / ".local" / "share" / "docbridge")


@pytest.mark.parametrize(
    "argv",
    [["--data-dir", "", "status"], ["--data-dir=", "mailbox", "list"], ["--data-dir=  ", "status"]],
    ids=["quick", "argparse", "blank"],
)
def test_an_empty_data_dir_is_refused_not_taken_for_the_default(
    argv: list[str], tmp_path: Path
) -> None:
    """A script's unset variable must not act on the default data directory."""
    env = {**os.environ, "DOCBRIDGE_HOME": str(tmp_path / "default")}
    result = subprocess.run(
        [str(DOCBRIDGE), *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "docbridge: --data-dir is empty. Give the data directory's path, or leave the option out.\n"
    )
    assert not (tmp_path / "default").exists()


def test_a_misspelt_config_section_is_refused_by_status_and_the_full_path(
    data_dir: Path,
) -> None:
    """``[stfp]`` once left the admin's port and limits silently at their defaults."""
    with (data_dir / "docbridge.toml").open("a", encoding="utf-8") as config:
        config.write("\n[stfp]\nport = 2022\n")
    for words in (["status"], ["mailbox", "list"]):
        result = run_cli(data_dir, *words)
        assert result.returncode == 1
        assert "unknown section or setting [stfp]" in result.stderr
        assert "the sections are [sftp], [as2], [smtp], [conversion], [tui]" in result.stderr


def test_an_empty_file_name_says_no_file_was_given(data_dir: Path) -> None:
    result = run_cli(data_dir, "envelope", "receive", "Purchasing", "")
    assert result.returncode == 1
    assert result.stderr == "docbridge: No file given. Give the path of an envelope XML file.\n"
