"""AS2 CMS hot path (core.as2.cms) against pyas2lib, interleaved over ROUNDS rounds:

a. 1 KB payloads, sign (sha256) + encrypt (aes_256_cbc) + a signed-MDN request: builds/s with
   pyas2lib (``Message.build``) and with ``cms.build_message``.
b. The same messages received: parse + decrypt + verify + signed MDN per second with pyas2lib
   (``messages.parse_inbound_message``) and with ``cms.parse_message``.
c. A large random payload (``BENCH_AS2_MB``, default 100): sign + encrypt and then parse with
   cms.py, each in a fresh process: MB/s and peak RSS (VmHWM) as a multiple of the payload,
   counted from the interpreter's own baseline (libraries and keys loaded, no payload yet) so
   the figure is the data's share: the input, the output and whatever the operation adds.

``python -m bench as2``; ``BENCH_ROUNDS`` (default 5), ``BENCH_AS2_MB`` and ``BENCH_PARTS``
(``abc``) shorten a run. Ends with one JSON line of figures and ratios.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
PARTS = os.environ.get("BENCH_PARTS", "abc")
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
