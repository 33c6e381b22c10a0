"""The AS2 HTTP endpoint (aiohttp): each mailbox at its Self URL, and the URL partners post
asynchronous MDNs to (``<Self URL>/mdn``).

HTTP only here: size caps, reading the body, turning a :class:`Reply` into a response. What a
message means is :mod:`core.as2.receiver`'s job; what an MDN means, the sender's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from core.as2.receiver import Reply, text_reply
from core.config import As2Config

log = logging.getLogger("docbridge.as2")
Handler = Callable[[str, list[tuple[str, str]], bytes | bytearray], Awaitable[Reply]]
_CHUNK = 1024 * 1024
SHUTDOWN_GRACE_S = 5.0


class BodyTooLarge(Exception):
    pass


def base_path(config: As2Config) -> str:
    """The path part of ``public_url`` under which mailboxes are served (e.g. ``/as2``)."""
    return urlsplit(config.public_url).path.rstrip("/")


def mdn_url(config: As2Config, mailbox_uuid: str) -> str:
    """Where partners post asynchronous MDNs for this mailbox's messages."""
    return f"{config.public_url.rstrip('/')}/{mailbox_uuid}/mdn"


class As2Server:
    def __init__(self, config: As2Config, on_message: Handler, on_mdn: Handler) -> None:
        self.config = config
        self._on_message = on_message
        self._on_mdn = on_mdn
        self._runner: web.AppRunner | None = None
        self.port = config.port

    async def start(self) -> str:
        """Listen; returns the URL the listener serves (``docbridge status`` shows it)."""
        app = web.Application(client_max_size=self.config.max_body_size)
        base = base_path(self.config)
        app.router.add_post(f"{base}/{{mailbox}}", self._message)
        app.router.add_post(f"{base}/{{mailbox}}/mdn", self._mdn)
        app.router.add_get(f"{base}/{{mailbox}}", self._explain)
        # No access log: it would be one line per message at INFO, with partners' addresses;
        # the activity log records what matters.
        # A stop waits this long for requests under way (their partners retry the rest).
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.listen_host, self.config.port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        return f"http://{self.config.listen_host}:{self.port}{base}/<mailbox>"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _message(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._on_message)

    async def _mdn(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._on_mdn)

    async def _serve(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        mailbox = request.match_info["mailbox"]
        try:
            body = await self._read_body(request)
        except BodyTooLarge:
            cap = self.config.max_body_size
            log.warning(
                "AS2 request to %s from %s refused: body over as2.max_body_size (%d bytes)",
                mailbox,
                request.remote,
                cap,
            )
            return _response(text_reply(413, f"The message is larger than {cap} bytes."))
        headers = [(name, value) for name, value in request.headers.items()]
        try:
            reply = await handler(mailbox, headers, body)
        except Exception:
            log.exception("AS2 request to %s failed", mailbox)
            reply = text_reply(500, "The message could not be processed now; send it again later.")
        return _response(reply)

    async def _read_body(self, request: web.Request) -> bytes | bytearray:
        """The body, refused before it is read when it announces more than the cap, and as
        soon as it passes the cap when it does not say its length (chunked). An announced
        length is read into one buffer of that size: a large message is held once here (and
        once more as its payload while it is parsed), never copied whole in between."""
        cap = self.config.max_body_size
        announced = request.content_length
        if announced is not None and announced > cap:
            raise BodyTooLarge
        body = bytearray(announced or 0)
        view, filled = memoryview(body), 0
        async for chunk in request.content.iter_chunked(_CHUNK):
            end = filled + len(chunk)
            if end > cap:
                raise BodyTooLarge
            if announced is None:
                body += chunk
            else:
                view[filled:end] = chunk  # aiohttp stops at the announced length
            filled = end
        del view
        if announced is not None and filled < announced:
            del body[filled:]  # the peer closed early: what came, no padding
        return body  # a bytearray: bytes' reader methods, without a copy

    async def _explain(self, request: web.Request) -> web.StreamResponse:
        reply = text_reply(405, "This is an AS2 endpoint: send AS2 messages here with POST.")
        return _response(reply, allow="POST")


def _response(reply: Reply, allow: str | None = None) -> web.Response:
    response = web.Response(status=reply.status, body=reply.body)
    for name, value in reply.headers:
        response.headers[name] = value
    if allow:
        response.headers["Allow"] = allow
    return response
