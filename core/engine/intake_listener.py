"""A local door for ``docbridge envelope receive``: a Unix socket in the data directory, served
by the running engine, so a one-shot command neither loads the parser and models nor commits
alone (its receipt joins the engine's group commits).

One request per connection: a 4-byte big-endian length, a JSON header ``{"mailbox": ...,
"size": n}``, then the ``n`` bytes of the envelope XML. One answer: a JSON object,
``{"uuid": ...}`` once the envelope is stored, ``{"error": {"title": ..., "hint": ...}}`` for
an error a user can act on (the command prints it as its own), or ``{"fallback": true}``:
receive it yourself (a file over the upload limit, whose refusal names the file; an unexpected
failure here, logged). The socket is 0600; whoever may use it may write the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import struct
import uuid as uuid_module
from pathlib import Path
from typing import Any

from core import intake
from core.data_dir import INTAKE_SOCKET
from core.errors import DocbridgeError
from core.storage.store import Store

log = logging.getLogger("docbridge.intake")
HEADER = struct.Struct(">I")
MAX_HEADER = 64 * 1024
MAX_ENVELOPE_BYTES = 20 * 1024 * 1024  # what the command hands over (core.cli_quick)
REQUEST_TIMEOUT_S = 10.0  # a command sends its request at once; a silent client is dropped
STOP_WAIT_S = 10.0  # receipts under way when the engine stops


class IntakeListener:
    def __init__(self, db: Store, data_dir: Path, max_file_size: int) -> None:
        self._db = db
        self.path = data_dir / INTAKE_SOCKET
        self._max_file_size = max_file_size
        self._server: asyncio.AbstractServer | None = None
        self._reading: set[asyncio.Task[Any]] = set()  # requests still arriving
        self._working: set[asyncio.Task[Any]] = set()  # requests being received

    async def start(self) -> None:
        """Listen; a path the system cannot bind (too long, read-only) leaves the command to
        receive on its own, as without an engine."""
        # A killed engine's socket may be there: we hold the lease, nobody else serves it.
        await asyncio.to_thread(_remove, self.path)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=self.path)
            await asyncio.to_thread(os.chmod, self.path, 0o600)
        except OSError as exc:
            log.warning("no local intake socket at %s: %s", self.path, exc)

    async def stop(self) -> None:
        """No new requests; those still arriving are dropped (the command receives on its
        own), those being received are finished and answered while the store is still open."""
        if self._server is None:
            return
        self._server.close()
        for task in self._reading:
            task.cancel()
        pending = self._reading | self._working
        if pending:
            await asyncio.wait(pending, timeout=STOP_WAIT_S)
        await asyncio.to_thread(_remove, self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            self._reading.add(task)
            try:
                request = await asyncio.wait_for(_read_request(reader), REQUEST_TIMEOUT_S)
            finally:
                self._reading.discard(task)
            self._working.add(task)
            answer = await self._answer(request) if isinstance(request, tuple) else request
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the command went away or fell silent; a stored envelope stays stored
        except asyncio.CancelledError:
            pass  # stopping while the request was still arriving: the command receives it
        finally:
            self._working.discard(task)
            writer.close()

    async def _answer(self, request: tuple[str, bytes]) -> dict[str, object]:
        try:
            envelope_uuid = await self._receive(*request)
        except _HandBack:
            return {"fallback": True}
        except DocbridgeError as exc:
            return {"error": {"title": exc.title, "hint": exc.hint}}
        except Exception:
            log.exception("envelope receive over the local socket failed")
            return {"fallback": True}
        return {"uuid": envelope_uuid}

    async def _receive(self, reference: str, data: bytes) -> str:
        """The steps of the command's own path, in its order: mailbox, size, XML, store."""
        from core.envelope_xml import parse_envelope_xml

        mailbox = await self._db.call(intake.resolve_mailbox, reference)
        if len(data) > self._max_file_size:
            raise _HandBack  # the command's own read refuses it, naming the file as it knows it
        parsed = await asyncio.to_thread(parse_envelope_xml, data)
        envelope_uuid = parsed.uuid or str(uuid_module.uuid4())
        envelope = await self._db.write_grouped(
            intake.receive_envelope, mailbox.uuid, envelope_uuid, parsed, data
        )
        return envelope.uuid


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, bytes] | dict[str, object]:
    """(mailbox, envelope bytes), or the answer to a request that is not one."""
    (length,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    if length > MAX_HEADER:
        return {"fallback": True}
    try:
        header = json.loads(await reader.readexactly(length))
        mailbox, size = str(header["mailbox"]), int(header["size"])
    except (ValueError, KeyError, TypeError):
        return {"fallback": True}
    if not 0 <= size <= MAX_ENVELOPE_BYTES:
        return {"fallback": True}  # the command's own path says why
    return mailbox, await reader.readexactly(size)


class _HandBack(Exception):
    """The command is to receive this envelope itself (it says why it refuses it)."""


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
