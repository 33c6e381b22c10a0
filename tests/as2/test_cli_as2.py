"""``docbridge as2 messages | certificate | send``, run as a user runs them (the console script
in a subprocess) against a data directory whose engine runs in this test process, or none.

The partner is pyas2lib over real HTTP (tests/as2/partner.py): what it received, and what the
command printed and returned, are what is checked.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from core.config import load_config
from core.engine.engine import Engine
from core.models import As2Message, As2Status, MdnMode
from core.service import Service
from tests.as2.conftest import connect_logistics, self_url
from tests.as2.partner import PARTNER_ID, PyAs2Partner
from tests.conftest import run_cli
from tests.engine.conftest import FAST
from tests.engine.test_customer_files import outgoing_xml
from tests.engine.test_default_rules import eventually

PAYLOAD = b"UNA:+.? 'UNB+UNOC:3+LOGISTICS+PYAS2PARTNER'\r\n\x00\xff binary tail\n" * 20


async def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The console script, in a thread: the engine and the partner in this loop keep serving."""
    return await asyncio.to_thread(run_cli, data_dir, *args, timeout=60)


async def a_file(tmp_path: Path, name: str = "order.edi", data: bytes = PAYLOAD) -> Path:
    path = tmp_path / "to-send" / name
    await asyncio.to_thread(path.parent.mkdir, exist_ok=True)
    await asyncio.to_thread(path.write_bytes, data)
    return path


async def sent_copies(data_dir: Path, mailbox: str) -> list[str]:
    """Files in the mailbox's hidden send folder (each waits for its partner's MDN)."""

    def walk() -> list[str]:
        base = data_dir / "mailboxes" / mailbox / ".as2-send"
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())

    return await asyncio.to_thread(walk)


async def visible_files(data_dir: Path, mailbox: str) -> list[str]:
    """What the customer sees over SFTP: the five folders."""

    def walk() -> list[str]:
        root = data_dir / "mailboxes" / mailbox
        return sorted(
            str(p.relative_to(root))
            for folder in ("inbox", "cinbox", "outbox", "coutbox", "error")
            for p in (root / folder).rglob("*")
            if p.is_file()
        )

    return await asyncio.to_thread(walk)


def field(output: str, label: str) -> str:
    """The value of a ``Label:  value`` line of ``as2 send``."""
    for line in output.splitlines():
        if line.startswith(f"{label}:"):
            return line.partition(":")[2].strip()
    raise AssertionError(f"no {label!r} line in:\n{output}")


async def connected(service: Service, engine: Engine, partner: PyAs2Partner, **as2: object) -> str:
    """Logistics on AS2 with the partner (connect_logistics), once the demo's envelopes waiting
    for it went out by default rule 1: what a test sends next is the only message under way."""
    mailbox = await connect_logistics(service, partner, True, "Logistics", **as2)
    engine.wake()
    envelopes = await service.list_envelopes(mailbox)
    waiting = [e for e in envelopes if e.status.value == "WAITING"]

    async def sent() -> bool:
        out = [m for m in await service.as2.messages(mailbox) if m.direction == "out"]
        settled = [m for m in out if m.status in (As2Status.DELIVERED, As2Status.FAILED)]
        if partner.behaviour.hold_async_mdn:  # taken by the partner is as far as they get
            settled = [m for m in out if m.status is not As2Status.SENDING]
        return len(settled) == len(waiting)

    await eventually(sent)
    return mailbox


def payloads_of(partner: PyAs2Partner, message_id: str) -> list[bytes]:
    """What the partner took in of one message (one entry per time it was processed)."""
    return [r.payload for r in partner.received if r.message.message_id == message_id]


async def row(service: Service, mailbox: str, message_id: str) -> As2Message:
    [found] = [m for m in await service.as2.messages(mailbox) if m.message_id == message_id]
    return found


# -- as2 messages ---------------------------------------------------------------------------------


async def test_messages_lists_both_directions_with_their_mdns_in_text_and_json(
    service: Service, as2_engine: Engine, partner: PyAs2Partner, data_dir: Path, tmp_path: Path
) -> None:
    mailbox = await connected(service, as2_engine, partner)
    inbound = await asyncio.to_thread(
        partner.build, outgoing_xml(mailbox), sign=True, encrypt=True, mdn_mode="SYNC"
    )
    answered = await partner.send(self_url(as2_engine, mailbox), inbound)
    assert answered.mdn_status == "processed"
    sent = await cli(data_dir, "as2", "send", "Logistics", str(await a_file(tmp_path)))
    assert sent.returncode == 0, sent.stderr
    outbound_id = field(sent.stdout, "Message-ID")

    listed = await cli(data_dir, "as2", "messages", "--mailbox", "Logistics")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    stored = await service.as2.messages(mailbox)
    assert len(lines) == len(stored)  # one line per message (the demo's envelopes went out too)
    assert f"{len(stored)} AS2 messages" in listed.stderr
    [newest] = [n for n, line in enumerate(lines) if outbound_id in line]
    [older] = [n for n, line in enumerate(lines) if inbound.message_id in line]
    assert newest == 0 and older == 1  # newest first: ours, then the partner's
    ours, theirs = lines[newest], lines[older]
    assert "  out  delivered " in ours and "  in   received " in theirs
    for line in (ours, theirs):
        assert PARTNER_ID in line and "MDN: processed" in line
    assert "order.edi" in ours and "MIC: ok" in ours and "error" not in ours

    as_json = await cli(data_dir, "as2", "messages", "--json")  # every mailbox
    assert as_json.returncode == 0, as_json.stderr
    by_id = {m["message_id"]: m for m in json.loads(as_json.stdout)}
    assert len(by_id) == len(stored)
    out, into = by_id[outbound_id], by_id[inbound.message_id]
    assert out["direction"] == "out" and into["direction"] == "in"
    assert out["status"] == "delivered" and into["status"] == "received"
    assert out["mdn_disposition"] == "processed" and out["mic_check"] == "ok"
    assert into["mdn_disposition"] == "processed" and into["filename"] == "order.xml"
    assert out["partner_id"] == PARTNER_ID and out["filename"] == "order.edi"
    assert out["size"] > len(PAYLOAD) // 2 and out["created_at"]  # the signed, encrypted body
    assert out["mailbox_uuid"] == mailbox and out["mailbox_name"] == "Logistics"
    assert out["error"] == ""


async def test_messages_of_a_mailbox_without_any_say_so(data_dir: Path) -> None:
    listed = await cli(data_dir, "as2", "messages", "--mailbox", "Logistics")
    assert listed.returncode == 0
    assert listed.stdout == ""
    assert "No AS2 messages." in listed.stderr
    assert json.loads((await cli(data_dir, "as2", "messages", "--json")).stdout) == []
    unknown = await cli(data_dir, "as2", "messages", "--mailbox", "Nowhere")
    assert unknown.returncode == 1
    assert "No mailbox with uuid or name 'Nowhere'" in unknown.stderr


# -- as2 certificate ------------------------------------------------------------------------------


async def test_certificate_prints_the_one_the_partner_needs(
    service: Service, partner: PyAs2Partner, data_dir: Path
) -> None:
    mailbox = await connect_logistics(service, partner, on=False)
    by_name = await cli(data_dir, "as2", "certificate", "Logistics")
    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout.encode() == partner.our_certificate  # the PEM stored at Save
    assert by_name.stdout.startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE" not in by_name.stdout
    assert "SHA-256" in by_name.stderr
    by_uuid = await cli(data_dir, "as2", "certificate", mailbox)
    assert by_uuid.stdout == by_name.stdout


async def test_certificate_of_a_mailbox_never_saved_with_as2_says_to_choose_as2_and_save(
    service: Service, data_dir: Path
) -> None:
    result = await cli(data_dir, "as2", "certificate", "Logistics")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Logistics has no AS2 certificate yet" in result.stderr
    assert "choose AS2" in result.stderr and "Save" in result.stderr
    # Asking generated nothing: the page still has no identity of ours.
    page = await service.page_state((await service.resolve_mailbox("Logistics")).uuid)
    assert page.as2_identity is None


# -- as2 send -------------------------------------------------------------------------------------


async def test_send_delivers_the_file_and_prints_the_mdn(
    service: Service, as2_engine: Engine, partner: PyAs2Partner, data_dir: Path, tmp_path: Path
) -> None:
    mailbox = await connected(service, as2_engine, partner)
    result = await cli(data_dir, "as2", "send", mailbox, str(await a_file(tmp_path)))
    assert result.returncode == 0, result.stderr
    message_id = field(result.stdout, "Message-ID")
    assert payloads_of(partner, message_id) == [PAYLOAD]  # byte-identical, once
    assert partner.message_ids[-1] == message_id
    assert field(result.stdout, "Status") == "delivered"
    assert field(result.stdout, "MDN") == "processed"
    assert field(result.stdout, "MIC check") == "ok"
    assert "no engine runs" not in result.stderr  # the running one sent it
    # The copy kept for retries goes once the MDN acknowledged it; the customer never saw it.

    async def copy_gone() -> bool:
        return await sent_copies(data_dir, mailbox) == []

    await eventually(copy_gone)
    assert await visible_files(data_dir, mailbox) == []


async def test_send_with_an_asynchronous_mdn_returns_once_the_partner_took_it(
    service: Service, as2_engine: Engine, partner: PyAs2Partner, data_dir: Path, tmp_path: Path
) -> None:
    partner.behaviour.hold_async_mdn = True
    mailbox = await connected(service, as2_engine, partner, mdn_mode=MdnMode.ASYNC)
    result = await cli(data_dir, "as2", "send", "Logistics", str(await a_file(tmp_path)))
    assert result.returncode == 0, result.stderr
    message_id = field(result.stdout, "Message-ID")
    assert field(result.stdout, "Status") == "awaiting-mdn"
    assert "MDN comes asynchronously" in result.stderr
    assert "docbridge as2 messages" in result.stderr
    assert payloads_of(partner, message_id) == [PAYLOAD]
    assert (await row(service, mailbox, message_id)).status is As2Status.AWAITING_MDN


async def test_send_refused_by_the_partner_fails_with_its_answer(
    service: Service, as2_engine: Engine, partner: PyAs2Partner, data_dir: Path, tmp_path: Path
) -> None:
    mailbox = await connected(service, as2_engine, partner)
    before = len(partner.message_ids)
    partner.behaviour.statuses = [403]
    result = await cli(data_dir, "as2", "send", "Logistics", str(await a_file(tmp_path)))
    assert result.returncode == 1
    message_id = field(result.stdout, "Message-ID")
    assert field(result.stdout, "Status") == "failed"
    assert "not delivered: The partner refused it: HTTP 403: not now" in result.stderr
    assert partner.message_ids[before:] == [message_id]  # a refusal is not retried
    assert payloads_of(partner, message_id) == []
    stored = await row(service, mailbox, message_id)
    assert stored.status is As2Status.FAILED and "HTTP 403" in stored.error


async def test_send_tells_each_retry_and_fails_when_the_retries_run_out(
    service: Service, as2_engine: Engine, partner: PyAs2Partner, data_dir: Path, tmp_path: Path
) -> None:
    await connected(service, as2_engine, partner)
    before = len(partner.message_ids)
    attempts = as2_engine.settings.as2_retry.max_attempts
    partner.behaviour.statuses = [503] * attempts
    result = await cli(data_dir, "as2", "send", "Logistics", str(await a_file(tmp_path)))
    assert result.returncode == 1
    assert "attempt failed, retrying: The partner refused it: HTTP 503" in result.stderr
    assert "not delivered: The partner refused it: HTTP 503" in result.stderr
    # Every attempt was the same message (one Message-ID), until the retries ran out.
    assert partner.message_ids[before:] == [field(result.stdout, "Message-ID")] * attempts


@pytest.mark.parametrize("mdn_mode", [MdnMode.SYNC, MdnMode.ASYNC])
async def test_send_without_an_engine_runs_one_for_the_time_it_waits(
    service: Service,
    as2_engine: Engine,
    partner: PyAs2Partner,
    data_dir: Path,
    tmp_path: Path,
    mdn_mode: MdnMode,
) -> None:
    mailbox = await connected(service, as2_engine, partner, mdn_mode=mdn_mode)
    await as2_engine.stop()  # from here on no engine runs for the data directory
    assert not (await service.engine_status()).running
    result = await cli(data_dir, "as2", "send", "Logistics", str(await a_file(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert "no engine runs for this data directory" in result.stderr
    message_id = field(result.stdout, "Message-ID")
    assert payloads_of(partner, message_id) == [PAYLOAD]
    # Asynchronous: the partner posted its MDN to our endpoint, which ran until it came.
    assert (await row(service, mailbox, message_id)).mdn_mode == mdn_mode.value
    assert field(result.stdout, "Status") == "delivered"
    assert field(result.stdout, "MDN") == "processed"
    assert field(result.stdout, "MIC check") == "ok"
    assert not (await service.engine_status()).running  # and it stopped with the command
    assert await sent_copies(data_dir, mailbox) == []


# -- as2 send: what is refused, with nothing queued -----------------------------------------------


async def refused(
    data_dir: Path, service: Service, mailbox: str, *args: str
) -> subprocess.CompletedProcess[str]:
    result = await cli(data_dir, "as2", "send", *args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert await service.as2.messages() == []
    if mailbox:
        assert await sent_copies(data_dir, mailbox) == []
    return result


async def test_send_refuses_bad_input_and_queues_nothing(
    service: Service, partner: PyAs2Partner, data_dir: Path, tmp_path: Path
) -> None:
    config = data_dir / "docbridge.toml"
    await asyncio.to_thread(config.write_text, "[as2]\nmax_body_size = 1024\n", encoding="utf-8")
    file = str(await a_file(tmp_path, data=b"small enough"))
    mailbox = await connect_logistics(service, partner)

    result = await refused(data_dir, service, "", "Nowhere", file)
    assert "No mailbox with uuid or name 'Nowhere'" in result.stderr

    result = await refused(data_dir, service, mailbox, "Logistics", str(tmp_path / "missing.edi"))
    assert "There is no file at" in result.stderr and "missing.edi" in result.stderr
    result = await refused(data_dir, service, mailbox, "Logistics", str(tmp_path))
    assert "is a directory" in result.stderr
    big = await a_file(tmp_path, "big.edi", b"x" * 1025)
    result = await refused(data_dir, service, mailbox, "Logistics", str(big))
    assert "larger than 1024 bytes" in result.stderr and "as2.max_body_size" in result.stderr
    fifo = tmp_path / "a-pipe"
    await asyncio.to_thread(os.mkfifo, fifo)  # reading it would block: refused unopened
    result = await refused(data_dir, service, mailbox, "Logistics", str(fifo))
    assert "is not a regular file" in result.stderr

    await service.set_enabled(mailbox, False)
    result = await refused(data_dir, service, mailbox, "Logistics", file)
    assert "integration of Logistics is off: nothing is sent while it is off" in result.stderr
    assert "--enable" in result.stderr

    other = next(m for m in await service.list_mailboxes() if m.uuid != mailbox)
    await service.set_enabled(other.uuid, True)
    result = await refused(data_dir, service, other.uuid, other.uuid, file)
    assert f"{other.name} is not set up for AS2" in result.stderr
    assert "Save" in result.stderr
    assert partner.requests == 0


async def test_send_refuses_when_the_running_engine_has_no_as2_endpoint(
    service: Service, partner: PyAs2Partner, data_dir: Path, tmp_path: Path
) -> None:
    """``docbridge serve --no-as2``: such an engine never sends, so the message would wait."""
    mailbox = await connect_logistics(service, partner)
    config = await asyncio.to_thread(load_config, data_dir)
    without_as2 = Engine(config, replace(FAST, run_as2=False))
    await without_as2.start()
    try:
        assert "as2" not in (await service.engine_status()).listeners
        result = await cli(data_dir, "as2", "send", "Logistics", str(await a_file(tmp_path)))
    finally:
        await without_as2.stop()
    assert result.returncode == 1
    assert result.stdout == ""
    assert "has no AS2 endpoint" in result.stderr and "nothing was queued" in result.stderr
    assert "--no-as2" in result.stderr
    assert [m for m in await service.as2.messages(mailbox) if m.filename == "order.edi"] == []
    assert await sent_copies(data_dir, mailbox) == []


async def test_certificate_renew_prints_a_new_one_and_the_old_key_still_decrypts(
    service: Service, as2_engine: Engine, partner: PyAs2Partner, data_dir: Path
) -> None:
    mailbox = await connect_logistics(service, partner)
    old = partner.our_certificate.decode()
    renewed = await cli(data_dir, "as2", "certificate", "Logistics", "--renew")
    assert renewed.returncode == 0, renewed.stderr
    assert renewed.stdout.startswith("-----BEGIN CERTIFICATE-----") and renewed.stdout != old
    assert "old key still decrypts" in renewed.stderr
    state = await service.page_state(mailbox)
    assert state.as2_identity is not None
    assert state.as2_identity.certificate_pem.strip() == renewed.stdout.strip()
    # The partner still encrypts to the old certificate: the message is processed.
    built = await asyncio.to_thread(
        partner.build, outgoing_xml(mailbox), sign=True, encrypt=True, mdn_mode="SYNC"
    )
    answer = await partner.send(self_url(as2_engine, mailbox), built)
    assert answer.mdn_disposition == "processed"


async def test_a_partner_tls_certificate_needs_an_https_url_and_can_be_cleared(
    service: Service, partner: PyAs2Partner, data_dir: Path, tmp_path: Path
) -> None:
    from tests.as2.test_https_partner import self_signed_tls

    mailbox = await connect_logistics(service, partner)
    _context, pem = await asyncio.to_thread(self_signed_tls, tmp_path / "tls")
    tls_file = str(tmp_path / "tls" / "tls.pem")
    refused = await cli(
        data_dir, "integration", "set", "Logistics", "--as2-partner-tls-cert", tls_file
    )
    assert refused.returncode != 0 and "https://" in refused.stderr
    https = partner.url.replace("http://", "https://")
    saved = await cli(
        data_dir,
        "integration",
        "set",
        "Logistics",
        "--as2-partner-url",
        https,
        "--as2-partner-tls-cert",
        tls_file,
    )
    assert saved.returncode == 0, saved.stderr
    stored = (await service.page_state(mailbox)).integration.form.as2
    assert stored.partner_tls_certificate.strip() == pem.strip()
    cleared = await cli(data_dir, "integration", "set", "Logistics", "--as2-partner-tls-cert", "")
    assert cleared.returncode == 0, cleared.stderr
    assert (await service.page_state(mailbox)).integration.form.as2.partner_tls_certificate == ""


async def test_certificate_create_makes_ours_before_the_partner_s_is_at_hand(
    service: Service, data_dir: Path
) -> None:
    """Two gateways pairing: each needs the other's certificate to Save; --create breaks the
    circle (found walking the TUI as a new user)."""
    refused = await cli(data_dir, "as2", "certificate", "Logistics")
    assert "--create" in refused.stderr
    made = await cli(data_dir, "as2", "certificate", "Logistics", "--create")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("-----BEGIN CERTIFICATE-----")
    page = await service.page_state((await service.resolve_mailbox("Logistics")).uuid)
    assert page.as2_identity is not None
    assert page.as2_identity.certificate_pem.strip() == made.stdout.strip()
    again = await cli(data_dir, "as2", "certificate", "Logistics", "--create")
    assert again.stdout == made.stdout  # made once: the same certificate after
