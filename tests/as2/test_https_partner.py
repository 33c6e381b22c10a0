"""A partner behind HTTPS: verified with the system CAs (a self-signed server certificate is
refused), or with the partner's TLS certificate given in the form (then trusted for it alone)."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.engine.engine import Engine
from core.models import As2Status
from core.service import Service
from tests.as2.conftest import connect_logistics, partner_form
from tests.as2.partner import PyAs2Partner
from tests.as2.test_exchange import addressed_to, messages
from tests.engine.test_default_rules import eventually


def self_signed_tls(directory: Path, host: str = "127.0.0.1") -> tuple[ssl.SSLContext, str]:
    """A server TLS context for ``host`` and its certificate (PEM), as partners often run."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "partner tls")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tls.pem").write_text(pem)
    (directory / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "tls.pem", directory / "tls.key")
    return context, pem


async def test_a_self_signed_partner_is_refused_until_its_tls_certificate_is_given(
    service: Service, as2_engine: Engine, tmp_path: Path
) -> None:
    partner = await asyncio.to_thread(PyAs2Partner, tmp_path / "partner")
    context, tls_pem = await asyncio.to_thread(self_signed_tls, tmp_path / "tls")
    await partner.start(tls=context)
    try:
        mailbox = await connect_logistics(service, partner)
        await service.receive_envelope(mailbox, await asyncio.to_thread(addressed_to, mailbox))
        as2_engine.wake()

        async def refused_by_tls() -> bool:
            return any(
                "certificate verify failed" in (m.error or "")
                for m in await messages(service, mailbox, "out")
            )

        await eventually(refused_by_tls)
        assert partner.received == []

        await connect_logistics(service, partner, partner_tls_certificate=tls_pem)
        # Parked meanwhile if its tries ran out (five quick ones here): reprocessed, as a user
        # would from the Activity screen.
        parked = [j.id for j in await service.list_jobs(("parked",)) if j.mailbox_uuid == mailbox]
        if parked:
            await service.reprocess(parked)
        as2_engine.wake()

        async def delivered() -> bool:
            sent = await messages(service, mailbox, "out")
            return bool(sent) and all(m.status is As2Status.DELIVERED for m in sent)

        await eventually(delivered, within_s=20)
        assert partner.received and all(r.status == "processed" for r in partner.received)
    finally:
        await partner.stop()


async def test_a_tls_certificate_with_a_plain_http_url_is_refused_with_a_reason(
    service: Service, tmp_path: Path
) -> None:
    partner = await asyncio.to_thread(PyAs2Partner, tmp_path / "partner")
    _context, tls_pem = await asyncio.to_thread(self_signed_tls, tmp_path / "tls")
    form = partner_form(partner, partner_tls_certificate=tls_pem)  # partner.url is http://
    errors = service.validate_integration_form(form)
    assert "https://" in errors["as2.partner_tls_certificate"]
