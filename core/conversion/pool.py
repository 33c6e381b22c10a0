"""A pool of worker processes that run conversion maps, each under a time limit.

Why not ``concurrent.futures.ProcessPoolExecutor``: killing one of its workers breaks the whole
pool (``BrokenProcessPool``) and fails every transform in flight. Here each job slot owns one
process and a pipe; a transform that overruns its time limit gets its process killed (SIGKILL),
the caller gets :class:`XsltTimeLimit`, and the slot starts a fresh process for the next job.
Nothing else waits: the other slots keep running.

Processes are started with ``spawn`` (no copy of the caller's threads, locks or event loop) and
lazily, on the first job a slot needs them for. As with any spawn pool, the program's main module
must be importable without side effects (a console script or ``python -m``; not ``<stdin>``).
Blocking pipe I/O and process start/stop happen on the pool's own threads, never on the event
loop. Each worker caches compiled stylesheets by the hash of their text, so one rule revision
compiles once per process.

Many small transforms of one stylesheet (a batch of received envelopes) go through
:meth:`TransformPool.run_transforms`: a few items per pipe message, one thread hop per message,
instead of one of each per transform (a round trip cost about as much as a small transform).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import resource
import signal
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, NamedTuple

from core.conversion.errors import (
    Wire,
    XsltError,
    XsltRuntimeError,
    XsltTimeLimit,
    from_wire,
    to_wire,
)
from core.conversion.extensions import LookupContext, use_lookup_context
from core.conversion.xslt import (
    LARGE_SOURCE_BYTES,
    CompiledStylesheet,
    XsltOutput,
    clear_error_stream,
    compile_stylesheet,
    release_freed_memory,
    set_error_stream,
    stylesheet_key,
    transform,
)

DEFAULT_TIME_LIMIT = 10.0
DEFAULT_MAX_OUTPUT = 50 * 1024 * 1024
DEFAULT_MAX_MEMORY = 2 * 1024 * 1024 * 1024
STARTUP_TIMEOUT = 60.0
CACHE_SIZE = 32
RAW_SOURCE_BYTES = 1024 * 1024  # a source this large is sent apart from its job
# At most this much per batch message: a slot is held for one message, and a single transform
# queued behind a batch must not wait long for it.
BATCH_ITEMS = 16
BATCH_BYTES = 256 * 1024
TIMED_OUT = "timed out"  # why a batch stopped short (_Worker.call_batch)
ENDED = "ended"

# stylesheet, source, parameters, output cap and, optionally, where look-ups are answered from
Job = (
    tuple[bytes | str, bytes, dict[str, str], int]
    | tuple[bytes | str, bytes, dict[str, str], int, LookupContext | None]
)


@dataclass(frozen=True)
class TransformItem:
    """One transform of a batch (:meth:`TransformPool.run_transforms`): its source, its
    parameters (passed as strings) and where its look-ups are answered from."""

    source: bytes
    parameters: Mapping[str, str]
    lookups: LookupContext | None = None


class Batch(NamedTuple):
    """The pipe message of a batch: the worker replies once per item, in order."""

    stylesheet: bytes | str
    max_output: int
    items: list[tuple[bytes, dict[str, str], LookupContext | None]]


class TransformPool:
    """Runs transforms in up to ``workers`` processes (default: one per CPU).

    Use as ``async with TransformPool() as pool: await pool.run_transform(...)``, or call
    :meth:`close` when done; an unclosed pool's processes are daemons and die with this one.
    ``time_limit`` (seconds) and ``max_output`` (bytes) are defaults for each transform;
    ``max_memory`` (bytes, ``None``: no cap) caps each worker process.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        time_limit: float = DEFAULT_TIME_LIMIT,
        max_output: int = DEFAULT_MAX_OUTPUT,
        max_memory: int | None = DEFAULT_MAX_MEMORY,
    ) -> None:
        self.size = workers or os.cpu_count() or 1
        self.time_limit = time_limit
        self.max_output = max_output
        self.max_memory = max_memory
        self._context = multiprocessing.get_context("spawn")
        self._threads = ThreadPoolExecutor(self.size * 2, thread_name_prefix="docbridge-xslt")
        self._slots = asyncio.Semaphore(self.size)
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._closed = False
        self.started = 0  # processes started so far: a killed one is replaced by a new one
        self.busy = 0  # slots holding a job or a batch's message right now

    async def __aenter__(self) -> TransformPool:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def run_transform(
        self,
        stylesheet: bytes | str,
        source: bytes,
        parameters: Mapping[str, str],
        *,
        time_limit: float | None = None,
        max_output: int | None = None,
        lookups: LookupContext | None = None,
    ) -> XsltOutput:
        """Transform ``source`` with ``stylesheet``; every parameter is passed as a string.

        ``lookups`` (database file and account) answers the platform's look-up functions
        (:mod:`core.conversion.extensions`); without it a map that calls one stops with an
        error saying it needs the mailbox's account.

        Raises an :class:`~core.conversion.errors.XsltError`: refused construct, compile error,
        runtime error, output over ``max_output`` bytes, or ``time_limit`` seconds exceeded
        (the worker is killed; the time counts from handing the job to a running worker).
        """
        if self._closed:
            raise RuntimeError("the transform pool is closed")
        limit = self.time_limit if time_limit is None else time_limit
        cap = self.max_output if max_output is None else max_output
        job: Job = (stylesheet, source, {k: str(v) for k, v in parameters.items()}, cap, lookups)
        loop = asyncio.get_running_loop()
        async with self._slots, self._holding_a_slot():
            worker = self._idle.pop() if self._idle else await self._start_worker()
            try:
                reply = await asyncio.wait_for(
                    loop.run_in_executor(self._threads, worker.call, job), limit
                )
            except TimeoutError:
                await self._discard(worker)
                raise _time_limit_error(limit) from None
            except (EOFError, OSError):
                await self._discard(worker)
                raise _ended_error() from None
            except BaseException:
                await asyncio.shield(self._discard(worker))  # its job may still be running
                raise
            self._idle.append(worker)
        outcome = _outcome(reply)
        if isinstance(outcome, XsltError):
            raise outcome
        return outcome

    async def run_transforms(
        self,
        stylesheet: bytes | str,
        items: Sequence[TransformItem],
        *,
        time_limit: float | None = None,
        max_output: int | None = None,
    ) -> list[XsltOutput | XsltError]:
        """Transform each item's source with ``stylesheet``: one outcome per item, in order.

        Each item fails alone: its outcome is the :class:`XsltError` that
        :meth:`run_transform` would raise, and the others still run. ``time_limit`` and
        ``max_output`` hold for each item as for one transform. A worker killed at an item
        (time limit, memory) fails that item only; the items after it run in a fresh process
        (an innocent neighbour must not fail for a runaway: an IN rule's failure is final).

        Items go a few to a pipe message (:data:`BATCH_ITEMS`, :data:`BATCH_BYTES`), spread
        over the workers; a large source goes on its own, as with :meth:`run_transform`.
        """
        if self._closed:
            raise RuntimeError("the transform pool is closed")
        limit = self.time_limit if time_limit is None else time_limit
        cap = self.max_output if max_output is None else max_output
        results: list[XsltOutput | XsltError | None] = [None] * len(items)

        async def alone(index: int) -> None:
            item = items[index]
            try:
                results[index] = await self.run_transform(
                    stylesheet,
                    item.source,
                    item.parameters,
                    time_limit=limit,
                    max_output=cap,
                    lookups=item.lookups,
                )
            except XsltError as error:
                results[index] = error

        large = [i for i, item in enumerate(items) if len(item.source) >= RAW_SOURCE_BYTES]
        small = [i for i, item in enumerate(items) if len(item.source) < RAW_SOURCE_BYTES]
        chunks = _chunks(items, small, self.size)

        async def lane() -> None:
            # One message at a time per lane and a lane per worker: a transform that comes
            # later queues behind one message per slot, not behind the whole batch.
            while chunks:
                indexes = chunks.pop(0)
                batch = [items[i] for i in indexes]
                outcomes = await self._run_batch(stylesheet, batch, limit, cap)
                for index, outcome in zip(indexes, outcomes, strict=True):
                    results[index] = outcome

        tasks = [asyncio.ensure_future(alone(index)) for index in large]
        tasks += [asyncio.ensure_future(lane()) for _ in range(min(self.size, len(chunks)))]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            # Not a TaskGroup: the caller gets the error itself, not an ExceptionGroup.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        done = [outcome for outcome in results if outcome is not None]
        assert len(done) == len(items)
        return done

    async def _run_batch(
        self, stylesheet: bytes | str, items: list[TransformItem], limit: float, cap: int
    ) -> list[XsltOutput | XsltError]:
        """One chunk in one slot; after a killed worker the rest go to a fresh one."""
        outcomes: list[XsltOutput | XsltError] = []
        loop = asyncio.get_running_loop()
        async with self._slots, self._holding_a_slot():
            while items:
                if self._closed:  # close() killed the worker: the rest cannot run either
                    outcomes += [_ended_error() for _ in items]
                    break
                worker = self._idle.pop() if self._idle else await self._start_worker()
                message = Batch(
                    stylesheet,
                    cap,
                    [
                        (item.source, {k: str(v) for k, v in item.parameters.items()}, item.lookups)
                        for item in items
                    ],
                )
                try:
                    replies, failure = await loop.run_in_executor(
                        self._threads, worker.call_batch, message, limit
                    )
                except BaseException:
                    await asyncio.shield(self._discard(worker))  # its items may still be running
                    raise
                outcomes += [_outcome(reply) for reply in replies]
                items = items[len(replies) :]
                if failure is None:
                    self._idle.append(worker)
                    break
                await self._discard(worker)
                outcomes.append(
                    _time_limit_error(limit) if failure == TIMED_OUT else _ended_error()
                )
                items = items[1:]
        return outcomes

    @contextlib.asynccontextmanager
    async def _holding_a_slot(self) -> AsyncIterator[None]:
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1

    async def close(self) -> None:
        """Stop every worker process: idle ones are asked to exit, busy ones are killed (their
        callers get an error)."""
        self._closed = True
        idle = set(self._idle)
        workers, self._workers, self._idle = list(self._workers), set(), []
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._threads, w.stop if w in idle else w.kill) for w in workers)
        )
        self._threads.shutdown(wait=False)

    async def _start_worker(self) -> _Worker:
        worker = _Worker(self._context, self.max_memory)
        self._workers.add(worker)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.run_in_executor(self._threads, worker.start), STARTUP_TIMEOUT
            )
        except BaseException:
            await asyncio.shield(self._discard(worker))
            raise
        self.started += 1
        return worker

    async def _discard(self, worker: _Worker) -> None:
        if worker not in self._workers:
            return  # close() has killed it already
        self._workers.discard(worker)
        await asyncio.get_running_loop().run_in_executor(self._threads, worker.kill)


def _chunks(items: Sequence[TransformItem], indexes: list[int], workers: int) -> list[list[int]]:
    """``indexes`` cut into pipe messages: spread over the workers, none over the caps."""
    per_message = max(1, min(BATCH_ITEMS, -(-len(indexes) // workers)))
    chunks: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index in indexes:
        length = len(items[index].source)
        if current and (len(current) >= per_message or size + length > BATCH_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(index)
        size += length
    if current:
        chunks.append(current)
    return chunks


def _outcome(reply: Any) -> XsltOutput | XsltError:
    if reply[0] == "ok":
        _, content, method, media_type, encoding = reply
        return XsltOutput(content, method, media_type, encoding)
    return from_wire(reply[1])


def _time_limit_error(limit: float) -> XsltTimeLimit:
    return XsltTimeLimit(
        f"The conversion map ran longer than {limit:g} s",
        "It was stopped. Check it for an endless recursion or loop; a map that is "
        "just slow needs a higher time limit.",
    )


def _ended_error() -> XsltRuntimeError:
    return XsltRuntimeError(
        "The conversion map's worker process ended unexpectedly",
        "It may have run out of memory; check the map for a runaway recursion.",
    )


class _Worker:
    """One process and the parent's end of its pipe; methods block (run them on a thread)."""

    def __init__(self, context: Any, max_memory: int | None) -> None:
        self.connection, child = context.Pipe()
        self._child: Connection | None = child
        self.process: BaseProcess = context.Process(
            target=worker_main, args=(child, max_memory), name="docbridge-xslt", daemon=True
        )

    def start(self) -> None:
        self.process.start()
        if self._child is not None:
            self._child.close()
            self._child = None
        ready = self.connection.recv()
        if ready != "ready":
            raise RuntimeError(f"unexpected greeting from an XSLT worker: {ready!r}")

    def call(self, job: Job) -> Any:
        if len(job[1]) < RAW_SOURCE_BYTES:
            self.connection.send(job)
        else:
            # A large source goes as raw bytes after the rest: pickled with the job, it would be
            # copied once more on each side (measured: +60 MB for a 20 MB CSV's XML view).
            self.connection.send((job[0], None, *job[2:]))
            self.connection.send_bytes(job[1])
        return self.connection.recv()

    def call_batch(self, batch: Batch, limit: float) -> tuple[list[Any], str | None]:
        """The replies to ``batch`` so far and, if the worker stopped short, why: it ran over
        ``limit`` seconds on the next item (each item's clock starts at the previous reply),
        or it ended."""
        replies: list[Any] = []
        try:
            self.connection.send(batch)
            for _ in batch.items:
                if not self.connection.poll(limit):
                    return replies, TIMED_OUT
                replies.append(self.connection.recv())
        except (EOFError, OSError):
            return replies, ENDED
        return replies, None

    def kill(self) -> None:
        if self.process.pid is not None:
            self.process.kill()
            self.process.join()
            self.process.close()
        self.connection.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.send(None)
        if self.process.pid is not None:
            self.process.join(5)
        self.kill()


def worker_main(connection: Connection, max_memory: int | None = None) -> None:
    """The loop of one worker process: run jobs until the pipe closes or ``None`` arrives.

    ``max_memory`` caps the process's data segment (``RLIMIT_DATA``; ``RLIMIT_AS`` would stop
    Saxon's GraalVM isolate from reserving its address space): a map that builds a huge value
    ends its own process, and the caller gets an error instead of the machine swapping.
    """
    if max_memory is not None:
        _, hard_data = resource.getrlimit(resource.RLIMIT_DATA)
        if hard_data != resource.RLIM_INFINITY:
            max_memory = min(max_memory, hard_data)
        resource.setrlimit(resource.RLIMIT_DATA, (max_memory, hard_data))
    # Saxon reports errors (with their line) on stderr: keep them in a file to read back.
    report = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)
    os.dup2(report.fileno(), 2)
    set_error_stream(2)
    # Over the output cap, Saxon's write fails with EFBIG instead of the process dying.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ctrl+c in a terminal is the parent's
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    cache: OrderedDict[str, CompiledStylesheet] = OrderedDict()
    connection.send("ready")
    while True:
        try:
            job = connection.recv()
        except EOFError:
            return
        if job is None:
            return
        if isinstance(job, Batch):
            for source, parameters, lookups in job.items:
                item: Job = (job.stylesheet, source, parameters, job.max_output, lookups)
                connection.send(run_job(item, cache, hard))
            continue
        if job[1] is None:  # the source follows as raw bytes (_Worker.call)
            job = (job[0], connection.recv_bytes(), *job[2:])
        connection.send(run_job(job, cache, hard))


def run_job(job: Job, cache: OrderedDict[str, CompiledStylesheet], hard: int) -> Any:
    """Run one job in this process and return the reply for the pipe (never raises).

    ``cache`` maps a stylesheet's hash to its compiled form, least recently used first;
    ``hard`` is the process's hard ``RLIMIT_FSIZE``, restored after the job's output cap.
    """
    stylesheet, source, parameters, max_output = job[:4]
    use_lookup_context(job[4] if len(job) > 4 else None)
    try:
        clear_error_stream()
        key = stylesheet_key(stylesheet)
        compiled = cache.get(key)
        if compiled is None:
            compiled = compile_stylesheet(stylesheet)
            cache[key] = compiled
            while len(cache) > CACHE_SIZE:
                cache.popitem(last=False)
        cache.move_to_end(key)
        limit = max_output + 1 if hard == resource.RLIM_INFINITY else min(max_output + 1, hard)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        try:
            output = transform(compiled, source, parameters, max_output=max_output)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
            if len(source) >= LARGE_SOURCE_BYTES:
                # The source's tree is gone; without this the idle worker keeps its memory.
                release_freed_memory()
    except XsltError as error:
        return ("error", to_wire(error))
    except Exception as error:  # a library failure must not end the worker
        wire: Wire = to_wire(
            XsltRuntimeError("The conversion map failed", f"{type(error).__name__}: {error}")
        )
        return ("error", wire)
    return ("ok", output.content, output.method, output.media_type, output.encoding)
