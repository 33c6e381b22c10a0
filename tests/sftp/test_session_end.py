"""How an SFTP session ends: the exit status clients see, and which uploads count as finished.

A raw SFTP client drives the server packet by packet, so a test can end its input (SSH EOF)
with a file still open, which neither asyncssh's client nor OpenSSH's sftp does on purpose.
"""

from __future__ import annotations

import asyncio
import struct

import asyncssh
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

from tests.sftp.conftest import MAILBOX_A, Harness


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
