"""AS2 messages to partners, and the MDNs going either way, as durable jobs.

An ``as2_send`` job is one outbound message, queued in the same transaction as the envelope's
outcome (default rule 1, or an IN rule's converted file). Its Message-ID is fixed when it is
queued, so every retry carries the same one. The job stays open until the partner's MDN is
checked: with a synchronous MDN that is the POST's answer; with an asynchronous one the job
waits (deferred to the deadline) and the MDN's arrival wakes it. One place ends the job:
:func:`_finish`, in one transaction with the envelope's completion and the activity entry.

An ``as2_mdn`` job is an asynchronous MDN we owe a partner, posted until it is accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from core.as2.client import Answer, PartnerUnreachable, Poster
from core.as2.messages import InboundMdn, parse_inbound_mdn
from core.as2.outbound import BuiltMessage, build_message
from core.as2.partnership import Partnership, read_partnership, with_keys
from core.as2.receiver import Reply, text_reply
from core.as2.server import mdn_url
from core.clock import timestamp
from core.config import Config
from core.engine.as2_queue import SOURCE_ENVELOPE, SOURCE_FILE
from core.models import As2Status, AttemptOutcome, Job, JobKind, JobState
from core.storage import as2_messages, envelopes, jobs, logs
from core.storage.as2_messages import Outgoing
from core.storage.connection import Tx
from core.storage.store import Store

log = logging.getLogger("docbridge.as2")
RULE_LABEL = "as2:send"


@dataclass(frozen=True)
class SendWork:
    job: Job
    partnership: Partnership | None
    row: Outgoing | None
    data: bytes | None  # the envelope XML; None for a file (read in a thread) or when gone


@dataclass(frozen=True)
class Result:
    """How one attempt ended: delivered, waiting for an async MDN, or failed (retry/park)."""

    done: bool = False
    wait_until: float | None = None
    error: str = ""
    permanent: bool = False
    mdn: InboundMdn | None = None
    mic_check: str = ""


class As2Sending:
    def __init__(self, db: Store, config: Config, retry: jobs.RetryPolicy) -> None:
        self.db = db
        self.config = config
        self.retry = retry
        self.poster = Poster(float(config.as2.http_timeout_seconds))

    async def close(self) -> None:
        await self.poster.close()

    # -- outbound messages -------------------------------------------------------------------

    async def send_all(self, claimed: list[Job]) -> None:
        await asyncio.gather(*(self._send_one(job) for job in claimed))

    async def _send_one(self, job: Job) -> None:
        work = await self.db.read(_load, job)
        try:
            result = await self._attempt(work)
        except Exception as exc:  # a defect: this message fails alone, with the error on record
            log.exception("AS2 message %s failed", job.ref)
            result = Result(error=f"Internal error: {exc}")
        finished = await self.db.write(_finish, work, result, self.retry)
        if finished and work.job.payload.get("source") == SOURCE_FILE:
            # The converted file was sent and acknowledged: its copy here is no longer needed.
            path = self._file_path(work)
            with contextlib.suppress(OSError):
                await asyncio.to_thread(path.unlink, missing_ok=True)

    async def _attempt(self, work: SendWork) -> Result:
        row, partnership = work.row, work.partnership
        if row is None or partnership is None:
            return Result(error="The message or its mailbox is gone.", permanent=True)
        if row.status is As2Status.DELIVERED:
            return Result(done=True)
        if row.status is As2Status.FAILED and row.error:
            return Result(error=row.error, permanent=True)
        if row.status is As2Status.AWAITING_MDN:
            if row.mdn_due is not None and timestamp() < row.mdn_due:
                return Result(wait_until=row.mdn_due)
            seconds = self.config.as2.mdn_deadline_seconds
            return Result(error=f"No MDN came from the partner within {seconds} s.", permanent=True)
        if not partnership.ready:
            text = "The integration is no longer set up for AS2 (protocol, keys or partner)."
            return Result(error=text, permanent=True)
        data = work.data
        if data is None:
            try:
                data = await asyncio.to_thread(self._file_path(work).read_bytes)
            except OSError as exc:
                return Result(error=f"The converted file cannot be read: {exc}", permanent=True)
        built = await asyncio.to_thread(self._build, partnership, row, work, data)
        mode = partnership.settings.mdn_mode.value
        await self.db.write(_record_built, row.id, built, mode, partnership.settings.partner_id)
        url, tls = partnership.settings.partner_url, partnership.settings.partner_tls_certificate
        try:
            answer = await self.poster.post(url, built.headers, built.body, tls)
        except PartnerUnreachable as exc:
            return Result(error=str(exc))
        return await self._answered(partnership, row, built, answer)

    def _build(
        self, partnership: Partnership, row: Outgoing, work: SendWork, data: bytes
    ) -> BuiltMessage:
        keyed = with_keys(partnership)
        return build_message(
            data,
            filename=str(work.job.payload.get("filename") or "payload.dat"),
            message_id=row.message_id,
            us=keyed.us,
            partner=keyed.partner_to_encrypt_to,
            options=keyed.send_options(mdn_url(self.config.as2, partnership.mailbox_uuid)),
        )

    async def _answered(
        self, partnership: Partnership, row: Outgoing, built: BuiltMessage, answer: Answer
    ) -> Result:
        if not answer.ok:
            return Result(
                error=f"The partner refused it: {answer.describe()}", permanent=not answer.retryable
            )
        mode = partnership.settings.mdn_mode.value
        if mode == "async":
            due = timestamp() + self.config.as2.mdn_deadline_seconds
            await self.db.write(as2_messages.mark_awaiting_mdn, row.id, due)
            return Result(wait_until=due)
        if mode == "none":
            return Result(done=True)
        pem = partnership.settings.partner_certificate
        mdn = await asyncio.to_thread(read_mdn, list(answer.headers), answer.body, pem)
        sent = replace(row, mic=built.mic, mic_algorithm=built.mic_algorithm, signed=built.signed)
        return _judge(mdn, sent, partnership.settings.mdn_signed)

    def _file_path(self, work: SendWork) -> Path:
        relative = str(work.job.payload.get("file", ""))
        return self.config.mailboxes_dir / work.job.mailbox_uuid / relative

    # -- asynchronous MDNs from partners --------------------------------------------------------

    async def receive_mdn(
        self, mailbox_uuid: str, headers: list[tuple[str, str]], body: bytes | bytearray
    ) -> Reply:
        partnership = await self.db.read(read_partnership, mailbox_uuid)
        if partnership is None or not partnership.is_as2:
            return text_reply(404, "No AS2 mailbox at this URL.")
        pem = partnership.settings.partner_certificate
        mdn = await asyncio.to_thread(read_mdn, headers, bytes(body), pem)  # a few KB
        if not mdn.original_message_id:
            return text_reply(400, "Not an MDN: no Original-Message-ID was found.")
        row = await self.db.read(as2_messages.get_outgoing, mailbox_uuid, mdn.original_message_id)
        if row is None:
            return text_reply(404, f"No message {mdn.original_message_id} was sent from here.")
        result = _judge(mdn, row, partnership.settings.mdn_signed)
        await self.db.write(_record_async_mdn, row, result)
        return text_reply(200, "MDN received.")

    # -- MDNs we owe partners ------------------------------------------------------------------

    async def post_owed_mdns(self, claimed: list[Job]) -> None:
        for job in claimed:
            row_id = int(job.payload.get("row", 0))
            mdn, _partner, url = await self.db.read(as2_messages.stored_mdn, row_id)
            if mdn is None or not url:
                await self.db.write(_mdn_job_done, job, "", self.retry, True)
                continue
            try:
                answer = await self.poster.post(url, mdn.headers, mdn.body)
            except PartnerUnreachable as exc:
                await self.db.write(_mdn_job_done, job, str(exc), self.retry, False)
                continue
            error = "" if answer.ok else f"The partner refused the MDN: {answer.describe()}"
            permanent = not answer.ok and not answer.retryable
            await self.db.write(_mdn_job_done, job, error, self.retry, permanent)


def read_mdn(headers: list[tuple[str, str]], body: bytes, partner_pem: str) -> InboundMdn:
    """The MDN, its signature checked with each of the partner's certificates in turn (two
    while it rolls over). Blocking: run it in a thread."""
    from core.as2.certificates import split_certificates

    blocks = split_certificates(partner_pem) or [partner_pem.encode()]
    mdn = parse_inbound_mdn(headers, body, blocks[0])
    for block in blocks[1:]:
        if not mdn.signed or mdn.signature_verified:
            break
        mdn = parse_inbound_mdn(headers, body, block)
    return mdn


def _judge(mdn: InboundMdn, row: Outgoing, want_signed: bool) -> Result:
    """Whether an MDN acknowledges our message: signature, Original-Message-ID, disposition, MIC."""
    if mdn.signed and not mdn.signature_verified:
        return Result(
            error=f"The MDN's signature is not the partner's: {mdn.reason}", permanent=True
        )
    if want_signed and not mdn.signed:
        return Result(
            error="The MDN is not signed, though a signed MDN was asked for.", permanent=True
        )
    if mdn.original_message_id != row.message_id:
        text = f"The MDN is for message {mdn.original_message_id}, not {row.message_id}."
        return Result(error=text, permanent=True, mdn=mdn)
    disposition = (mdn.disposition or "").strip()
    lowered = disposition.lower()
    if not lowered.startswith("processed") or "error" in lowered or "failed" in lowered:
        return Result(
            error=f"The partner answered: {disposition or 'no disposition'}",
            permanent=True,
            mdn=mdn,
        )
    if row.mic and not row.signed:
        # An unsigned message: products differ on whether and over what they compute a MIC
        # (pyas2lib and docbridge return none), and nothing signed protects it anyway. A MIC
        # that matches is noted; any other answer is no failure.
        matched = (mdn.mic or "").strip() == row.mic
        return Result(done=True, mdn=mdn, mic_check="ok" if matched else "")
    if row.mic:
        if (mdn.mic or "").strip() != row.mic:
            text = f"The MDN's MIC {mdn.mic or '(none)'} differs from ours ({row.mic})."
            return Result(error=text, permanent=True, mdn=mdn, mic_check="mismatch")
        return Result(done=True, mdn=mdn, mic_check="ok")
    return Result(done=True, mdn=mdn)


# -- units of work ------------------------------------------------------------------------------


def _load(tx: Tx, job: Job) -> SendWork:
    partnership = read_partnership(tx, job.mailbox_uuid)
    row = as2_messages.get_outgoing(tx, job.mailbox_uuid, str(job.payload.get("message_id", "")))
    data: bytes | None = None
    if job.payload.get("source") == SOURCE_ENVELOPE:
        delivery = envelopes.get_delivery(tx, str(job.payload.get("envelope", job.ref)))
        data = delivery.xml.encode("utf-8") if delivery else b""
    return SendWork(job, partnership, row, data)


def _record_built(tx: Tx, row_id: int, built: BuiltMessage, mode: str, partner_id: str) -> None:
    as2_messages.record_built(
        tx,
        row_id,
        partner_id=partner_id,
        size=len(built.body),
        mic=built.mic,
        mic_algorithm=built.mic_algorithm,
        mdn_mode=mode,
        signed=built.signed,
        encrypted=built.encrypted,
        compressed=built.compressed,
    )


def _finish(tx: Tx, work: SendWork, result: Result, retry: jobs.RetryPolicy) -> bool:
    """Record one attempt and end or reschedule the job; True when the message was delivered."""
    job, row = work.job, work.row
    envelope_uuid = str(job.payload.get("envelope", "")) or None
    filename = str(job.payload.get("filename", "")) or None
    if result.wait_until is not None:
        # An MDN that came while this attempt was under way: run again now to end the job.
        settled = row is not None and as2_messages.final_status(tx, row.id) is not None
        # Waiting for an asynchronous MDN is not a failed try.
        jobs.defer(tx, job, 0.0 if settled else result.wait_until)
        return False
    if row is not None and result.mdn is not None:
        as2_messages.record_mdn(
            tx,
            row.id,
            disposition=result.mdn.disposition or "",
            mic_check=result.mic_check,
            delivered=result.done,
            error=result.error,
        )
    if result.done:
        if row is not None and result.mdn is None and row.status is not As2Status.DELIVERED:
            as2_messages.record_mdn(
                tx, row.id, disposition="", mic_check="", delivered=True, error=""
            )
        jobs.complete(tx, job)
        if envelope_uuid:
            envelopes.mark_completed(tx, envelope_uuid)
        logs.append_activity(
            tx,
            job.mailbox_uuid,
            RULE_LABEL,
            AttemptOutcome.SENT,
            envelope_uuid=envelope_uuid,
            file_name=filename,
        )
        return True
    state = jobs.fail(tx, job, result.error, retry, permanent=result.permanent)
    if row is not None:
        as2_messages.mark_attempt_failed(tx, row.id, result.error, state is JobState.PARKED)
    logs.append_activity(
        tx,
        job.mailbox_uuid,
        RULE_LABEL,
        state,
        envelope_uuid=envelope_uuid,
        file_name=filename,
        error=result.error,
    )
    return False


def _record_async_mdn(tx: Tx, row: Outgoing, result: Result) -> None:
    mdn = result.mdn
    as2_messages.record_mdn(
        tx,
        row.id,
        disposition=(mdn.disposition or "") if mdn is not None else "",
        mic_check=result.mic_check,
        delivered=result.done,
        error=result.error,
    )
    # The waiting job runs now and ends there, with the envelope and the activity entry.
    jobs.due_now(tx, JobKind.AS2_SEND, as2_messages.job_ref_of(tx, row.id))


def _mdn_job_done(tx: Tx, job: Job, error: str, retry: jobs.RetryPolicy, permanent: bool) -> None:
    if not error:  # posted; or nothing to post any more (the record is gone)
        jobs.complete(tx, job)
        return
    state = jobs.fail(tx, job, error, retry, permanent=permanent)
    logs.append_activity(tx, job.mailbox_uuid, "as2:mdn", state, error=error)
