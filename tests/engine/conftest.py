from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from core.config import SmtpConfig, load_config
from core.engine.engine import Engine, EngineSettings
from core.models import IntegrationForm, TransferProtocol
from core.service import Service
from core.storage.jobs import RetryPolicy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MailSink:
    """What a real SMTP server (aiosmtpd on loopback) received."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"

    def message_ids(self) -> list[str]:
        with self.lock:
            return [str(m["Message-ID"]) for m in self.messages]


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.sink = MailSink()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


FAST = EngineSettings(
    idle_poll_s=0.05,
    scan_interval_s=0.2,
    heartbeat_s=0.2,
    run_sftp=False,
    run_as2=False,
    envelope_retry=RetryPolicy(max_attempts=3, max_delay_s=0.2),
    file_retry=RetryPolicy(max_attempts=3, max_delay_s=0.2),
    mail_retry=RetryPolicy(max_attempts=200, max_delay_s=0.2),
    as2_retry=RetryPolicy(max_attempts=5, max_delay_s=0.2),
)


@pytest.fixture
async def engine(data_dir: Path, smtp_server: SmtpServer) -> AsyncIterator[Engine]:
    config = await asyncio.to_thread(load_config, data_dir)
    config = replace(config, smtp=SmtpConfig(host="127.0.0.1", port=smtp_server.port))
    running = Engine(config, FAST)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def sftp_engine(data_dir: Path) -> AsyncIterator[Engine]:
    """An engine with its SFTP listener on a free port."""
    config = await asyncio.to_thread(load_config, data_dir)
    config = replace(config, sftp=replace(config.sftp, port=0))
    engine = Engine(config, replace(FAST, run_sftp=True))
    await engine.start()
    yield engine
    await engine.stop()


def use_free_as2_port(data_dir: Path) -> int:
    """Point the data directory's AS2 endpoint (and its Self URLs) at a free loopback port."""
    port = free_port()
    config = data_dir / "docbridge.toml"
    config.write_text(
        f'[as2]\nport = {port}\npublic_url = "http://127.0.0.1:{port}/as2"\n'
        "mdn_deadline_seconds = 5\n",
        encoding="utf-8",
    )
    return port


@pytest.fixture
async def as2_engine(data_dir: Path, smtp_server: SmtpServer) -> AsyncIterator[Engine]:
    """An engine with its AS2 endpoint on a free port (the Self URLs follow it)."""
    await asyncio.to_thread(use_free_as2_port, data_dir)
    config = await asyncio.to_thread(load_config, data_dir)
    config = replace(config, smtp=SmtpConfig(host="127.0.0.1", port=smtp_server.port))
    running = Engine(config, replace(FAST, run_as2=True))
    await running.start()
    yield running
    await running.stop()


async def as2_form(service: Service) -> IntegrationForm:
    """A valid AS2 integration whose partner (partner.example) is never reached in tests."""
    other = (await service.list_mailboxes())[1].uuid
    pem = (await service.ensure_as2_identity(other)).certificate_pem
    form = IntegrationForm(protocol=TransferProtocol.AS2)
    as2 = replace(
        form.as2,
        self_id="LOGISTICS",
        partner_url="https://partner.example/as2",
        partner_id="PARTNER",
        partner_certificate=pem,
    )
    return replace(form, as2=as2)


async def enable_sftp(service: Service, name: str) -> tuple[str, str]:
    """Save an SFTP integration, switch it on; returns (mailbox uuid, its new password)."""
    mailbox = (await service.resolve_mailbox(name)).uuid
    password = (await service.save_integration(mailbox, IntegrationForm())).new_password
    assert password is not None
    await service.set_enabled(mailbox, True)
    return mailbox, password


async def enable(service: Service, name: str, form: IntegrationForm) -> str:
    mailbox = await service.resolve_mailbox(name)
    await service.save_integration(mailbox.uuid, form)
    await service.set_enabled(mailbox.uuid, True)
    return mailbox.uuid


async def enable_undeliverable(service: Service, data_dir: Path, name: str) -> str:
    """An SFTP integration whose inbox/ cannot be written (its mailbox root is a link, which
    docbridge refuses): every envelope's delivery fails with "Cannot write to inbox/"."""
    mailbox = (await service.resolve_mailbox(name)).uuid
    elsewhere = data_dir / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    (data_dir / "mailboxes").mkdir(mode=0o700, exist_ok=True)
    (data_dir / "mailboxes" / mailbox).symlink_to(elsewhere)
    await service.save_integration(mailbox, IntegrationForm())
    await service.set_enabled(mailbox, True)
    return mailbox
