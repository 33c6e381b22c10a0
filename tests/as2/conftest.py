"""AS2 over real HTTP: a docbridge engine with its endpoint and pyas2lib as the partner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from core.engine.engine import Engine
from core.models import As2Settings, IntegrationForm, TransferProtocol
from core.service import Service
from tests.as2.partner import OUR_ID, PARTNER_ID, PyAs2Partner
from tests.engine.conftest import as2_engine, smtp_server

__all__ = ["as2_engine", "smtp_server"]


@pytest.fixture
async def partner(tmp_path: Path) -> AsyncIterator[PyAs2Partner]:
    made = await asyncio.to_thread(PyAs2Partner, tmp_path / "partner")
    await made.start()
    yield made
    await made.stop()


def partner_form(partner: PyAs2Partner, **as2: object) -> IntegrationForm:
    settings = As2Settings(
        self_id=OUR_ID,
        partner_url=partner.url,
        partner_id=PARTNER_ID,
        partner_certificate=partner.certificate_pem,
    )
    return IntegrationForm(protocol=TransferProtocol.AS2, as2=replace(settings, **as2))  # type: ignore[arg-type]


async def connect_logistics(
    service: Service, partner: PyAs2Partner, on: bool = True, name: str = "Logistics", **as2: object
) -> str:
    """Logistics (or ``name``) set to AS2 with the pyas2lib partner, as the page saves it."""
    mailbox = (await service.resolve_mailbox(name)).uuid
    saved = await service.save_integration(mailbox, partner_form(partner, **as2))
    assert saved.as2_identity is not None
    partner.our_certificate = saved.as2_identity.certificate_pem.encode()
    if on:
        await service.set_enabled(mailbox, True)
    return mailbox


def self_url(engine: Engine, mailbox: str) -> str:
    return f"{engine.config.as2.public_url}/{mailbox}"
