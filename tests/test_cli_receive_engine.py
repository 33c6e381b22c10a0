"""``docbridge envelope receive`` with an engine running: handed to the engine through its local
socket (the command loads neither the parser nor the models), with the same answers as when it
receives on its own; a socket nobody serves is a command receiving on its own."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import struct
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from core.cli_quick import ENVELOPE_MAX_BYTES
from core.config import load_config
from core.data_dir import INTAKE_SOCKET
from core.engine.engine import Engine
from core.envelope_xml import DEFAULT_MAX_BYTES
from core.service import Service
from tests.conftest import run_cli
from tests.engine.conftest import FAST
from tests.test_cli_start import PURCHASING, fresh_envelope, loaded_after


@pytest.fixture
def limited(data_dir: Path) -> Path:
    """The demo data directory with a small upload limit (4,000 bytes), to compare that refusal
    too."""
    (data_dir / "docbridge.toml").write_text("[sftp]\nmax_file_size = 4000\n", encoding="utf-8")
    return data_dir


@asynccontextmanager
async def engine_of(data_dir: Path) -> AsyncIterator[Engine]:
    config = await asyncio.to_thread(load_config, data_dir)
    running = Engine(config, replace(FAST, run_sftp=False, run_as2=False))
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def cases(tmp_path: Path) -> list[list[str]]:
    """The command's answers worth comparing: received, received before, no such mailbox, not
    addressed to it, not envelope XML, over the upload limit, no file."""
    fresh = tmp_path / "fresh.xml"
    fresh.write_text(fresh_envelope("bbbbbbbb-1111-4222-8333-000000000001"), encoding="utf-8")
    other = tmp_path / "other.xml"
    other.write_text(fresh_envelope("bbbbbbbb-1111-4222-8333-000000000002"), encoding="utf-8")
    bad = tmp_path / "bad.xml"
    bad.write_text("<order/>", encoding="utf-8")
    large = tmp_path / "large.xml"
    large.write_bytes(b"<" + b" " * 5000)
    return [
        ["Purchasing", str(fresh)],
        ["Purchasing", str(fresh)],
        ["Nobody", str(fresh)],
        ["Logistics", str(other)],
        ["Purchasing", str(bad)],
        ["Purchasing", str(large)],
        ["Purchasing", str(tmp_path / "missing.xml")],
    ]


def answers(data_dir: Path, tmp_path: Path) -> list[tuple[int, str, str]]:
    results = []
    for words in cases(tmp_path):
        done = run_cli(data_dir, "envelope", "receive", *words)
        results.append((done.returncode, done.stdout, done.stderr))
    return results


async def test_receive_goes_through_the_engine_and_answers_as_the_command_alone(
    limited: Path, tmp_path: Path
) -> None:
    alone = tmp_path / "alone"
    await asyncio.to_thread(shutil.copytree, limited, alone)  # the same store, no engine
    files = tmp_path / "files"
    files.mkdir()
    expected = await asyncio.to_thread(answers, alone, files)
    assert expected[0] == (0, "bbbbbbbb-1111-4222-8333-000000000001\n", "")
    assert all(code == 1 and err.startswith("docbridge: ") for code, _, err in expected[1:])

    async with engine_of(limited):
        assert (limited / INTAKE_SOCKET).exists()
        through_engine = await asyncio.to_thread(answers, limited, files)
        source = files / "third.xml"
        source.write_text(fresh_envelope("bbbbbbbb-1111-4222-8333-000000000003"), encoding="utf-8")
        argv = ["--data-dir", str(limited), "envelope", "receive", "Purchasing", str(source)]
        code, heavy, output = await asyncio.to_thread(loaded_after, argv)
    assert through_engine == expected
    assert (code, output) == (0, "bbbbbbbb-1111-4222-8333-000000000003\n")
    assert not heavy & {"lxml", "core.models", "asyncio"}  # the engine parsed and stored it
    assert not (limited / INTAKE_SOCKET).exists()  # gone with the engine
    listed = await asyncio.to_thread(run_cli, limited, "envelope", "list", "--json")
    uuids = {item["uuid"] for item in json.loads(listed.stdout)["items"]}
    assert {"bbbbbbbb-1111-4222-8333-000000000001", "bbbbbbbb-1111-4222-8333-000000000003"} <= uuids


def test_a_socket_nobody_serves_is_a_command_receiving_on_its_own(
    data_dir: Path, tmp_path: Path
) -> None:
    """A killed engine leaves its socket behind: the command receives the envelope itself."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(data_dir / INTAKE_SOCKET))
    source = tmp_path / "fresh.xml"
    source.write_text(fresh_envelope("bbbbbbbb-1111-4222-8333-000000000009"), encoding="utf-8")
    done = run_cli(data_dir, "envelope", "receive", "Purchasing", str(source))
    assert (done.returncode, done.stdout) == (0, "bbbbbbbb-1111-4222-8333-000000000009\n")


def test_the_command_hands_over_at_most_what_the_parser_accepts() -> None:
    assert ENVELOPE_MAX_BYTES == DEFAULT_MAX_BYTES


def framed(header: bytes) -> bytes:
    return struct.pack(">I", len(header)) + header


def ask(path: Path, request: bytes) -> dict[str, object]:
    """Send one raw request to the engine's socket; its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as door:
        door.connect(str(path))
        door.sendall(request)
        door.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := door.recv(4096):
            answer += chunk
    return dict(json.loads(answer))


async def test_a_malformed_request_is_answered_and_the_engine_keeps_serving(
    data_dir: Path, tmp_path: Path
) -> None:
    path = data_dir / INTAKE_SOCKET
    async with engine_of(data_dir):
        for request in (
            framed(b"hello"),  # not JSON
            framed(b"{}"),  # no mailbox, no size
            framed(b'{"mailbox": "Purchasing", "size": 99999999999}'),  # over any envelope
            b"\xff\xff\xff\xff",  # a header too long to read
        ):
            assert await asyncio.to_thread(ask, path, request) == {"fallback": True}
        source = tmp_path / "fresh.xml"
        source.write_text(fresh_envelope("bbbbbbbb-1111-4222-8333-00000000000a"), encoding="utf-8")
        done = await asyncio.to_thread(
            run_cli, data_dir, "envelope", "receive", "Purchasing", str(source)
        )
    assert (done.returncode, done.stdout) == (0, "bbbbbbbb-1111-4222-8333-00000000000a\n")


def silent_engine(
    path: Path, data_dir: Path, store_first: bool
) -> tuple[threading.Thread, list[bytes]]:
    """An engine at ``path`` that takes one request, stores it if ``store_first`` (as the real
    engine would have just before dying) and closes without an answer."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    requests: list[bytes] = []

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                request = b""
                while chunk := conn.recv(65536):
                    request += chunk
                requests.append(request)
                if store_first:
                    (length,) = struct.unpack(">I", request[:4])
                    data = request[4 + length :]
                    store(data_dir, data)

    thread = threading.Thread(target=serve)
    thread.start()
    return thread, requests


def store(data_dir: Path, data: bytes) -> None:
    from core.envelope_xml import parse_envelope_xml
    from core.intake import receive_envelope
    from core.storage.connection import connect, write_transaction

    parsed = parse_envelope_xml(data)
    conn = connect(data_dir / "docbridge.sqlite3")
    try:
        with write_transaction(conn):
            receive_envelope(conn, PURCHASING, parsed.uuid or "", parsed, data)
    finally:
        conn.close()


@pytest.mark.parametrize("stored", [True, False], ids=["stored-then-died", "died-before"])
def test_an_engine_that_dies_without_answering_still_gives_one_receipt_and_exit_0(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], stored: bool
) -> None:
    """The engine got the envelope and went away before answering (maybe after storing it):
    the command receives it itself, and finding it stored, byte for byte, is its answer."""
    from core.cli import main

    thread, requests = silent_engine(data_dir / INTAKE_SOCKET, data_dir, store_first=stored)
    source = tmp_path / "fresh.xml"
    source.write_text(fresh_envelope("bbbbbbbb-1111-4222-8333-00000000000b"), encoding="utf-8")
    code = main(["--data-dir", str(data_dir), "envelope", "receive", "Purchasing", str(source)])
    thread.join(10)
    assert requests  # it was handed over
    assert (code, capsys.readouterr().out) == (0, "bbbbbbbb-1111-4222-8333-00000000000b\n")
    other = tmp_path / "other.xml"
    other.write_text(
        fresh_envelope("bbbbbbbb-1111-4222-8333-00000000000b").replace("<subject>", "<subject>X"),
        encoding="utf-8",
    )
    (data_dir / INTAKE_SOCKET).unlink()
    assert main(["--data-dir", str(data_dir), "envelope", "receive", "Purchasing", str(other)]) == 1
    assert "was already received" in capsys.readouterr().err  # another envelope, same uuid


def test_an_engine_that_never_answers_is_not_waited_for(
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core import cli_quick
    from core.cli import main

    monkeypatch.setattr(cli_quick, "ANSWER_TIMEOUT_S", 0.5)
    frozen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    frozen.bind(str(data_dir / INTAKE_SOCKET))
    frozen.listen(1)  # accepts into the backlog, never reads nor answers (a stopped process)
    try:
        source = tmp_path / "fresh.xml"
        source.write_text(fresh_envelope("bbbbbbbb-1111-4222-8333-00000000000c"), encoding="utf-8")
        argv = ["--data-dir", str(data_dir), "envelope", "receive", "Purchasing", str(source)]
        assert main(argv) == 0
    finally:
        frozen.close()
    assert capsys.readouterr().out == "bbbbbbbb-1111-4222-8333-00000000000c\n"


async def ask_async(path: Path, request: bytes) -> dict[str, object]:
    """:func:`ask` on the event loop (threads would starve the engine's own worker threads)."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(request)
        await writer.drain()
        writer.write_eof()
        return dict(json.loads(await reader.read()))
    finally:
        writer.close()


async def test_stopping_the_engine_answers_receipts_under_way_and_drops_silent_clients(
    data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A SIGTERM'd engine finishes what it is receiving (while its store is open) and drops a
    client that sends nothing, without a traceback in its log."""
    path = data_dir / INTAKE_SOCKET
    requests = []
    for number in range(30):
        data = fresh_envelope(f"bbbbbbbb-1111-4222-8333-{number:012d}").encode()
        header = json.dumps({"mailbox": "Purchasing", "size": len(data)}).encode()
        requests.append(framed(header) + data)
    async with engine_of(data_dir):
        idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        idle.connect(str(path))  # says nothing
        answers = [asyncio.create_task(ask_async(path, r)) for r in requests]
    idle.close()
    got = await asyncio.wait_for(asyncio.gather(*answers, return_exceptions=True), 30)
    for answer in got:  # answered, or cut off before it arrived (the command receives it)
        assert isinstance(answer, (dict, OSError, ValueError)), answer
        if isinstance(answer, dict):
            assert set(answer) <= {"uuid", "fallback"}, answer
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    answered = {a["uuid"] for a in got if isinstance(a, dict) and "uuid" in a}
    service = await Service.open(data_dir, actor="test")
    try:
        stored = {e.uuid for e in await service.list_envelopes(limit=1000)}
    finally:
        await service.close()
    assert answered and answered <= stored  # an answer means stored
