"""Inbound AS2 messages: check who sends to whom, verify/decrypt/decompress, store the payload
once, answer with the MDN (RFC 4130).

The payload follows the OUT path: it becomes a claimed customer file (``outbox/`` when it is
envelope XML, else ``coutbox/`` and the OUT rules), whose single file job takes it in. Exactly
once, across crashes and partner retries:

1. the MDN is computed (parse) before anything is stored;
2. the payload is written durably as a claim whose name is fixed by (partner, Message-ID), so a
   repeat lands on the same claim;
3. one transaction records the message as received, with its MDN, and queues the claim's job;
4. only then is the partner answered.

A crash before 3 leaves no record: the partner's retry is processed again and lands on the
same claim. After 3 the retry is a duplicate and gets the original MDN. Only messages we
answered ``processed`` count as duplicates: one we refused (integration off, disk full, a
decryption failure) is processed again when the partner sends it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from core.as2 import cms
from core.as2.messages import (
    AUTHENTICATION_FAILED,
    UNEXPECTED_ERROR,
    InboundMessage,
    OutboundMdn,
    refusal_mdn,
)
from core.as2.partnership import Partnership, read_partnership, with_keys
from core.config import Config
from core.engine.file_handler import Claim, place_claim
from core.errors import DocbridgeError
from core.models import As2Status, AttemptOutcome, JobKind
from core.sftp.folders import validate_name
from core.storage import as2_messages, jobs, logs
from core.storage.as2_messages import InboundRecord, StoredMdn
from core.storage.connection import Tx
from core.storage.store import Store

log = logging.getLogger("docbridge.as2")
RULE_LABEL = "as2:receive"
_ENVELOPE_START = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*<envelope[\s>/]", re.DOTALL
)


@dataclass(frozen=True)
class Reply:
    """The HTTP answer to one request."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


def text_reply(status: int, text: str) -> Reply:
    return Reply(status, (("Content-Type", "text/plain; charset=utf-8"),), f"{text}\n".encode())


def looks_like_envelope(data: bytes) -> bool:
    """Envelope XML goes where ``outbox/`` files go; anything else to the OUT rules."""
    return bool(_ENVELOPE_START.match(data[:4096]))


def claim_token(partner_id: str, message_id: str) -> str:
    """The same for every retry of one message: a repeat lands on the same claim."""
    return hashlib.sha256(f"{partner_id}\0{message_id}".encode()).hexdigest()[:16]


class Receiver:
    def __init__(self, db: Store, config: Config, taken: Callable[[JobKind], None]) -> None:
        self.db = db
        self.config = config
        self._taken = taken  # wakes the engine's loop for the job kind just queued

    async def receive(
        self, mailbox_uuid: str, headers: list[tuple[str, str]], body: bytes | bytearray
    ) -> Reply:
        fields = {name.lower(): value for name, value in headers}
        as2_from = _unquote(fields.get("as2-from", ""))
        as2_to = _unquote(fields.get("as2-to", ""))
        message_id = fields.get("message-id", "").strip().strip("<>")
        if not (as2_from and as2_to and message_id):
            return text_reply(
                400, "Not an AS2 message: the AS2-From, AS2-To and Message-ID headers are required."
            )
        partnership = await self.db.read(read_partnership, mailbox_uuid)
        if partnership is None or not partnership.is_as2:
            log.warning(
                "AS2 message %s from %r to an unknown mailbox refused", message_id, as2_from
            )
            return text_reply(404, "No AS2 mailbox at this URL.")
        refusal = _refusal(partnership, as2_from, as2_to)
        if refusal is not None:
            status, modifier, text = refusal
            await self.db.write(_log_refusal, mailbox_uuid, message_id, as2_from, text)
            log.warning("AS2 message %s from %r refused: %s", message_id, as2_from, text)
            return _mdn_reply(status, refusal_mdn(headers, modifier, text), text)
        duplicate = await self.db.read(
            as2_messages.processed_inbound, mailbox_uuid, as2_from, message_id
        )
        if duplicate is not None:
            return await self._answer_duplicate(mailbox_uuid, message_id, duplicate)
        try:
            message = await asyncio.to_thread(self._parse, partnership, headers, body)
        except (
            OSError,
            ValueError,
        ) as exc:  # our key file unreadable, say: not the partner's fault
            log.exception("AS2 message %s could not be processed", message_id)
            text = "The message could not be processed now; send it again later."
            await self.db.write(_log_refusal, mailbox_uuid, message_id, as2_from, str(exc))
            return _mdn_reply(500, refusal_mdn(headers, UNEXPECTED_ERROR, text), text)
        if not message.processed:
            return await self._refused(partnership, message_id, as2_from, message)
        return await self._take(partnership, message_id, as2_from, headers, message)

    def _parse(
        self, partnership: Partnership, headers: list[tuple[str, str]], body: bytes | bytearray
    ) -> InboundMessage:
        keyed = with_keys(partnership)
        limit = self.config.as2.max_payload_size
        return cms.parse_message(headers, body, keyed.all_of_us, keyed.partner, limit)

    async def _take(
        self,
        partnership: Partnership,
        message_id: str,
        partner_id: str,
        headers: list[tuple[str, str]],
        message: InboundMessage,
    ) -> Reply:
        folder = "outbox" if looks_like_envelope(message.payload) else "coutbox"
        token = claim_token(partner_id, message_id)
        name = _file_name(message.filename, token, folder)
        try:
            claim = await asyncio.to_thread(
                place_claim,
                self.config.mailboxes_dir,
                partnership.mailbox_uuid,
                folder,
                token,
                name,
                message.payload,
            )
        except (OSError, DocbridgeError) as exc:
            log.error("AS2 message %s could not be stored: %s", message_id, exc)
            text = "The message could not be stored; nothing was kept. Send it again later."
            mdn = refusal_mdn(headers, UNEXPECTED_ERROR, text)
            refused = _record(partnership, message_id, partner_id, message, mdn, str(exc))
            await self.db.write_grouped(_store_refusal, refused, message_id, partner_id)
            # 503: our trouble, and passing (a full disk): every AS2 sender retries it.
            return _mdn_reply(503, mdn, text)
        record = _record(partnership, message_id, partner_id, message, message.mdn, "", claim)
        outcome = await self.db.write_grouped(_store_received, record, claim)
        if isinstance(outcome, tuple):  # a retry that raced the first copy: that one stands
            return await self._answer_duplicate(partnership.mailbox_uuid, message_id, outcome)
        self._taken(JobKind.FILE)
        if record.mdn_mode == "async":
            self._taken(JobKind.AS2_MDN)
        return _mdn_reply(200, message.mdn, "Received.", asynchronous=record.mdn_mode == "async")

    async def _refused(
        self, partnership: Partnership, message_id: str, partner_id: str, message: InboundMessage
    ) -> Reply:
        record = _record(
            partnership, message_id, partner_id, message, message.mdn, message.reason or ""
        )
        await self.db.write_grouped(_store_refusal, record, message_id, partner_id)
        log.warning(
            "AS2 message %s from %r: %s (%s)",
            message_id,
            partner_id,
            message.disposition,
            message.reason,
        )
        if record.mdn_mode == "async":
            self._taken(JobKind.AS2_MDN)
        text = message.reason or message.disposition
        return _mdn_reply(200, message.mdn, text, asynchronous=record.mdn_mode == "async")

    async def _answer_duplicate(
        self,
        mailbox_uuid: str,
        message_id: str,
        duplicate: tuple[int, StoredMdn | None, str, str],
    ) -> Reply:
        row_id, mdn, mode, _url = duplicate
        await self.db.write(_log_duplicate, mailbox_uuid, message_id, row_id, mode)
        if mode == "async":
            self._taken(JobKind.AS2_MDN)
            return text_reply(200, "Already received; the MDN is sent again.")
        if mdn is None:
            return text_reply(200, "Already received.")
        return Reply(200, mdn.headers, mdn.body)


def _refusal(partnership: Partnership, as2_from: str, as2_to: str) -> tuple[int, str, str] | None:
    """Why a request is refused before its body is read: (HTTP status, modifier, text)."""
    settings = partnership.settings
    if as2_to != settings.self_id:
        text = f"AS2-To '{as2_to}' is not the AS2 id of this mailbox."
        return 403, AUTHENTICATION_FAILED, text
    if not settings.partner_id or as2_from != settings.partner_id:
        text = f"Unknown trading partner: AS2-From '{as2_from}' is not configured here."
        return 403, AUTHENTICATION_FAILED, text
    if not partnership.enabled or not partnership.ready:
        text = "The integration for this mailbox is off; nothing was stored. Send it again later."
        return 503, UNEXPECTED_ERROR, text
    return None


def _record(
    partnership: Partnership,
    message_id: str,
    partner_id: str,
    message: InboundMessage,
    mdn: OutboundMdn | None,
    error: str,
    claim: Claim | None = None,
) -> InboundRecord:
    delivery = message.receipt_delivery_option or ""
    mode = "none" if mdn is None else ("async" if delivery else "sync")
    return InboundRecord(
        mailbox_uuid=partnership.mailbox_uuid,
        partner_id=partner_id,
        message_id=message_id,
        status=As2Status.RECEIVED if claim is not None else As2Status.REFUSED,
        filename=claim.name if claim else (message.filename or ""),
        size=len(message.payload),
        signed=message.signed,
        encrypted=message.encrypted,
        compressed=message.compressed,
        mic=message.mic or "",
        mic_algorithm=message.mic_algorithm or "",
        mdn_mode=mode,
        mdn_url=delivery,
        mdn_disposition=message.disposition if claim else _disposition_of(message),
        mdn=StoredMdn(mdn.headers, mdn.body) if mdn else None,
        error=error,
        job_ref=claim.ref if claim else "",
    )


def _disposition_of(message: InboundMessage) -> str:
    if message.processed:  # stored failed after a good parse: the refusal MDN says so
        return f"processed/error: {UNEXPECTED_ERROR}"
    return message.disposition


def _file_name(filename: str | None, token: str, folder: str) -> str:
    if filename:
        try:
            return validate_name(filename)
        except DocbridgeError:
            pass
    return f"as2-{token}.{'xml' if folder == 'outbox' else 'dat'}"


def _mdn_reply(
    status: int, mdn: OutboundMdn | None, text: str, *, asynchronous: bool = False
) -> Reply:
    if mdn is None or asynchronous:
        return text_reply(status, text)
    return Reply(status, mdn.headers, mdn.body)


def _unquote(value: str) -> str:
    value = value.strip()
    return value[1:-1] if len(value) > 1 and value[0] == value[-1] == '"' else value


# -- units of work (Database.write) ---------------------------------------------------------------


def _store_received(
    tx: Tx, record: InboundRecord, claim: Claim
) -> int | tuple[int, StoredMdn | None, str, str]:
    """Record the message and queue its payload's file job; a duplicate found now wins."""
    earlier = as2_messages.processed_inbound(
        tx, record.mailbox_uuid, record.partner_id, record.message_id
    )
    if earlier is not None:
        return earlier
    row_id = as2_messages.record_inbound(tx, record)
    payload = dict(claim.payload, as2_message_id=record.message_id)
    jobs.enqueue(tx, JobKind.FILE, claim.ref, claim.mailbox_uuid, payload)
    _queue_async_mdn(tx, record, row_id)
    logs.append_activity(
        tx, record.mailbox_uuid, RULE_LABEL, AttemptOutcome.RECEIVED, file_name=claim.name
    )
    return row_id


def _store_refusal(tx: Tx, record: InboundRecord, message_id: str, partner_id: str) -> None:
    try:
        row_id = as2_messages.record_inbound(tx, record)
    except sqlite3.IntegrityError:  # received meanwhile by a racing retry: that one stands
        return
    _queue_async_mdn(tx, record, row_id)
    logs.append_activity(
        tx,
        record.mailbox_uuid,
        RULE_LABEL,
        AttemptOutcome.REFUSED,
        file_name=record.filename or None,
        error=f"{partner_id} {message_id}: {record.mdn_disposition}. {record.error}".strip(),
    )


def _queue_async_mdn(tx: Tx, record: InboundRecord, row_id: int) -> None:
    if record.mdn_mode == "async":
        ref = f"{row_id}:{as2_messages.attempts_of(tx, row_id)}"
        jobs.enqueue(tx, JobKind.AS2_MDN, ref, record.mailbox_uuid, {"row": row_id})


def _log_refusal(tx: Tx, mailbox_uuid: str, message_id: str, partner_id: str, text: str) -> None:
    logs.append_activity(
        tx,
        mailbox_uuid,
        RULE_LABEL,
        AttemptOutcome.REFUSED,
        error=f"{partner_id} {message_id}: {text}",
    )


def _log_duplicate(tx: Tx, mailbox_uuid: str, message_id: str, row_id: int, mode: str) -> None:
    logs.append_activity(
        tx,
        mailbox_uuid,
        RULE_LABEL,
        AttemptOutcome.DUPLICATE,
        error=f"{message_id} was already received; answered with the original MDN.",
    )
    if mode == "async":
        count = jobs.count_refs(tx, JobKind.AS2_MDN, f"{row_id}:")
        jobs.enqueue(tx, JobKind.AS2_MDN, f"{row_id}:dup{count}", mailbox_uuid, {"row": row_id})
