"""Sending mail through the configured SMTP server with an explicit TLS mode."""

from __future__ import annotations

import os
import ssl
from email.message import EmailMessage

import aiosmtplib

from core.config import SmtpConfig

SMTP_PASSWORD_ENV = "DOCBRIDGE_SMTP_PASSWORD"


class MailDeliveryError(Exception):
    """The SMTP server could not be reached or refused the message (retried later)."""


async def send_mail(config: SmtpConfig, message: EmailMessage, timeout_s: float = 30) -> None:
    """Hand one message to the SMTP server; TLS is exactly what the config says, never guessed.

    The password comes from ``DOCBRIDGE_SMTP_PASSWORD`` so it is never stored in clear in the
    data directory.
    """
    password = os.environ.get(SMTP_PASSWORD_ENV) if config.username else None
    context = ssl.create_default_context() if config.tls_mode != "none" else None
    try:
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            use_tls=config.tls_mode == "tls",
            start_tls=config.tls_mode == "starttls",
            tls_context=context,
            username=config.username or None,
            password=password,
            timeout=timeout_s,
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise MailDeliveryError(f"SMTP {config.host}:{config.port}: {exc}") from exc
