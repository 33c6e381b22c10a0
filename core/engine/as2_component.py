"""The engine's AS2 part: the HTTP endpoint (receiving messages and asynchronous MDNs) and the
sender of messages and owed MDNs, whose jobs the engine's loops hand over."""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.as2.receiver import Receiver, Reply
from core.as2.server import As2Server
from core.config import Config
from core.engine.as2_sending import As2Sending
from core.errors import DocbridgeError
from core.models import JobKind
from core.storage import jobs
from core.storage.store import Store


class As2Component:
    def __init__(
        self,
        db: Store,
        config: Config,
        retry: jobs.RetryPolicy,
        wake: Callable[[JobKind | None], None],
    ) -> None:
        # pyas2lib logs decrypted payloads and whole MIME messages at DEBUG: never let them out.
        logging.getLogger("pyas2lib").setLevel(logging.WARNING)
        self.config = config
        self.sending = As2Sending(db, config, retry)
        self.receiver = Receiver(db, config, wake)
        self.server = As2Server(config.as2, self.receiver.receive, self._mdn_arrived)
        self._wake = wake

    async def _mdn_arrived(
        self, mailbox: str, headers: list[tuple[str, str]], body: bytes | bytearray
    ) -> Reply:
        reply = await self.sending.receive_mdn(mailbox, headers, body)
        self._wake(JobKind.AS2_SEND)
        return reply

    async def start(self) -> dict[str, str]:
        try:
            url = await self.server.start()
        except OSError as exc:
            await self.sending.close()
            where = f"{self.config.as2.listen_host}:{self.config.as2.port}"
            raise DocbridgeError(
                f"The AS2 endpoint cannot listen on {where}: {exc.strerror or exc}.",
                "Another program may use the port: set [as2] port in docbridge.toml.",
            ) from exc
        return {"as2": url}

    async def stop(self) -> None:
        await self.server.stop()
        await self.sending.close()
