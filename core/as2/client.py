"""POSTing to partners: one aiohttp session, timeouts, and which failures are worth a retry.

HTTPS partner URLs are verified against the system's certificate authorities, or, when the
partnership names one, against the partner's own TLS certificate alone (often self-signed).
Host names are checked either way.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from email import message_from_bytes

import aiohttp
from multidict import CIMultiDict

# Worth another try later (RFC 9110 and common practice); any other answer is final.
RETRYABLE_STATUS = frozenset({408, 429})
_MAX_ANSWER = 10 * 1024 * 1024  # an MDN is a few KB; more is not an MDN


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUS or self.status >= 500

    def describe(self) -> str:
        """The status and the partner's words, for the activity log: the text part of a MIME
        answer (an error MDN), not its boundaries and headers."""
        text = " ".join(_readable(self.headers, self.body).split())[:300]
        return f"HTTP {self.status}" + (f": {text}" if text else "")


def _readable(headers: tuple[tuple[str, str], ...], body: bytes) -> str:
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    if content_type.lower().startswith("multipart/"):
        head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
        message = message_from_bytes(head + body[:_MAX_ANSWER])
        for part in message.walk():
            if part.get_content_type() == "text/plain":
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    return payload.decode("utf-8", "replace")
    return body[:1000].decode("utf-8", "replace")


class PartnerUnreachable(Exception):
    """A connection error or timeout: retried with back-off."""


class Poster:
    def __init__(self, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._contexts: dict[str, ssl.SSLContext] = {}

    async def post(
        self,
        url: str,
        headers: tuple[tuple[str, str], ...],
        body: bytes,
        tls_certificate: str = "",
    ) -> Answer:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        context: ssl.SSLContext | bool = True  # the system CAs
        if tls_certificate.strip() and url.lower().startswith("https://"):
            context = self._context(tls_certificate)
        try:
            async with self._session.post(
                url, data=body, headers=CIMultiDict(headers), allow_redirects=False, ssl=context
            ) as response:
                answer = await response.content.read(_MAX_ANSWER)
                return Answer(response.status, tuple(response.headers.items()), answer)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            text = f"Cannot reach {url}: {exc or type(exc).__name__}"
            if "WRONG_VERSION_NUMBER" in str(exc) and url.lower().startswith("https://"):
                text += " (the address answers in plain HTTP: use http:// in the Recipient URL)"
            raise PartnerUnreachable(text) from exc

    def _context(self, pem: str) -> ssl.SSLContext:
        """Trust exactly this certificate (cached: building a context costs a few ms)."""
        key = hashlib.sha256(pem.encode()).hexdigest()
        if key not in self._contexts:
            try:
                self._contexts[key] = ssl.create_default_context(cadata=pem)
            except (ssl.SSLError, ValueError) as exc:
                text = f"The partner's TLS certificate cannot be used: {exc}"
                raise PartnerUnreachable(text) from exc
        return self._contexts[key]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
