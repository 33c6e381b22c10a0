"""The scriptable CLI, run as the real console script against a real data directory."""

from __future__ import annotations

import importlib.metadata
import json
import sqlite3
import tomllib
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, SHARED, run_cli

DEMO_ENVELOPE = (
    Path(__file__).resolve().parents[1] / "data/demo/envelopes/01-purchase-order-acme.xml"
)
PURCHASING = "26c79f73-753d-4148-b26a-5d3e9abbc6fb"


def store_snapshot(data_dir: Path) -> list[tuple[object, ...]]:
    """Every row of every table: 'nothing changed' means this is equal before and after."""
    conn = sqlite3.connect(data_dir / "docbridge.sqlite3")
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows: list[tuple[object, ...]] = []
        for table in sorted(tables):
            rows += [(table, *row) for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1")]
        return rows
    finally:
        conn.close()


def test_init_demo_then_mailbox_list_json_lists_three_mailboxes(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    init = run_cli(home, "init", "--demo")
    assert init.returncode == 0, init.stderr
    assert "10 envelopes received" in init.stdout
    listed = run_cli(home, "mailbox", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    names = [m["name"] for m in json.loads(listed.stdout)]
    assert names == ["Purchasing", "Accounts Payable", "Logistics"]


def test_init_twice_changes_nothing(data_dir: Path) -> None:
    before = store_snapshot(data_dir)
    again = run_cli(data_dir, "init", "--demo")
    assert again.returncode == 0
    assert "already present" in again.stdout
    assert store_snapshot(data_dir) == before


def test_commands_on_a_missing_data_dir_say_how_to_create_one(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "nothing-here", "mailbox", "list")
    assert result.returncode == 1
    assert "docbridge init" in result.stderr
    assert not (tmp_path / "nothing-here").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--notify-email", "not-an-address"], ["--notify-email: 'not-an-address' is not a valid"]),
        (
            ["--default-rule", "reject", "--reject-reason", "abc"],
            ["--reject-reason: Reject reason must be 5-5000 characters (it has 3)"],
        ),
        (["--default-rule", "notify"], ["--notify-email: Enter the email address"]),
        (["--protocol", "ftp"], ["--protocol: Unknown protocol 'ftp'"]),
        (
            ["--protocol", "ftp", "--notify-email", "x@", "--default-rule", "reject"],
            ["--protocol:", "--notify-email:", "--reject-reason:"],
        ),
    ],
)
def test_integration_set_rejects_bad_values_one_error_per_field(
    data_dir: Path, args: list[str], expected: list[str]
) -> None:
    before = store_snapshot(data_dir)
    result = run_cli(data_dir, "integration", "set", "Purchasing", "--enable", *args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(expected), result.stderr
    for fragment in expected:
        assert sum(fragment in line for line in lines) == 1, (fragment, lines)
    assert store_snapshot(data_dir) == before


def test_integration_set_saves_and_shows_settings(data_dir: Path) -> None:
    result = run_cli(
        data_dir,
        "integration",
        "set",
        "purchasing",
        "--enable",
        "--default-rule",
        "notify",
        "--notify-email",
        "ops@example.com",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    saved = json.loads(result.stdout)
    assert saved["enabled"] is True
    assert len(saved["new_password"]) >= 22  # first Save generates the SFTP password
    shown = json.loads(run_cli(data_dir, "integration", "show", "Purchasing", "--json").stdout)
    assert shown["default_rule"] == "notify"
    assert shown["notify_email"] == "ops@example.com"
    assert shown["sftp"]["password_set"] is True
    assert "new_password" not in shown and saved["new_password"] not in json.dumps(shown)


def test_password_reset_prints_password_that_is_stored_nowhere_in_clear(data_dir: Path) -> None:
    result = run_cli(data_dir, "password", "reset", "Logistics")
    assert result.returncode == 0, result.stderr
    password = result.stdout.strip()
    assert len(result.stdout.splitlines()) == 1 and len(password) >= 22
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
    conn = sqlite3.connect(data_dir / "docbridge.sqlite3")
    (stored,) = conn.execute(
        "SELECT password_hash FROM integrations i JOIN mailboxes m ON m.uuid = i.mailbox_uuid "
        "WHERE m.name = 'Logistics'"
    ).fetchone()
    conn.close()
    assert stored.startswith("$argon2id$")


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE envelope [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
]>
<envelope templateUuid="00000000-0000-4000-8000-000000000000" templateVersion="1">
 <info><subject>&f;</subject></info>
</envelope>
"""


def external_entity(target: Path) -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE envelope [<!ENTITY x SYSTEM "file://{target}">]>\n'
        '<envelope templateUuid="00000000-0000-4000-8000-000000000000" templateVersion="1">'
        "<info><subject>&x;</subject></info></envelope>"
    ).encode()


def unknown_template() -> bytes:
    text = DEMO_ENVELOPE.read_text(encoding="utf-8")
    start = text.index('templateUuid="') + len('templateUuid="')
    text = text[:start] + "11111111-2222-4333-8444-555555555555" + text[start + 36 :]
    return text.replace('uuid="', 'uuid="', 1).encode()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("malformed", b"<envelope><info>", "not well-formed"),
        ("bomb", BOMB, "DOCTYPE"),
        ("external", None, "DOCTYPE"),
        ("unknown-template", None, "Unknown template 11111111-2222-4333-8444-555555555555"),
    ],
)
def test_envelope_receive_refuses_bad_xml_and_stores_nothing(
    data_dir: Path, tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    if name == "external":
        content = external_entity(secret)
    elif name == "unknown-template":
        content = unknown_template()
    assert content is not None
    source = tmp_path / f"{name}.xml"
    source.write_bytes(content)
    before = store_snapshot(data_dir)
    result = run_cli(data_dir, "envelope", "receive", "Purchasing", str(source), timeout=10)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert "TOP-SECRET-CONTENT" not in result.stderr + result.stdout
    assert store_snapshot(data_dir) == before


def test_envelope_receive_prints_uuid_and_list_shows_it(data_dir: Path, tmp_path: Path) -> None:
    text = DEMO_ENVELOPE.read_text(encoding="utf-8")
    start = text.index(' uuid="') + len(' uuid="')
    fresh = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
    source = tmp_path / "new.xml"
    source.write_text(text[:start] + fresh + text[start + 36 :], encoding="utf-8")
    result = run_cli(data_dir, "envelope", "receive", "Purchasing", str(source))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == fresh
    listed = json.loads(
        run_cli(data_dir, "envelope", "list", "--mailbox", "Purchasing", "--json").stdout
    )["items"]
    assert listed[0]["uuid"] == fresh  # newest first
    assert listed[0]["status"] == "WAITING"
    again = run_cli(data_dir, "envelope", "receive", "Purchasing", str(source))
    assert again.returncode == 1 and "already received" in again.stderr


def test_envelope_list_filters_by_status_and_refuses_unknown_status(data_dir: Path) -> None:
    waiting = json.loads(
        run_cli(data_dir, "envelope", "list", "--status", "waiting", "--json").stdout
    )
    assert waiting["total"] == len(waiting["items"]) == 10
    bad = run_cli(data_dir, "envelope", "list", "--status", "LOST")
    assert bad.returncode == 1 and "Unknown status 'LOST'" in bad.stderr


def test_shared_interop_folder_is_present() -> None:
    """CI lays shared/ beside the project; the AS2 interop tests depend on it."""
    assert (SHARED / "interop" / "mendelson" / "payload.txt").is_file()


def test_the_store_and_its_wal_files_are_private(tmp_path: Path) -> None:
    """The database holds password hashes and the audit log: 0600, WAL and SHM included."""
    home = tmp_path / "home"
    assert run_cli(home, "init", "--demo").returncode == 0
    conn = sqlite3.connect(home / "docbridge.sqlite3")  # keeps -wal/-shm in place while open
    try:
        conn.execute("SELECT count(*) FROM envelopes").fetchone()
        files = sorted(home.glob("docbridge.sqlite3*"))
        assert [f.name for f in files][:1] == ["docbridge.sqlite3"]
        for file in files:
            assert file.stat().st_mode & 0o777 == 0o600, file.name
    finally:
        conn.close()


def test_a_closed_pipe_ends_quietly(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``docbridge envelope list | head``: no BrokenPipe traceback when the reader goes away."""
    import builtins

    from core.cli import main

    def closed_pipe(*args: object, **kwargs: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(builtins, "print", closed_pipe)
    code = main(["--data-dir", str(data_dir), "envelope", "list"])
    monkeypatch.undo()
    assert code == 141
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["device", "fifo", "too big", "directory"])
def test_envelope_receive_reads_only_a_bounded_regular_file(
    data_dir: Path, tmp_path: Path, kind: str
) -> None:
    """/dev/zero once grew the process to gigabytes and a FIFO blocked it forever."""
    import os

    target = {"device": Path("/dev/zero"), "directory": tmp_path}.get(kind, tmp_path / kind)
    if kind == "fifo":
        os.mkfifo(target)
    if kind == "too big":
        with target.open("wb") as file:
            file.truncate(100 * 1024 * 1024 + 1)  # sparse: over the upload limit and any envelope
    result = run_cli(data_dir, "envelope", "receive", "Purchasing", str(target), timeout=20)
    assert result.returncode == 1
    expected = {
        "device": "is not a regular file",
        "fifo": "is not a regular file",
        "too big": "is larger than 20 MB",  # the most an envelope can be
        "directory": "is a directory",
    }[kind]
    assert expected in result.stderr and "Traceback" not in result.stderr


def pyproject_version() -> str:
    text = (PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return str(tomllib.loads(text)["project"]["version"])


def test_version_names_the_installed_package(tmp_path: Path) -> None:
    """A bug report starts with the version; asking for it needs no data directory."""
    result = run_cli(tmp_path / "unused", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"docbridge {importlib.metadata.version('docbridge')}\n"
    assert importlib.metadata.version("docbridge") == pyproject_version()
    assert not (tmp_path / "unused").exists()


def test_version_falls_back_to_pyproject_when_the_package_is_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core import cli

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert cli.package_version() == pyproject_version()


def add_envelopes(data_dir: Path, count: int, mailbox: str = PURCHASING) -> list[str]:
    """``count`` incoming envelopes stored at once (one transaction), oldest first; their uuids."""
    from core.models import Envelope, EnvelopeDirection, EnvelopeStatus
    from core.storage import envelopes
    from core.storage.db import connect, write_transaction

    uuids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(count)]
    conn = connect(data_dir / "docbridge.sqlite3")
    try:
        with write_transaction(conn):
            for n, uuid in enumerate(uuids):
                envelope = Envelope(
                    uuid=uuid,
                    mailbox_uuid=mailbox,
                    direction=EnvelopeDirection.INCOMING,
                    template_uuid="9631509a-3c58-465e-a541-d79151dedc11",
                    template_version=1,
                    subject=f"Bulk {n}",
                    sender_mailbox="0dbfa4db-e126-445e-a164-dac5593117c1",
                    recipient_mailbox=mailbox,
                    status=EnvelopeStatus.WAITING,
                    received_at=f"2030-01-01T00:00:00.{n:06d}Z",
                )
                envelopes.insert_envelope(conn, envelope, "<envelope/>", [])
    finally:
        conn.close()
    return uuids


def test_envelope_list_pages_newest_first_past_a_thousand(data_dir: Path) -> None:
    """It used to show the oldest 1,000 rows and say nothing about the rest."""
    bulk = add_envelopes(data_dir, 1234)
    total = 10 + len(bulk)  # the demo's ten came first

    first = run_cli(data_dir, "envelope", "list")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 100
    assert [line.split()[0] for line in lines] == bulk[::-1][:100]
    assert first.stderr == (
        f"Showing 1-100 of {total:,} envelopes (newest first); --offset 100 for more.\n"
    )

    last = run_cli(data_dir, "envelope", "list", "--offset", "1200", "--limit", "100")
    assert last.returncode == 0, last.stderr
    assert len(last.stdout.splitlines()) == total - 1200
    assert last.stderr == f"Showing 1,201-{total:,} of {total:,} envelopes (newest first).\n"

    page = json.loads(
        run_cli(data_dir, "envelope", "list", "--json", "--limit", "3", "--offset", "1").stdout
    )
    assert (page["total"], page["limit"], page["offset"]) == (total, 3, 1)
    assert [e["uuid"] for e in page["items"]] == bulk[::-1][1:4]

    beyond = run_cli(data_dir, "envelope", "list", "--offset", "5000")
    assert beyond.returncode == 0 and beyond.stdout == ""
    assert f"of {total:,} envelopes" in beyond.stderr and "--offset 5000" in beyond.stderr

    counted = run_cli(data_dir, "envelope", "list", "--limit", "0")
    assert counted.stdout == ""
    assert counted.stderr == f"{total:,} envelopes match (--limit 0 lists none).\n"

    filtered = json.loads(
        run_cli(data_dir, "envelope", "list", "--mailbox", "Logistics", "--json").stdout
    )
    assert filtered["total"] == 3 and len(filtered["items"]) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "-1"], "--limit: '-1' is not a whole number from 0 to 1,000,000"),
        (["--limit", "ten"], "--limit: 'ten' is not a whole number from 0 to 1,000,000"),
        (["--offset", "-5"], "--offset: '-5' is not a whole number of 0 or more"),
    ],
)
def test_envelope_list_refuses_a_bad_page(data_dir: Path, args: list[str], message: str) -> None:
    result = run_cli(data_dir, "envelope", "list", *args)
    assert result.returncode == 2 and result.stdout == ""
    assert message in result.stderr


def test_status_text_lists_the_sftp_sessions_as_json_does(data_dir: Path) -> None:
    """Sessions were only in --json; an operator reading the text saw none."""
    import os
    import socket

    from core.storage import lease
    from core.storage.db import connect, write_transaction

    sessions = [
        {"mailbox": PURCHASING, "address": "192.0.2.7:50123", "since": "2030-01-01T10:00:00+00:00"},
        {"mailbox": PURCHASING, "address": "192.0.2.8:50999", "since": "2030-01-01T10:05:00+00:00"},
    ]
    conn = connect(data_dir / "docbridge.sqlite3")
    try:
        with write_transaction(conn):
            host = socket.gethostname()
            holder = lease.try_acquire(conn, "node", "test-engine", os.getpid(), host, 300)
            assert holder is None  # taken
            lease.publish(conn, "node", "test-engine", {"sftp": "127.0.0.1:2222"}, sessions)
    finally:
        conn.close()

    as_json = json.loads(run_cli(data_dir, "status", "--json").stdout)
    assert as_json["sessions"] == [dict(session, node="node") for session in sessions]
    text = run_cli(data_dir, "status")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert "sessions:   2" in lines
    for session in sessions:
        where = f"from {session['address']} since {session['since']}"
        expected = f"            Purchasing ({PURCHASING}) {where}"
        assert expected in lines, text.stdout


FORGED = "docbridge: all good, nothing to see"


def fresh_envelope(**replacements: str) -> str:
    """The first demo envelope under a new uuid, with text replaced."""
    text = DEMO_ENVELOPE.read_text(encoding="utf-8")
    start = text.index(' uuid="') + len(' uuid="')
    text = text[:start] + "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff" + text[start + 36 :]
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("mailbox", r"No mailbox with uuid or name 'Nope\r\ndocbridge: all good"),
        ("status", r"Unknown status 'x\ndocbridge: all good"),
        ("email", r"--notify-email: 'ops\r\ndocbridge: all good, nothing to see\x1b[2K@"),
        ("file name", r"there\ndocbridge: all good, nothing to see.xml"),
        ("xml field", r"The value 'order\r\ndocbridge: all good, nothing to see' is not accepted"),
    ],
)
def test_control_characters_in_input_never_forge_an_error_line(
    data_dir: Path, tmp_path: Path, case: str, expected: str
) -> None:
    """A value with CR/LF or an escape sequence is shown escaped, on the error's one line."""
    evil = f"\r\n{FORGED}"
    args = {
        "mailbox": ["integration", "show", f"Nope{evil}"],
        "status": ["envelope", "list", "--status", f"x\n{FORGED}"],
        "email": [
            "integration",
            "set",
            "Purchasing",
            "--notify-email",
            f"ops{evil}\x1b[2K@example.com",
        ],
        "file name": ["envelope", "receive", "Purchasing", str(tmp_path / f"there\n{FORGED}.xml")],
        "xml field": ["envelope", "receive", "Purchasing", str(tmp_path / "field.xml")],
    }[case]
    (tmp_path / "field.xml").write_text(
        fresh_envelope(**{'<document id="order">': f'<document id="order&#13;&#10;{FORGED}">'}),
        encoding="utf-8",
    )
    before = store_snapshot(data_dir)
    result = run_cli(data_dir, *args)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    assert "\r" not in result.stderr and "\x1b" not in result.stderr
    assert expected in result.stderr
    assert store_snapshot(data_dir) == before


def test_control_characters_in_stored_values_never_forge_a_listed_row(
    data_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "subject.xml"
    subject = "Purchase order PO-2024-0117"
    source.write_text(
        fresh_envelope(**{subject: "Two&#13;&#10;00000000-0000-4000-8000-000000000000  WAITING"}),
        encoding="utf-8",
    )
    assert run_cli(data_dir, "envelope", "receive", "Purchasing", str(source)).returncode == 0
    listed = run_cli(data_dir, "envelope", "list", "--limit", "1")
    assert len(listed.stdout.splitlines()) == 1 and "\r" not in listed.stdout
    assert listed.stdout.rstrip("\n").endswith(
        r"Two\r\n00000000-0000-4000-8000-000000000000  WAITING"
    )
    as_json = json.loads(run_cli(data_dir, "envelope", "list", "--json", "--limit", "1").stdout)
    assert as_json["items"][0]["subject"].startswith("Two\r\n")  # JSON keeps the value itself


def test_control_characters_in_an_unknown_argument_never_forge_a_usage_error(
    data_dir: Path,
) -> None:
    result = run_cli(data_dir, "mailbox", "list", f"extra\r\n{FORGED}\x1b[2K")
    assert result.returncode == 2 and result.stdout == ""
    assert "\r" not in result.stderr and "\x1b" not in result.stderr
    lines = result.stderr.splitlines()
    assert not any(line.startswith(FORGED) for line in lines), lines
    assert lines[-1] == (rf"docbridge: error: unrecognized arguments: extra\r\n{FORGED}\x1b[2K")


ACCOUNTS_PAYABLE = "a241b640-05fa-41d9-ba01-dd083bca8dac"
ACME = "0dbfa4db-e126-445e-a164-dac5593117c1"


@pytest.mark.parametrize(
    ("roles", "found"),
    [
        (  # addressed to another mailbox of the account
            f'<role id="sender" mailboxUuid="{ACME}"/>'
            f'<role id="recipient" mailboxUuid="{ACCOUNTS_PAYABLE}"/>',
            f"sender={ACME}, recipient={ACCOUNTS_PAYABLE}",
        ),
        (  # the mailbox plays the sender: it would receive what it "sent"
            f'<role id="sender" mailboxUuid="{PURCHASING}"/>'
            f'<role id="recipient" mailboxUuid="{ACME}"/>',
            f"sender={PURCHASING}, recipient={ACME}",
        ),
        (  # named, but not as recipient
            f'<role id="sender" mailboxUuid="{ACME}"/>'
            f'<role id="buyer" mailboxUuid="{PURCHASING}"/>',
            f"sender={ACME}, buyer={PURCHASING}",
        ),
    ],
    ids=["other-recipient", "as-sender", "no-recipient-role"],
)
def test_envelope_receive_refuses_an_envelope_not_addressed_to_the_mailbox(
    data_dir: Path, tmp_path: Path, roles: str, found: str
) -> None:
    """Defect 6: 'envelope receive MB' took any envelope, whoever it named as recipient."""
    demo_roles = (
        f'<role id="sender" mailboxUuid="{ACME}"/>\n'
        f'      <role id="recipient" mailboxUuid="{PURCHASING}"/>'
    )
    source = tmp_path / "spoofed.xml"
    source.write_text(fresh_envelope(**{demo_roles: roles}), encoding="utf-8")
    before = store_snapshot(data_dir)
    result = run_cli(data_dir, "envelope", "receive", "Purchasing", str(source))
    assert result.returncode == 1, result.stdout
    assert result.stderr.count("\n") == 1
    assert "not addressed to mailbox Purchasing" in result.stderr
    assert f"its roles are {found}" in result.stderr
    assert f'<role id="recipient" mailboxUuid="{PURCHASING}"/>' in result.stderr
    assert store_snapshot(data_dir) == before


def test_status_lists_every_node_and_marks_a_silent_one_gone(data_dir: Path) -> None:
    """Several nodes on one store: each with its listeners, and one that stopped renewing its
    lease shown as gone with its last heartbeat, in text and JSON."""
    import os

    from core.storage import lease
    from core.storage.db import connect, write_transaction

    conn = connect(data_dir / "docbridge.sqlite3")
    try:
        with write_transaction(conn):
            lease.try_acquire(conn, "gw1", "gw1-owner", os.getpid(), "gw1.example", 300)
            lease.publish(conn, "gw1", "gw1-owner", {"sftp": "0.0.0.0:2222"}, [])
            lease.try_acquire(conn, "gw2", "gw2-owner", 4242, "gw2.example", -1)  # ran out
    finally:
        conn.close()
    text = run_cli(data_dir, "status")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert any(line.startswith("node:       gw1: running (pid ") for line in lines), lines
    assert "listener:   gw1 sftp 0.0.0.0:2222" in lines
    assert any(
        line.startswith("node:       gw2: gone (last heartbeat ")
        and "pid 4242 on gw2.example" in line
        for line in lines
    ), lines
    as_json = json.loads(run_cli(data_dir, "status", "--json").stdout)
    assert [(n["name"], n["running"]) for n in as_json["nodes"]] == [("gw1", True), ("gw2", False)]
    assert as_json["running"] is True and as_json["pid"] == os.getpid()
