"""Sending mail through the configured SMTP server with an explicit TLS mode."""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import AsyncIterator
from email.message import EmailMessage

import aiosmtplib

from core.config import SMTP_PASSWORD_ENV, SmtpConfig


class MailDeliveryError(Exception):
    """The SMTP server could not be reached or refused the message (retried later)."""


class SmtpSession:
    """One connection for several messages: each is acknowledged (250) on its own, so the
    caller can record it at once instead of after the whole batch and the QUIT."""

    def __init__(self, client: aiosmtplib.SMTP, config: SmtpConfig) -> None:
        self._client = client
        self._config = config

    async def send(self, message: EmailMessage) -> None:
        try:
            await self._client.send_message(message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailDeliveryError(f"SMTP {self._config.host}:{self._config.port}: {exc}") from exc


@contextlib.asynccontextmanager
async def smtp_session(config: SmtpConfig, timeout_s: float = 30) -> AsyncIterator[SmtpSession]:
    """Connect (TLS exactly as configured, never guessed) and log in if a user is set.

    The password comes from ``DOCBRIDGE_SMTP_PASSWORD`` so it is never stored in clear in the
    data directory.
    """
    context = ssl.create_default_context() if config.tls_mode != "none" else None
    client = aiosmtplib.SMTP(
        hostname=config.host,
        port=config.port,
        use_tls=config.tls_mode == "tls",
        start_tls=config.tls_mode == "starttls",
        tls_context=context,
        timeout=timeout_s,
    )
    try:
        await client.connect()
        if config.username:
            await client.login(config.username, os.environ.get(SMTP_PASSWORD_ENV, ""))
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise MailDeliveryError(f"SMTP {config.host}:{config.port}: {exc}") from exc
    try:
        yield SmtpSession(client, config)
    finally:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            await client.quit()


async def send_mail(config: SmtpConfig, message: EmailMessage, timeout_s: float = 30) -> None:
    """Send a single message on its own connection."""
    async with smtp_session(config, timeout_s) as session:
        await session.send(message)
