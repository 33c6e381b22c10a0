"""pyas2lib must work out of the box on OpenSSL >= 3.0.10 (SPEC §5): see core/as2/oscrypto_compat.

The decisive tests run a fresh interpreter, because the fix has to be active at start-up (the
``.pth`` hook) before anything imports oscrypto; an in-process test would pass on a module that
some earlier test already imported.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from pyas2lib import as2
from pyas2lib.exceptions import IntegrityError

from core.as2 import oscrypto_compat

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MENDELSON = PROJECT_ROOT.parent / "shared" / "interop" / "mendelson"
P12_PASSWORD = "test"


def run_python(code: str, *args: str, flags: tuple[str, ...] = (), cwd: Path) -> str:
    """Run ``code`` in a new interpreter of this environment and return its stdout."""
    result = subprocess.run(
        [sys.executable, *flags, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("ffi", ["cffi", "ctypes"])
def test_fresh_interpreter_imports_pyas2lib_and_opens_rc2_pkcs12(ffi: str, tmp_path: Path) -> None:
    """Plain ``import pyas2lib`` works, and an RC2 PKCS#12 needs the legacy provider to open.

    oscrypto uses cffi when it is installed (it is, through cryptography) and ctypes otherwise;
    both of its libcrypto modules are patched.
    """
    out = run_python(
        """
        import sys
        import oscrypto
        if sys.argv[3] == "ctypes":
            oscrypto.use_ctypes()
        import pyas2lib
        from oscrypto import keys
        from oscrypto._openssl import _libcrypto

        assert oscrypto.ffi() == sys.argv[3]
        version = _libcrypto.libcrypto_version_info
        assert all(isinstance(part, int) for part in version[:3]), version
        with open(sys.argv[1], "rb") as file:
            p12 = file.read()
        key, cert, extra = keys.parse_pkcs12(p12, sys.argv[2].encode())
        pyas2lib.as2.Organization(as2_name="x", decrypt_key=p12, decrypt_key_pass=sys.argv[2])
        print("ok", cert.subject.native["common_name"], _libcrypto.libcrypto_version)
        """,
        str(MENDELSON / "cert_test.p12"),
        P12_PASSWORD,
        ffi,
        cwd=tmp_path,  # not the project root: the hook must come from site-packages
    )
    assert out.startswith("ok pyas2lib ")


def test_startup_hook_is_installed_and_cheap(tmp_path: Path) -> None:
    """The ``.pth`` hook is active in every process and drags in nothing beyond itself."""
    out = run_python(
        """
        import sys
        from core.as2 import oscrypto_compat
        finders = [f for f in sys.meta_path if getattr(f, "_docbridge_oscrypto_compat", False)]
        print(len(finders), *sorted({"ctypes", "oscrypto", "cryptography"} & set(sys.modules)))
        """,
        cwd=tmp_path,
    )
    assert out.split() == ["1"]

    # Without site (so nothing else pollutes sys.modules): what does importing the hook cost?
    out = run_python(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        before = set(sys.modules)
        import core.as2
        print(*sorted(set(sys.modules) - before))
        """,
        str(PROJECT_ROOT),
        flags=("-S",),
        cwd=tmp_path,
    )
    assert set(out.split()) <= {"__future__", "core", "core.as2", "core.as2.oscrypto_compat"}


def test_importing_core_as2_is_enough_without_site(tmp_path: Path) -> None:
    """Under ``python -S`` no ``.pth`` runs; ``import core.as2`` must install the fix itself."""
    out = run_python(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        sys.path.append(sys.argv[3])  # the packages, but no .pth processing
        import core.as2
        import pyas2lib
        from oscrypto import keys
        with open(sys.argv[2], "rb") as file:
            keys.parse_pkcs12(file.read(), b"test")
        print("ok")
        """,
        str(PROJECT_ROOT),
        str(MENDELSON / "cert_test.p12"),
        sysconfig.get_paths()["purelib"],
        flags=("-S",),
        cwd=tmp_path,
    )
    assert out.strip() == "ok"


def test_install_is_idempotent_and_ignores_other_modules() -> None:
    oscrypto_compat.install()
    oscrypto_compat.install()
    finders = [f for f in sys.meta_path if getattr(f, "_docbridge_oscrypto_compat", False)]
    assert len(finders) == 1
    assert finders[0].find_spec("json", None) is None


# --- Interop vectors produced by Mendelson AS2 (mecas2 -> pyas2lib) -------------------------


@pytest.fixture(scope="module")
def receiver() -> as2.Organization:
    """Our side: the key pair in cert_test.p12 (RC2-encrypted, so this also needs the fix)."""
    key = (MENDELSON / "cert_test.p12").read_bytes()
    return as2.Organization(
        as2_name="pyas2lib",
        sign_key=key,
        sign_key_pass=P12_PASSWORD,
        decrypt_key=key,
        decrypt_key_pass=P12_PASSWORD,
    )


@pytest.fixture(scope="module")
def mecas2() -> as2.Partner:
    """The sender. ``validate_certs=False``: the vectors are frozen in time and Mendelson's test
    certificate expires on 2027-12-06, after which chain/expiry validation would fail. Signatures
    are still verified against this certificate (see the tampering test below)."""
    return as2.Partner(
        as2_name="mecas2",
        verify_cert=(MENDELSON / "cert_mecas2_public.pem").read_bytes(),
        validate_certs=False,
    )


def parse(
    raw: bytes, receiver: as2.Organization, partner: as2.Partner
) -> tuple[as2.Message, str, BaseException | None]:
    """Parse a raw HTTP request (headers, blank line, body) as pyas2lib receives it."""

    def find_org(name: str) -> as2.Organization | None:
        return receiver if name == receiver.as2_name else None

    def find_partner(name: str) -> as2.Partner | None:
        return partner if name == partner.as2_name else None

    message = as2.Message()
    status, (exception, _traceback), _mdn = message.parse(raw, find_org, find_partner)
    return message, status, exception


@pytest.mark.parametrize(
    ("vector", "signed", "encrypted", "compressed"),
    [
        ("mecas2_signed_encrypted.as2", True, True, False),
        ("mecas2_signed.as2", True, False, False),
        ("mecas2_encrypted.as2", False, True, False),
        ("mecas2_compressed.as2", True, False, True),
    ],
)
def test_mendelson_messages_yield_the_exact_payload(
    vector: str,
    signed: bool,
    encrypted: bool,
    compressed: bool,
    receiver: as2.Organization,
    mecas2: as2.Partner,
) -> None:
    message, status, exception = parse((MENDELSON / vector).read_bytes(), receiver, mecas2)
    assert exception is None
    assert status == "processed"
    assert message.content == (MENDELSON / "payload.txt").read_bytes()
    assert (message.signed, message.encrypted, message.compressed) == (
        signed,
        encrypted,
        compressed,
    )
    if signed:
        assert message.digest_alg == "sha256"
    if encrypted:
        assert message.enc_alg == "tripledes_192_cbc"


def test_tampered_mendelson_message_fails_the_signature_check(
    receiver: as2.Organization, mecas2: as2.Partner
) -> None:
    raw = (MENDELSON / "mecas2_signed.as2").read_bytes()
    assert raw.count(b"UNB+UNOA") == 1
    _message, status, exception = parse(raw.replace(b"UNB+UNOA", b"UNB+UNOB"), receiver, mecas2)
    assert isinstance(exception, IntegrityError)
    assert status.startswith("processed/")
    assert status != "processed"
