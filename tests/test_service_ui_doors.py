"""The service's doors for the user interfaces: form checks, certificates and files.

A screen asks the service, never the validators, the certificate parser or the file system; these
tests hold the service to what a user sees through those doors. Real files in tmp_path, the shared
interop certificates, and the demo data directory.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import FieldErrors, InvalidInput
from core.models import (
    As2Settings,
    DefaultRule,
    Direction,
    IntegrationForm,
    RuleForm,
    TransferProtocol,
)
from core.service import CertificateInfo, Service
from tests.rules.samples import IDENTITY_MAP

MENDELSON = Path(__file__).resolve().parents[1].parent / "shared" / "interop" / "mendelson"
PARTNER_PEM = MENDELSON / "cert_mecas2_public.pem"
TEN_MB = 10 * 1024 * 1024


# -- form checks ----------------------------------------------------------------------------------


async def test_integration_form_errors_are_exactly_what_save_refuses(service: Service) -> None:
    mailbox = (await service.page_state()).mailbox.uuid
    form = IntegrationForm(
        protocol=TransferProtocol.AS2,
        default_rule=DefaultRule.NOTIFY,
        notify_email="",
        as2=As2Settings(self_id="ok-id", partner_url="ftp://nowhere", partner_id="partner"),
    )

    errors = service.validate_integration_form(form)

    assert errors["notify_email"] == (
        "Enter the email address that default rule 2 sends notifications to."
    )
    assert "as2.partner_url" in errors
    assert errors["as2.partner_certificate"].startswith("Paste the recipient's certificate")
    with pytest.raises(FieldErrors) as refused:
        await service.save_integration(mailbox, form)
    assert refused.value.errors == errors

    fixed = replace(
        form,
        notify_email="edi@acme.example",
        as2=replace(
            form.as2,
            partner_url="https://partner.example/as2",
            partner_certificate=PARTNER_PEM.read_text(),
        ),
    )
    assert service.validate_integration_form(fixed) == {}


async def test_rule_form_errors_name_each_field(service: Service) -> None:
    template = (await service.page_state()).templates[0]
    form = RuleForm(
        name="  ",
        direction=Direction.OUT,
        template_uuid=template.uuid,
        template_version=999,
        match_pattern="po_(",
    )

    errors = service.validate_rule_form(form, template)

    assert errors["name"] == "Give the rule a name."
    assert errors["template_version"].startswith(f"Template '{template.name}' has no version 999")
    assert errors["match_pattern"].startswith("Not a valid regular expression")
    assert service.validate_rule_form(form, None)["template_uuid"] == (
        "Choose a template of this account."
    )
    assert "conversion_map" in errors  # an empty map can no longer be saved
    good = replace(
        form,
        name="POs out",
        template_version=None,
        match_pattern=r"^po_\d+\.csv$",
        conversion_map=IDENTITY_MAP,
    )
    assert service.validate_rule_form(good, template) == {}


# -- certificates ---------------------------------------------------------------------------------


async def test_inspect_certificate_describes_the_partner_and_refuses_a_private_key(
    service: Service,
) -> None:
    info = await service.inspect_certificate(PARTNER_PEM.read_text())

    assert isinstance(info, CertificateInfo)
    assert info.subject.startswith("CN=mendelson test key 3,")
    assert "emailAddress=service@mendelson.de" in info.subject
    assert len(info.fingerprint_sha256.split(":")) == 32

    with_key = (MENDELSON / "cert_test.pem").read_text()
    with pytest.raises(InvalidInput, match="private key"):
        await service.inspect_certificate(with_key)


async def test_describe_certificate_is_none_for_nothing_or_garbage(service: Service) -> None:
    pem = PARTNER_PEM.read_text()

    described = service.describe_certificate(pem)

    assert described is not None
    assert described.subject.startswith("CN=mendelson test key 3,")
    assert service.describe_certificate("") is None
    assert service.describe_certificate("   \n") is None
    assert service.describe_certificate("-----BEGIN CERTIFICATE-----\nAAAA\n") is None
    assert service.describe_certificate((MENDELSON / "cert_test.pem").read_text()) is None


async def test_load_certificate_from_a_file_or_pasted_text(
    service: Service, tmp_path: Path
) -> None:
    pem = PARTNER_PEM.read_text()

    from_file = await service.load_certificate(str(PARTNER_PEM))
    pasted = await service.load_certificate("\n  " + pem)

    assert from_file[0] == pem
    assert from_file == pasted
    assert from_file[1].subject.startswith("CN=mendelson test key 3,")


async def test_load_certificate_says_what_is_wrong(service: Service, tmp_path: Path) -> None:
    cases: dict[str, str] = {}
    cases[""] = "No certificate given"
    cases[str(tmp_path / "missing.pem")] = "There is no file at"
    cases[str(tmp_path)] = "is a directory"
    big = tmp_path / "big.pem"
    big.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + b"A" * (2 * 1024 * 1024))
    cases[str(big)] = "too large to be a certificate"
    der = tmp_path / "partner.cer"
    der.write_bytes(b"\x30\x82\x03\x00\xff\xfe")
    cases[str(der)] = "binary DER certificate"
    cases["-----BEGIN CERTIFICATE-----\n" + "A" * (2 * 1024 * 1024)] = "too large"
    key = tmp_path / "key.pem"
    key.write_text((MENDELSON / "cert_test.pem").read_text())
    cases[str(key)] = "private key"

    for source, expected in cases.items():
        with pytest.raises(InvalidInput) as refused:
            await service.load_certificate(source)
        assert expected in str(refused.value), (source[:60], str(refused.value))


async def test_export_certificate_writes_a_new_durable_file_and_never_overwrites(
    service: Service, tmp_path: Path
) -> None:
    pem = PARTNER_PEM.read_text()
    target = tmp_path / "exports" / "self.pem"
    target.parent.mkdir()

    written = await service.export_certificate(str(target), pem)

    assert written == target
    assert target.read_text() == pem
    assert (await service.inspect_certificate(target.read_text())).subject.startswith("CN=")
    assert os.listdir(target.parent) == ["self.pem"]  # no temporary file left behind

    with pytest.raises(InvalidInput, match="already exists.*nothing was overwritten"):
        await service.export_certificate(str(target), "-----BEGIN CERTIFICATE-----\nother\n")
    assert target.read_text() == pem
    assert os.listdir(target.parent) == ["self.pem"]


async def test_export_certificate_refuses_what_it_cannot_do_cleanly(
    service: Service, tmp_path: Path
) -> None:
    pem = PARTNER_PEM.read_text()
    with pytest.raises(InvalidInput, match="folder .*does not exist"):
        await service.export_certificate(str(tmp_path / "nope" / "self.pem"), pem)
    with pytest.raises(InvalidInput, match="is a folder"):
        await service.export_certificate(str(tmp_path), pem)
    with pytest.raises(InvalidInput, match="No file path given"):
        await service.export_certificate("  ", pem)
    key_text = (MENDELSON / "cert_test.pem").read_text()
    with pytest.raises(InvalidInput, match="Only a certificate can be exported"):
        await service.export_certificate(str(tmp_path / "leak.pem"), key_text)
    assert not (tmp_path / "leak.pem").exists()
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


async def test_export_certificate_expands_the_home_folder(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    written = await service.export_certificate("~/self.pem", PARTNER_PEM.read_text())
    assert written == tmp_path / "self.pem"
    assert written.read_text() == PARTNER_PEM.read_text()


# -- example sources ------------------------------------------------------------------------------


async def test_read_example_source_returns_the_bytes(service: Service, tmp_path: Path) -> None:
    example = tmp_path / "orders.csv"
    data = b"order;qty\r\n4711;3\r\n\xff\x00binary is fine\n"
    example.write_bytes(data)
    assert await service.read_example_source(str(example)) == data

    at_limit = tmp_path / "limit.bin"
    at_limit.write_bytes(b"x" * TEN_MB)
    assert len(await service.read_example_source(str(at_limit))) == TEN_MB


async def test_read_example_source_refuses_clearly(service: Service, tmp_path: Path) -> None:
    too_big = tmp_path / "dump.csv"
    with too_big.open("wb") as file:
        file.truncate(TEN_MB + 1)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    cases = {
        str(too_big): "larger than 10 MB",
        str(tmp_path / "missing.csv"): "There is no file at",
        str(tmp_path): "is a directory",
        str(fifo): "is not a regular file",  # and the read never blocks on it
        "": "No file given",
    }
    for source, expected in cases.items():
        with pytest.raises(InvalidInput) as refused:
            await service.read_example_source(source)
        assert expected in str(refused.value), (source, str(refused.value))
