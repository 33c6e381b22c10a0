"""``docbridge as2`` subcommands: the AS2 messages in and out with their MDNs, our self
certificate to give the partner, and a file sent now to test a partnership.

Everything goes through the service (:class:`core.service.Service`); errors are domain errors
that :func:`core.cli.main` prints as one line each, exit 1. What a command produces (the list,
the certificate, the Message-ID and the MDN's verdict) goes to stdout; what describes it
(counts, which engine sends, retries) goes to stderr.

``as2 send`` queues the file as the engine's own messages are queued and waits for the outcome
the engine records: the running engine of the data directory sends it, or, when none runs, a
temporary one in this process (AS2 endpoint on, for asynchronous MDNs; no SFTP) for as long as
the command waits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cli_output import Handler, page_limit, print_json, say
from core.errors import DocbridgeError
from core.models import As2Message, As2Status, JobKind
from core.service import Service

if TYPE_CHECKING:
    from core.engine.engine import Engine

POLL_S = 0.2
"""How often ``as2 send`` looks at the message's row while it waits."""
FINAL = (As2Status.DELIVERED, As2Status.FAILED)


def add_as2_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``as2`` on ``commands`` (the top-level subparsers; ``common`` carries
    ``--data-dir``)."""
    as2 = commands.add_parser("as2", parents=[common], help="AS2 messages, certificate, test send")
    as2_commands = as2.add_subparsers(dest="action", required=True, metavar="ACTION")

    messages = as2_commands.add_parser(
        "messages", parents=[common], help="AS2 messages in and out with their MDNs, newest first"
    )
    messages.add_argument("--mailbox", metavar="MAILBOX", help="uuid or name")
    messages.add_argument(
        "--limit", type=page_limit, default=200, metavar="N", help="at most N (default 200)"
    )
    messages.add_argument("--json", action="store_true")

    certificate = as2_commands.add_parser(
        "certificate", parents=[common], help="our self certificate (PEM) to give the partner"
    )
    certificate.add_argument("mailbox", metavar="MAILBOX", help="uuid or name")
    certificate.add_argument(
        "--create",
        action="store_true",
        help="make it now if the mailbox has none yet (before the partner's certificate, which "
        "Save needs, is at hand)",
    )
    certificate.add_argument(
        "--renew",
        action="store_true",
        help="make a new key pair and certificate first (the old key still decrypts while "
        "the partner moves to the new certificate)",
    )

    send = as2_commands.add_parser(
        "send",
        parents=[common],
        help="send a file to the partner now and wait for its MDN (to test a partnership)",
    )
    send.add_argument("mailbox", metavar="MAILBOX", help="uuid or name")
    send.add_argument("file", metavar="FILE", type=Path)
    send.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="S",
        help="wait at most S seconds (default: the HTTP timeout, as2.http_timeout_seconds, + 30)",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 86400")
    return value


# -- as2 messages -----------------------------------------------------------------------------


async def _messages(service: Service, args: argparse.Namespace) -> int:
    mailbox = await service.resolve_mailbox(args.mailbox) if args.mailbox else None
    found = await service.as2.messages(mailbox.uuid if mailbox else None, args.limit)
    names = {m.uuid: m.name for m in await service.list_mailboxes()}
    if args.json:
        print_json([_message_json(m, names) for m in found])
        return 0
    for m in found:
        where = "" if mailbox else f"{names.get(m.mailbox_uuid, m.mailbox_uuid)}  "
        error = f"  error: {m.error}" if m.error else ""
        say(
            f"{m.created_at}  {where}{m.direction:<3}  {m.status.value:<12}  "
            f"{m.partner_id or '-'}  {m.message_id}  {m.filename or '-'}  {m.size:,} B  "
            f"MDN: {_disposition(m)}  MIC: {m.mic_check or '-'}{error}"
        )
    sys.stdout.flush()
    if not found:
        say("No AS2 messages.", err=True)
    elif len(found) == args.limit:
        say(f"Showing the newest {len(found):,} AS2 messages; --limit N for more.", err=True)
    else:
        say(f"{len(found):,} AS2 messages (newest first).", err=True)
    return 0


def _message_json(message: As2Message, names: dict[str, str]) -> dict[str, Any]:
    data = asdict(message)
    data["status"] = message.status.value
    data["mailbox_name"] = names.get(message.mailbox_uuid, "")
    return data


def _disposition(message: As2Message) -> str:
    if message.mdn_disposition:
        return message.mdn_disposition
    if message.mdn_mode == "none":
        return "none asked"
    if message.status is As2Status.AWAITING_MDN:
        return "awaited (async)"
    return "-"


# -- as2 certificate ----------------------------------------------------------------------------


async def _certificate(service: Service, args: argparse.Namespace) -> int:
    mailbox = await service.resolve_mailbox(args.mailbox)
    if args.create:
        await service.ensure_as2_identity(mailbox.uuid)  # the one Save with AS2 then uses
    identity = await service.as2.certificate(mailbox.uuid)  # refuses a mailbox without one
    if args.renew:
        identity = await service.as2.renew_identity(mailbox.uuid)
        say(
            f"{mailbox.name}: new certificate made; it signs from now on, and the old key "
            "still decrypts. Send this certificate to the partner.",
            err=True,
        )
    pem = identity.certificate_pem
    sys.stdout.write(pem if pem.endswith("\n") else f"{pem}\n")
    sys.stdout.flush()
    say(
        f"{mailbox.name}: {identity.subject}, SHA-256 {identity.fingerprint_sha256}, "
        f"valid until {identity.not_after}",
        err=True,
    )
    return 0


# -- as2 send -----------------------------------------------------------------------------------


async def _send(service: Service, args: argparse.Namespace) -> int:
    mailbox = await service.resolve_mailbox(args.mailbox)
    timeout = args.timeout or float(service.config.as2.http_timeout_seconds + 30)
    status = await service.engine_status()
    if status.running and "as2" not in status.listeners:
        raise DocbridgeError(
            f"The engine that runs for this data directory (pid {status.pid} on {status.host}) "
            "has no AS2 endpoint, so it sends no AS2 messages; nothing was queued.",
            "Restart it with AS2 ('docbridge serve' without --no-as2).",
        )
    message_id = await service.as2.send_file(mailbox.uuid, str(args.file))
    say(f"Message-ID: {message_id}")
    sys.stdout.flush()
    engine = None
    if not status.running:
        engine = await _temporary_engine(service, message_id)
    try:
        if engine is not None:
            engine.wake(JobKind.AS2_SEND)
        message = await _settled(service, mailbox.uuid, message_id, timeout, engine is not None)
        if engine is not None and message is not None and message.status in FINAL:
            await _job_ended(engine)
    finally:
        if engine is not None:
            await engine.stop()
    return _outcome(message, timeout, temporary=engine is not None)


async def _temporary_engine(service: Service, message_id: str) -> Engine | None:
    """An engine in this process while the command waits; None if another one started."""
    say(
        "docbridge: no engine runs for this data directory; one runs here until the message "
        "is settled.",
        err=True,
    )
    try:
        return await service.as2.start_engine()
    except DocbridgeError as exc:
        raise DocbridgeError(
            f"Message {message_id} is queued, but no engine can run here: {exc}",
            "It is sent when the engine runs ('docbridge serve' or the TUI); "
            "'docbridge as2 messages' shows it.",
        ) from exc


async def _job_ended(engine: Engine) -> None:
    """Let the temporary engine end the job it settled (an asynchronous MDN settles the message
    at once, its job at the sender's next pass), which also deletes the copy of a delivered file:
    two passes of the sender, as :meth:`Engine.wait_for_cycles` advises, within reason."""
    from core.engine.engine import EngineLoop

    with contextlib.suppress(TimeoutError):
        await engine.wait_for_cycles(EngineLoop.AS2_SEND, 2, timeout_s=10.0)


async def _settled(
    service: Service, mailbox_uuid: str, message_id: str, wait_s: float, temporary: bool
) -> As2Message | None:
    """The message once delivered or failed, or taken with its MDN to come asynchronously
    (a temporary engine waits for that MDN: its endpoint is gone once the command ends); at
    the timeout, as it stands then. Each failed attempt the engine retries is told."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    told = ""
    while True:
        message = await _find(service, mailbox_uuid, message_id)
        if message is not None:
            if message.status in FINAL:
                return message
            if message.status is As2Status.AWAITING_MDN and not temporary:
                return message
            if message.error and message.error != told and message.status is As2Status.SENDING:
                say(f"docbridge: attempt failed, retrying: {message.error}", err=True)
                told = message.error
        if loop.time() >= deadline:
            return message
        await asyncio.sleep(POLL_S)


async def _find(service: Service, mailbox_uuid: str, message_id: str) -> As2Message | None:
    return await service.as2.message(mailbox_uuid, "out", message_id)


def _outcome(message: As2Message | None, timeout: float, *, temporary: bool) -> int:
    """Print where the message stands; 0 when delivered, or taken with an MDN still to come."""
    later = (
        "it is sent when the engine runs ('docbridge serve' or the TUI)"
        if temporary
        else "the engine keeps retrying it"
    )
    if message is None:
        say(f"docbridge: the message is not settled within {timeout:g} s; {later}.", err=True)
        return 1
    say(f"Partner:    {message.partner_id}")
    say(f"File:       {message.filename} ({message.size:,} bytes as sent)")
    say(f"Status:     {message.status.value}")
    say(f"MDN:        {_disposition(message)}")
    say(f"MIC check:  {message.mic_check or '-'}")
    sys.stdout.flush()
    if message.status is As2Status.DELIVERED:
        return 0
    if message.status is As2Status.FAILED:
        say(f"docbridge: not delivered: {message.error or 'no reason recorded'}", err=True)
        return 1
    if message.status is As2Status.AWAITING_MDN:
        where = (
            "while the engine runs ('docbridge serve' or the TUI)" if temporary else "at the engine"
        )
        say(
            f"The partner took the message; its MDN comes asynchronously and is taken in "
            f"{where}: 'docbridge as2 messages' shows it.",
            err=True,
        )
        return 0
    last = f" (last attempt: {message.error})" if message.error else ""
    say(
        f"docbridge: not settled within {timeout:g} s{last}; {later}: "
        "'docbridge as2 messages' shows its outcome.",
        err=True,
    )
    return 1


HANDLERS: dict[tuple[str, str | None], Handler] = {
    ("as2", "messages"): _messages,
    ("as2", "certificate"): _certificate,
    ("as2", "send"): _send,
}

__all__ = ["HANDLERS", "add_as2_commands"]
