"""How an SFTP session ends: the exit status clients see, and which uploads count as finished.

A raw SFTP client drives the server packet by packet, so a test can end its input (SSH EOF)
with a file still open, which neither asyncssh's client nor OpenSSH's sftp does on purpose.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import types
from collections.abc import Callable

import asyncssh
import pytest
from asyncssh.constants import (
    FX_OK,
    FXF_CREAT,
    FXF_TRUNC,
    FXF_WRITE,
    FXP_CLOSE,
    FXP_HANDLE,
    FXP_INIT,
    FXP_OPEN,
    FXP_STATUS,
    FXP_VERSION,
    FXP_WRITE,
)
from asyncssh.sftp import SFTPServerHandler

import core.sftp.session
from core.sftp.close_hook import UnsupportedAsyncssh
from tests.sftp.conftest import MAILBOX_A, Harness, HarnessFactory


def _u32(value: int) -> bytes:
    return struct.pack(">I", value)


def _string(value: bytes) -> bytes:
    return _u32(len(value)) + value


class RawSftp:
    """The client side of SFTP v3 over one SSH channel, one request at a time."""

    def __init__(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        self.process = process
        self._request_id = 0

    @classmethod
    async def start(cls, conn: asyncssh.SSHClientConnection) -> RawSftp:
        process = await conn.create_process(subsystem="sftp", encoding=None)
        raw = cls(process)
        raw._send(bytes([FXP_INIT]) + _u32(3))
        kind, _ = await raw._receive()
        assert kind == FXP_VERSION
        return raw

    def _send(self, body: bytes) -> None:
        self.process.stdin.write(_u32(len(body)) + body)

    async def _receive(self) -> tuple[int, bytes]:
        (length,) = struct.unpack(">I", await self.process.stdout.readexactly(4))
        body = await self.process.stdout.readexactly(length)
        return body[0], body[1:]

    async def _request(self, kind: int, *fields: bytes) -> tuple[int, bytes]:
        self._request_id += 1
        self._send(bytes([kind]) + _u32(self._request_id) + b"".join(fields))
        reply, payload = await self._receive()
        assert payload[:4] == _u32(self._request_id)
        return reply, payload[4:]

    async def _ok(self, kind: int, *fields: bytes) -> None:
        reply, payload = await self._request(kind, *fields)
        assert reply == FXP_STATUS and payload[:4] == _u32(FX_OK), payload

    async def open_for_upload(self, path: str) -> bytes:
        flags = _u32(FXF_WRITE | FXF_CREAT | FXF_TRUNC)
        reply, payload = await self._request(FXP_OPEN, _string(path.encode()), flags, _u32(0))
        assert reply == FXP_HANDLE, payload
        (length,) = struct.unpack(">I", payload[:4])
        return payload[4 : 4 + length]

    async def write(self, handle: bytes, offset: int, data: bytes) -> None:
        await self._ok(FXP_WRITE, _string(handle), struct.pack(">Q", offset), _string(data))

    async def close(self, handle: bytes) -> None:
        await self._ok(FXP_CLOSE, _string(handle))

    async def end(self) -> int | None:
        """End the input (SSH EOF, as ``ssh`` does when the program feeding it exits) and
        return the exit status the server reported, or None if it reported none."""
        self.process.stdin.write_eof()
        completed = await asyncio.wait_for(self.process.wait(), timeout=10)
        return completed.exit_status


async def test_a_session_that_ends_normally_reports_exit_status_0(harness: Harness) -> None:
    async with await harness.connect() as conn:
        sftp = await RawSftp.start(conn)
        handle = await sftp.open_for_upload("/outbox/done.xml")
        await sftp.write(handle, 0, b"<envelope/>")
        await sftp.close(handle)
        assert await sftp.end() == 0
        idle = await RawSftp.start(conn)  # a session that transferred nothing ends well too
        assert await idle.end() == 0
    assert harness.visible_files() == ["outbox/done.xml"]
    assert harness.backend.arrived == [(MAILBOX_A, "outbox", "done.xml")]


async def test_input_ending_with_an_upload_open_discards_it_and_reports_failure(
    harness: Harness,
) -> None:
    """The channel is still open (only the client's input ended) when asyncssh closes the
    handle: this is not the client's FXP_CLOSE, and the upload is incomplete."""
    async with await harness.connect() as conn:
        sftp = await RawSftp.start(conn)
        handle = await sftp.open_for_upload("/outbox/cut.xml")
        await sftp.write(handle, 0, b"<envelope>")
        assert await sftp.end() == 1
    assert harness.visible_files() == []
    assert harness.backend.arrived == []


async def test_a_dropped_session_is_listed_until_its_cut_upload_is_removed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the server lists no session of a mailbox, nothing of its cut uploads is left in
    staging: whoever waits for the sessions to end (tests, a password reset) needs no sleep."""
    held = threading.Event()
    removing = threading.Event()
    remove_temp = core.sftp.session._remove_temp

    def slow_remove(upload: object) -> None:  # runs in a thread, like the real one
        removing.set()
        held.wait(10)
        remove_temp(upload)  # type: ignore[arg-type]

    monkeypatch.setattr(core.sftp.session, "_remove_temp", slow_remove)
    conn = await harness.connect()
    sftp = await conn.start_sftp_client()
    remote = await sftp.open("/outbox/cut.xml", "wb")
    await remote.write(b"<envelope>")
    conn.abort()
    assert await asyncio.to_thread(removing.wait, 10)
    assert [s.mailbox_uuid for s in harness.server.sessions()] == [MAILBOX_A]
    assert len(await asyncio.to_thread(_staged, harness)) == 1
    held.set()
    await harness.wait_for_no_sessions()
    assert await asyncio.to_thread(_staged, harness) == []
    assert harness.backend.arrived == []


def _staged(harness: Harness) -> list[str]:
    return [p.name for p in (harness.root() / ".staging").iterdir()]


def _renamed(function: Callable[..., object], name: str) -> types.FunctionType:
    """A copy of ``function`` under another name, as a future asyncssh might call it."""
    assert isinstance(function, types.FunctionType)
    code = function.__code__.replace(co_name=name, co_qualname=name)
    return types.FunctionType(
        code, function.__globals__, name, function.__defaults__, function.__closure__
    )


async def test_uploads_are_told_apart_even_if_asyncssh_renames_its_close_handler(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's FXP_CLOSE is recognised by asyncssh's own dispatch table, not by the name
    of a private method: a rename in a release must not discard every upload."""
    handler = SFTPServerHandler._packet_handlers[FXP_CLOSE]
    monkeypatch.setitem(
        SFTPServerHandler._packet_handlers, FXP_CLOSE, _renamed(handler, "_handle_close")
    )
    async with await harness.connect() as conn:
        async with conn.start_sftp_client() as sftp, sftp.open("/outbox/kept.xml", "wb") as f:
            await f.write(b"<envelope/>")
        sftp_raw = await RawSftp.start(conn)
        handle = await sftp_raw.open_for_upload("/outbox/cut.xml")
        await sftp_raw.write(handle, 0, b"<envelope>")
        assert await sftp_raw.end() == 1
        dropped = await harness.connect()
        sftp = await dropped.start_sftp_client()
        remote = await sftp.open("/coutbox/dropped.csv", "wb")
        await remote.write(b"a;b\n" * 1000)
        dropped.abort()
        await dropped.wait_closed()
    await harness.wait_for_no_sessions()  # their cut uploads are cleaned up by then
    assert harness.visible_files() == ["outbox/kept.xml"]
    assert harness.backend.arrived == [(MAILBOX_A, "outbox", "kept.xml")]


def _without_close_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(SFTPServerHandler._packet_handlers, FXP_CLOSE)


def _without_dispatch_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(SFTPServerHandler, "_packet_handlers")


def _close_handler_that_never_calls_close(monkeypatch: pytest.MonkeyPatch) -> None:
    async def deferred(self: SFTPServerHandler, packet: object) -> None:
        """A release that queued closes elsewhere: close() no longer runs inside the request."""

    monkeypatch.setitem(SFTPServerHandler._packet_handlers, FXP_CLOSE, deferred)


@pytest.mark.parametrize(
    "break_asyncssh",
    [_without_close_handler, _without_dispatch_table, _close_handler_that_never_calls_close],
)
async def test_the_server_does_not_start_if_asyncssh_changed_how_it_closes_files(
    make_harness: HarnessFactory,
    monkeypatch: pytest.MonkeyPatch,
    break_asyncssh: Callable[[pytest.MonkeyPatch], None],
) -> None:
    """Started anyway, it would silently discard every upload (or accept cut-off ones)."""
    break_asyncssh(monkeypatch)
    with pytest.raises(UnsupportedAsyncssh) as refused:
        await make_harness()
    message = str(refused.value)
    assert f"asyncssh {asyncssh.__version__}" in message
    assert "pip install" in message and "SFTP server does not start" in message
