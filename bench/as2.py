"""AS2 CMS hot path (core.as2.cms) against pyas2lib, interleaved over ROUNDS rounds:

a. 1 KB payloads, sign (sha256) + encrypt (aes_256_cbc) + a signed-MDN request: builds/s with
   pyas2lib (``Message.build``) and with ``cms.build_message``.
b. The same messages received: parse + decrypt + verify + signed MDN per second with pyas2lib
   (``messages.parse_inbound_message``) and with ``cms.parse_message``.
c. A large random payload (``BENCH_AS2_MB``, default 100): sign + encrypt and then parse with
   cms.py, each in a fresh process: MB/s and peak RSS (VmHWM) as a multiple of the payload,
   counted from the interpreter's own baseline (libraries and keys loaded, no payload yet) so
   the figure is the data's share: the input, the output and whatever the operation adds.
d. End to end: two docbridge data directories with their engines on loopback, gateway 1's
   Logistics partnered with gateway 2's Purchasing (sign sha256 + encrypt aes_256_cbc, signed
   sync MDN). Per round and batch (``BENCH_AS2_E2E``, default ``300x1KB,5x5MB``: count x size,
   decimal units, envelopes padded with order lines to at least that size), the envelopes are
   received by Logistics, default rule 1 sends them over AS2, gateway 2 takes them in as
   Purchasing's outgoing envelopes. Messages/s and MB/s from the first envelope received until
   every out-message is delivered (MDN checked), and until gateway 2 recorded them all. A
   message parked instead is counted in ``failed_messages`` with its reason, not in the rates.
   The time the platform side spends in ``receive_envelope`` (schema and template checks, in
   the same process) is part of that and also reported on its own.

``python -m bench as2``; ``BENCH_ROUNDS`` (default 5), ``BENCH_AS2_MB``, ``BENCH_AS2_E2E`` and
``BENCH_PARTS`` (``abcd``) shorten a run. Ends with one JSON line of figures and ratios.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
PARTS = os.environ.get("BENCH_PARTS", "abcd")
E2E = os.environ.get("BENCH_AS2_E2E", "300x1KB,5x5MB")
LARGE_MB = float(os.environ.get("BENCH_AS2_MB", "100"))
SMALL = 1024
PER_ROUND = 100  # messages per implementation and round
REPO = Path(__file__).resolve().parent.parent
AIMS = {
    "build_ratio": 7.0,  # 1 KB sign+encrypt builds/s, cms over pyas2lib
    "parse_ratio": 5.0,  # 1 KB parse+MDN/s, cms over pyas2lib
    "large_mb_s": 100.0,  # sign+encrypt and parse of the large payload
    "large_rss": 3.0,  # peak RSS over the payload
}


def spread(values: Sequence[float]) -> str:
    return f"min {min(values):.4g}  median {statistics.median(values):.4g}  max {max(values):.4g}"


def figures(values: Sequence[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 4),
        "median": round(statistics.median(values), 4),
        "max": round(max(values), 4),
    }


class Parties:
    """Alice sends to Bob; keys generated as the product generates them."""

    def __init__(self, folder: Path) -> None:
        from core.as2.certificates import generate_identity
        from core.as2.messages import OurIdentity, PartnerIdentity

        alice = generate_identity("alice", folder / "alice.key")
        bob = generate_identity("bob", folder / "bob.key")
        self.alice_key = alice.key_path.read_bytes()
        self.alice_cert = alice.certificate_pem.encode()
        self.bob_key = bob.key_path.read_bytes()
        self.bob_cert = bob.certificate_pem.encode()
        self.bob = OurIdentity("bob", self.bob_key, certificate_pem=self.bob_cert)
        self.alice = PartnerIdentity("alice", self.alice_cert)

    def build_cms(self, payload: bytes, number: int) -> Any:
        from core.as2 import cms

        return cms.build_message(
            payload,
            as2_from="alice",
            as2_to="bob",
            message_id=f"bench-{number}@alice",
            filename="order.bin",
            sign_key_pem=self.alice_key,
            sign_cert_pem=self.alice_cert,
            digest="sha256",
            encrypt_cert_pem=self.bob_cert,
            encryption="aes_256_cbc",
            compress=False,
            mdn_to="as2@alice.example",
            mdn_signed_digest="sha256",
            receipt_delivery_option=None,
        )

    def pyas2lib_pair(self) -> tuple[Any, Any]:
        from pyas2lib import as2

        key = self.alice_key + self.alice_cert
        organization = as2.Organization(as2_name="alice", sign_key=key, decrypt_key=key)
        partner = as2.Partner(
            as2_name="bob",
            verify_cert=self.bob_cert,
            encrypt_cert=self.bob_cert,
            validate_certs=False,
            sign=True,
            digest_alg="sha256",
            encrypt=True,
            enc_alg="aes_256_cbc",
            mdn_mode="SYNC",
            mdn_digest_alg="sha256",
        )
        return organization, partner


# --- a and b: 1 KB messages ---------------------------------------------------------------------


def part_small(parties: Parties) -> dict[str, Any]:
    from pyas2lib import as2

    from core.as2 import cms, messages

    organization, partner = parties.pyas2lib_pair()
    payload = os.urandom(SMALL)
    rates: dict[str, list[float]] = {
        k: [] for k in ("build_py", "build_cms", "parse_py", "parse_cms")
    }
    # warm both (key caches, imports)
    parties.build_cms(payload, 0)
    warm = parties.build_cms(payload, 0)
    cms.parse_message(list(warm.headers), warm.body, parties.bob, parties.alice)
    number = 0
    for round_index in range(ROUNDS):
        order = ["py", "cms"] if round_index % 2 == 0 else ["cms", "py"]
        built: list[tuple[list[tuple[str, str]], bytes]] = []
        for kind in order:
            began = time.perf_counter()
            for _ in range(PER_ROUND):
                number += 1
                if kind == "py":
                    message = as2.Message(sender=organization, receiver=partner)
                    message.build(
                        payload, filename="order.bin", content_type="application/octet-stream"
                    )
                else:
                    parties.build_cms(payload, number)
            rates[f"build_{kind}"].append(PER_ROUND / (time.perf_counter() - began))
        for _ in range(PER_ROUND):
            number += 1
            message_built = parties.build_cms(payload, number)
            built.append((list(message_built.headers), message_built.body))
        for kind in order:
            parse = messages.parse_inbound_message if kind == "py" else cms.parse_message
            began = time.perf_counter()
            for headers, body in built:
                received = parse(headers, body, parties.bob, parties.alice)
                assert received.processed and received.mdn is not None, received.reason
            rates[f"parse_{kind}"].append(PER_ROUND / (time.perf_counter() - began))
    result: dict[str, Any] = {"payload_bytes": SMALL, "messages_per_round": PER_ROUND}
    for what, label in (("build", "sign+encrypt builds/s"), ("parse", "parse+MDN/s")):
        for kind in ("py", "cms"):
            values = rates[f"{what}_{kind}"]
            name = "pyas2lib" if kind == "py" else "cms.py"
            print(f"  {label:22} {name:8}: {spread(values)}")
            result[f"{what}_{kind}_per_s"] = figures(values)
        ratios = [c / p for c, p in zip(rates[f"{what}_cms"], rates[f"{what}_py"], strict=True)]
        print(f"  {label:22} cms/pyas2lib: {spread(ratios)}  (aim >= {AIMS[what + '_ratio']:g})")
        result[f"{what}_ratio"] = figures(ratios)
    return result


# --- c: a large payload, a fresh process per measurement ----------------------------------------


def high_water_mark() -> int:
    """This process's peak RSS in bytes (VmHWM; ru_maxrss carries the parent's over exec)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def child(operation: str, folder: str, size: int) -> None:
    """In a fresh process: load the libraries and keys, note the peak, then build (payload
    made here) or parse (body read here) once, and report time and peaks as JSON."""
    from core.as2 import cms

    parties = Parties.__new__(Parties)
    base = Path(folder)
    parties.alice_key = (base / "alice.key").read_bytes()
    parties.alice_cert = (base / "alice.pem").read_bytes()
    parties.bob_key = (base / "bob.key").read_bytes()
    parties.bob_cert = (base / "bob.pem").read_bytes()
    from core.as2.messages import OurIdentity, PartnerIdentity

    parties.bob = OurIdentity("bob", parties.bob_key, certificate_pem=parties.bob_cert)
    parties.alice = PartnerIdentity("alice", parties.alice_cert)
    warm = parties.build_cms(b"warm", 0)
    cms.parse_message(list(warm.headers), warm.body, parties.bob, parties.alice)
    baseline = high_water_mark()
    report: dict[str, Any] = {"baseline": baseline}
    if operation == "build":
        payload = os.urandom(size)
        report["input"] = high_water_mark()
        began = time.perf_counter()
        built = parties.build_cms(payload, 1)
        report["seconds"] = time.perf_counter() - began
        (base / "body.bin").write_bytes(built.body)
        (base / "headers.json").write_text(json.dumps(built.headers))
        (base / "payload.sha256").write_text(__import__("hashlib").sha256(payload).hexdigest())
    else:
        headers = [tuple(pair) for pair in json.loads((base / "headers.json").read_text())]
        body = (base / "body.bin").read_bytes()
        report["input"] = high_water_mark()
        began = time.perf_counter()
        received = cms.parse_message(headers, body, parties.bob, parties.alice)
        report["seconds"] = time.perf_counter() - began
        assert received.processed, received.reason
        digest = __import__("hashlib").sha256(received.payload).hexdigest()
        assert digest == (base / "payload.sha256").read_text()
        assert len(received.payload) == size
    report["peak"] = high_water_mark()
    print(json.dumps(report))


def part_large(parties: Parties, folder: Path) -> dict[str, Any]:
    size = int(LARGE_MB * 1_000_000)
    (folder / "alice.pem").write_bytes(parties.alice_cert)
    (folder / "bob.pem").write_bytes(parties.bob_cert)
    runs: dict[str, list[dict[str, Any]]] = {"build": [], "parse": []}
    for _ in range(ROUNDS):
        for operation in ("build", "parse"):  # parse reads what build wrote
            finished = subprocess.run(
                [sys.executable, "-m", "bench.as2", "child", operation, str(folder), str(size)],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=False,
            )
            if finished.returncode:
                raise RuntimeError(finished.stderr)
            runs[operation].append(json.loads(finished.stdout.strip().splitlines()[-1]))
    result: dict[str, Any] = {"payload_mb": round(size / 1e6, 1)}
    for operation, label in (("build", "sign+encrypt"), ("parse", "parse+decrypt+verify+MDN")):
        reports = runs[operation]
        speeds = [size / 1e6 / r["seconds"] for r in reports]
        own = [(r["peak"] - r["baseline"]) / size for r in reports]
        total = [r["peak"] / size for r in reports]
        base_mb = statistics.median(r["baseline"] for r in reports) / 1e6
        print(f"  {label:26} MB/s {spread(speeds)}  (aim >= {AIMS['large_mb_s']:g})")
        print(
            f"  {label:26} peak RSS over the baseline / payload {spread(own)}  "
            f"(aim <= {AIMS['large_rss']:g}; the interpreter's own {base_mb:.0f} MB not counted)"
        )
        print(f"  {label:26} whole-process peak RSS / payload {spread(total)}")
        result[f"{operation}_mb_s"] = figures(speeds)
        result[f"{operation}_rss_over_payload"] = figures(own)
        result[f"{operation}_process_rss_over_payload"] = figures(total)
        result["baseline_mb"] = round(base_mb, 1)
    return result


# --- d: end to end, two engines on loopback ----------------------------------------------------

SIZE_UNITS = {"kb": 1000, "mb": 1000_000, "b": 1}
ACME = "0dbfa4db-e126-445e-a164-dac5593117c1"  # the demo envelope's sender
PURCHASING = "26c79f73-753d-4148-b26a-5d3e9abbc6fb"  # and its recipient
LINE = (
    '        <fieldset index="{index}">\n'
    '          <field name="lineNumber">{number}</field>\n'
    '          <field name="articleNumber">AC-{number:07d}</field>\n'
    '          <field name="quantity">1</field>\n'
    '          <field name="unitPrice">1.00</field>\n'
    "        </fieldset>\n"
)


def batches(spec: str) -> list[tuple[int, int]]:
    """``300x1KB,5x5MB`` -> [(300, 1000), (5, 5000000)]."""
    found = []
    for item in spec.split(","):
        count, _, size = item.strip().lower().partition("x")
        unit = next(u for u in SIZE_UNITS if size.endswith(u))
        found.append((int(count), int(float(size[: -len(unit)]) * SIZE_UNITS[unit])))
    return found


def envelope_xml(sender: str, recipient: str, envelope_uuid: str, size: int) -> bytes:
    """The demo's minimal purchase order sent by ``sender`` to ``recipient``, with order lines
    added until it is at least ``size`` bytes."""
    template = (REPO / "data/demo/envelopes/10-purchase-order-acme-minimal.xml").read_text()
    start = template.index(' uuid="') + len(' uuid="')
    text = template[:start] + envelope_uuid + template[start + 36 :]
    text = text.replace(f'mailboxUuid="{ACME}"', 'mailboxUuid="SENDER"')
    text = text.replace(f'mailboxUuid="{PURCHASING}"', f'mailboxUuid="{recipient}"')
    text = text.replace('mailboxUuid="SENDER"', f'mailboxUuid="{sender}"')
    head, tail = text.split("      </fieldgroup>", 1)
    lines: list[str] = []
    length = len(text.encode())
    index = 1
    while length < size:
        line = LINE.format(index=index, number=index + 1)
        lines.append(line)
        length += len(line)
        index += 1
    return (head + "".join(lines) + "      </fieldgroup>" + tail).encode()


def make_batch(sender: str, recipient: str, uuids: list[str], size: int) -> list[bytes]:
    return [envelope_xml(sender, recipient, u, size) for u in uuids]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def open_gateway(directory: Path, mailbox_name: str, as2_id: str) -> Any:
    from core.bootstrap import init_data_dir
    from core.config import load_config
    from core.engine.engine import Engine, EngineSettings
    from core.service import Service

    await init_data_dir(directory, with_demo=True, actor="bench@setup")
    port = free_port()
    (directory / "docbridge.toml").write_text(
        f'[as2]\nport = {port}\npublic_url = "http://127.0.0.1:{port}/as2"\n', encoding="utf-8"
    )
    service = await Service.open(directory, actor="bench@as2")
    config = load_config(directory)
    engine = Engine(config, EngineSettings(run_sftp=False))
    mailbox = (await service.resolve_mailbox(mailbox_name)).uuid
    return {"service": service, "engine": engine, "mailbox": mailbox, "id": as2_id}


async def partner_up(one: dict[str, Any], other: dict[str, Any]) -> None:
    from core.models import As2Settings, IntegrationForm, TransferProtocol

    certificate = (await other["service"].ensure_as2_identity(other["mailbox"])).certificate_pem
    settings = As2Settings(
        self_id=one["id"],
        partner_id=other["id"],
        partner_url=f"{other['engine'].config.as2.public_url}/{other['mailbox']}",
        partner_certificate=certificate,
    )
    form = IntegrationForm(protocol=TransferProtocol.AS2, as2=settings)
    await one["service"].save_integration(one["mailbox"], form)
    await one["service"].set_enabled(one["mailbox"], True)


async def until(check: Callable[[], Awaitable[bool]], what: str, within_s: float = 600.0) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"end to end: {what} not reached within {within_s:g} s")
        await asyncio.sleep(0.02)


async def e2e_rounds(folder: Path) -> dict[str, Any]:
    import uuid

    from core.models import As2Status, EnvelopeDirection

    first = await open_gateway(folder / "gateway1", "Logistics", "GATEWAY1-LOGISTICS")
    second = await open_gateway(folder / "gateway2", "Purchasing", "GATEWAY2-PURCHASING")
    sender, receiver = first["service"], second["service"]
    source, target = first["mailbox"], second["mailbox"]
    sent_total = 0
    failures: dict[str, str] = {}  # envelope uuid -> why its message was parked

    async def delivered(uuids: set[str]) -> bool:
        """Every message of these envelopes delivered, or parked (counted, not waited for)."""
        messages = await sender.as2.messages(source, limit=sent_total + 100)
        done = {m.filename[:36] for m in messages if m.status is As2Status.DELIVERED}
        for m in messages:
            if m.status is As2Status.FAILED and m.filename[:36] in uuids:
                failures[m.filename[:36]] = m.error
        return uuids <= done | failures.keys()

    async def taken_in(uuids: set[str]) -> bool:
        envelopes = await receiver.list_envelopes(target, limit=sent_total + 100)
        return uuids <= {e.uuid for e in envelopes if e.direction is EnvelopeDirection.OUTGOING}

    try:
        await partner_up(first, second)
        await partner_up(second, first)
        await first["engine"].start()
        await second["engine"].start()
        # Warm up: the demo's envelopes waiting for Logistics go out first (gateway 2 hands them
        # back in error/: Purchasing did not send them).
        demo = {e.uuid for e in await sender.list_envelopes(source)}
        sent_total = len(demo)
        await until(lambda: delivered(demo), "the warm-up")
        plan = batches(E2E)
        rates: dict[str, list[float]] = {}
        payloads: dict[str, int] = {}
        for _ in range(ROUNDS):
            for count, size in plan:
                label = f"{count}x{size}"
                made = [str(uuid.uuid4()) for _ in range(count)]
                datas = await asyncio.to_thread(make_batch, target, source, made, size)
                volume = sum(len(d) for d in datas)
                payloads[label] = volume // count
                wanted = set(made)
                sent_total += count
                began = time.perf_counter()
                for data in datas:
                    await sender.receive_envelope(source, data)
                injected = time.perf_counter() - began
                first["engine"].wake()
                await until(functools.partial(delivered, wanted), "all MDNs")
                acknowledged = time.perf_counter() - began
                ok = wanted - failures.keys()
                await until(functools.partial(taken_in, ok), "all taken in")
                recorded = time.perf_counter() - began
                volume = volume * len(ok) // count  # the same size each: delivered ones only
                for key, value in (
                    ("receive_envelope_s", injected),
                    ("acked_msg_s", len(ok) / acknowledged),
                    ("acked_mb_s", volume / 1e6 / acknowledged),
                    ("taken_in_msg_s", len(ok) / recorded),
                    ("taken_in_mb_s", volume / 1e6 / recorded),
                ):
                    rates.setdefault(f"{label}:{key}", []).append(value)
    finally:
        for gateway in (first, second):
            await gateway["engine"].stop()
            await gateway["service"].close()
    result: dict[str, Any] = {"batches": E2E, "engines": "two, in one process, loopback"}
    result["failed_messages"] = len(failures)
    result["failure_reasons"] = sorted(set(failures.values()))
    if failures:
        print(f"  {len(failures)} messages parked, not counted: {result['failure_reasons']}")
    for count, size in batches(E2E):
        label = f"{count}x{size}"
        entry: dict[str, Any] = {"count": count, "payload_bytes": payloads[label]}
        print(f"  {count} x {payloads[label]:,} B envelopes (sign+encrypt, signed sync MDN):")
        for key, text in (
            ("receive_envelope_s", "s in receive_envelope (within the above)"),
            ("acked_msg_s", "messages/s until all MDNs checked"),
            ("acked_mb_s", "MB/s until all MDNs checked"),
            ("taken_in_msg_s", "messages/s until gateway 2 recorded all"),
            ("taken_in_mb_s", "MB/s until gateway 2 recorded all"),
        ):
            values = rates[f"{label}:{key}"]
            print(f"    {text:42}: {spread(values)}")
            entry[key] = figures(values)
        result[label] = entry
    return result


def part_e2e(folder: Path) -> dict[str, Any]:
    import logging

    logging.getLogger("docbridge").setLevel(logging.WARNING)
    return asyncio.run(e2e_rounds(folder))


def verdicts(results: dict[str, Any]) -> dict[str, bool]:
    held: dict[str, bool] = {}
    small = results.get("small")
    if small:
        held["build_1kb_ratio"] = small["build_ratio"]["median"] >= AIMS["build_ratio"]
        held["parse_1kb_ratio"] = small["parse_ratio"]["median"] >= AIMS["parse_ratio"]
    large = results.get("large")
    if large:
        for operation in ("build", "parse"):
            held[f"{operation}_large_mb_s"] = (
                large[f"{operation}_mb_s"]["median"] >= AIMS["large_mb_s"]
            )
            held[f"{operation}_large_rss"] = (
                large[f"{operation}_rss_over_payload"]["median"] <= AIMS["large_rss"]
            )
    return held


def main() -> None:
    results: dict[str, Any] = {"bench": "as2", "rounds": ROUNDS}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        parties = Parties(folder / "keys")
        if "a" in PARTS or "b" in PARTS:
            print(f"a+b. {SMALL} B payloads, {PER_ROUND} per implementation and round")
            results["small"] = part_small(parties)
        if "c" in PARTS:
            print(f"c. {LARGE_MB:g} MB payload with cms.py, a fresh process per measurement")
            results["large"] = part_large(parties, folder / "keys")
        if "d" in PARTS:
            print(f"d. end to end between two engines on loopback: {E2E} per round")
            results["e2e"] = part_e2e(folder / "e2e")
    held = verdicts(results)
    print("aims: 1 KB build >= 7x pyas2lib, 1 KB parse+MDN >= 5x pyas2lib, large sign+encrypt")
    print("      and parse >= 100 MB/s, large peak RSS <= 3x payload (medians)")
    for name, ok in held.items():
        print(f"  {name:22} {'holds' if ok else 'MISSED'}")
    results["aims_held"] = held
    print(json.dumps(results))


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
