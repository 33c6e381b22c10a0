"""pyas2lib as the independent AS2 counterpart, over real HTTP on loopback.

``PyAs2Partner`` is a trading partner's gateway: an aiohttp server that receives our messages
(parsed, verified and answered with pyas2lib's own MDN, sync or async) and a client that sends
messages to our Self URL built by pyas2lib. Nothing of docbridge's AS2 code is used here.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pyas2lib import as2

from core.as2.certificates import generate_identity
from tests.engine.conftest import free_port

PARTNER_ID = "PYAS2PARTNER"
OUR_ID = "LOGISTICS"


@dataclass
class Received:
    message: as2.Message
    status: str
    error: Exception | None
    payload: bytes


@dataclass
class SendOutcome:
    """What pyas2lib made of our answer to a message it sent."""

    http_status: int
    message: as2.Message
    mdn_status: str | None = None  # pyas2lib's verdict on a sync MDN (checks signature + MIC)
    mdn_detail: str | None = None
    mdn_disposition: str = ""
    mdn_message_id: str | None = None
    body: bytes = b""


@dataclass
class Behaviour:
    """How the partner answers our messages (tests change it)."""

    statuses: list[int] = field(default_factory=list)  # answered before processing, in turn
    wrong_mic: bool = False  # its MDN returns a MIC other than ours
    hold_async_mdn: bool = False  # never post the asynchronous MDN


class PyAs2Partner:
    def __init__(self, directory: Path) -> None:
        identity = generate_identity(PARTNER_ID, directory / "keys" / "partner.pem")
        self.certificate_pem = identity.certificate_pem
        self._key = identity.key_path.read_bytes() + identity.certificate_pem.encode()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/pyas2"
        self.mdn_url = f"http://127.0.0.1:{self.port}/pyas2/mdn"
        self.our_certificate = b""
        self.received: list[Received] = []
        self.async_mdns: list[tuple[dict[str, str], bytes]] = []
        self.behaviour = Behaviour()
        self.requests = 0
        self.sent_messages: list[as2.Message] = []  # what it sent us, for async MDNs
        self.message_ids: list[str] = []
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life cycle ------------------------------------------------------------------------------

    async def start(self, tls: ssl.SSLContext | None = None) -> None:
        """Listen; with ``tls`` over HTTPS (then ``url`` is an https:// URL)."""
        app = web.Application(client_max_size=512 * 1024 * 1024)
        app.router.add_post("/pyas2", self._receive)
        app.router.add_post("/pyas2/mdn", self._receive_mdn)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=tls).start()
        if tls is not None:
            self.url = self.url.replace("http://", "https://")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    # -- pyas2lib's view of both sides -----------------------------------------------------------

    def organization(self) -> as2.Organization:
        return as2.Organization(
            as2_name=PARTNER_ID, sign_key=self._key, decrypt_key=self._key, mdn_url=self.mdn_url
        )

    def docbridge(self, **options: Any) -> as2.Partner:
        return as2.Partner(
            as2_name=OUR_ID,
            verify_cert=self.our_certificate,
            encrypt_cert=self.our_certificate,
            validate_certs=False,
            **options,
        )

    # -- receiving our messages ------------------------------------------------------------------

    async def _receive(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        self.message_ids.append(request.headers.get("Message-ID", "").strip("<>"))
        if self.behaviour.statuses:
            return web.Response(status=self.behaviour.statuses.pop(0), text="not now")
        raw = _raw(request.headers.items(), body)
        message = as2.Message()
        status, (error, _trace), mdn = await asyncio.to_thread(
            message.parse,
            raw,
            lambda as2_id: self.organization() if as2_id == PARTNER_ID else None,
            lambda as2_id: self.docbridge() if as2_id == OUR_ID else None,
        )
        payload = message.content if status == "processed" else b""
        self.received.append(
            Received(message, status, error, payload if isinstance(payload, bytes) else b"")
        )
        if mdn is None:
            return web.Response(status=200)
        if self.behaviour.wrong_mic:  # a correctly signed MDN that returns another MIC
            message.mic = b"AAAA" + message.mic[4:]
            mdn = as2.Mdn(mdn_mode=mdn.mdn_mode, mdn_url=mdn.mdn_url, digest_alg=mdn.digest_alg)
            await asyncio.to_thread(mdn.build, message=message, status="processed")
        content, headers = mdn.content, dict(mdn.headers)
        if mdn.mdn_mode == "ASYNC":
            if not self.behaviour.hold_async_mdn:
                self._later(self._post(mdn.mdn_url, headers, content))
            return web.Response(status=200)
        return web.Response(status=200, body=content, headers=headers)

    async def _receive_mdn(self, request: web.Request) -> web.Response:
        self.async_mdns.append((dict(request.headers), await request.read()))
        return web.Response(status=200)

    # -- sending to docbridge --------------------------------------------------------------------

    def build(
        self,
        payload: bytes,
        *,
        filename: str = "order.xml",
        content_type: str = "application/octet-stream",
        message_id: str | None = None,
        **options: Any,
    ) -> as2.Message:
        message = as2.Message(sender=self.organization(), receiver=self.docbridge(**options))
        message.build(payload, filename=filename, content_type=content_type, message_id=message_id)
        return message

    def build_signed(self, payload: bytes, **options: Any) -> as2.Message:
        """The usual partnership: signed (SHA-256), encrypted, a signed synchronous MDN."""
        defaults: dict[str, Any] = {
            "sign": True,
            "encrypt": True,
            "mdn_mode": "SYNC",
            "mdn_digest_alg": "sha256",
        }
        return self.build(payload, **{**defaults, **options})

    async def send(self, url: str, message: as2.Message) -> SendOutcome:
        self.sent_messages.append(message)
        headers = {k: str(v) for k, v in message.headers.items()}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=message.content, headers=headers) as response,
        ):
            body = await response.read()
            outcome = SendOutcome(response.status, message, body=body)
            if response.headers.get("Content-Type", "").startswith(("multipart/", "message/")):
                mdn = as2.Mdn()
                raw = _raw(response.headers.items(), body)
                status, detail = await asyncio.to_thread(
                    mdn.parse, raw, lambda _message_id, _recipient: message
                )
                outcome.mdn_status, outcome.mdn_detail = status, detail
                outcome.mdn_message_id = mdn.message_id
                outcome.mdn_disposition = _disposition(body)
            return outcome

    def check_mdn(
        self, headers: dict[str, str], body: bytes
    ) -> tuple[str | None, str | None, as2.Message]:
        """pyas2lib's verdict on an asynchronous MDN we posted (signature and MIC against the
        message it sent), with that message. Blocking."""
        originals = {m.message_id: m for m in self.sent_messages}
        found: list[as2.Message] = []

        def original(message_id: str, _recipient: str) -> as2.Message | None:
            message = originals.get(message_id)
            if message is not None:
                found.append(message)
            return message

        status, detail = as2.Mdn().parse(_raw(headers.items(), body), original)
        assert found, "the MDN names no message the partner sent"
        return status, detail, found[0]

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=body, headers=headers),
        ):
            pass

    def _later(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _raw(headers: Any, body: bytes) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return head.encode("latin-1") + b"\r\n" + body


def _disposition(body: bytes) -> str:
    for line in body.decode("latin-1").splitlines():
        if line.lower().startswith("disposition:"):
            return line.split(";")[-1].strip()
    return ""
