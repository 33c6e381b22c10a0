"""AS2 identities: our key pair and self-signed certificate, and checks on partners' certificates.

Private keys follow the promise of SPEC §9: the file is created 0600 (never readable by others,
not even between creation and a chmod) inside a 0700 directory, and is fsync'd before we report
success. Every function here blocks (RSA key generation, file I/O): call them in a thread.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from core.clock import utc_datetime
from core.errors import InvalidInput
from core.files import NEW_FILE_FLAGS, fill_new_file, fsync_dir
from core.models import CertificateInfo

__all__ = [
    "CertificateInfo",
    "inspect_certificates",
    "newest_valid",
    "read_certificates",
    "split_certificates",
    "GeneratedIdentity",
    "generate_identity",
    "inspect_certificate",
    "load_certificate_text",
    "subject_text",
]

RSA_KEY_SIZE = 2048
# Backdating the start of validity keeps a partner whose clock runs slow from rejecting a
# certificate made a moment ago.
_BACKDATE = timedelta(hours=1)
# A certificate (even with its chain) is a few KB; anything larger is the wrong file.
_MAX_CERTIFICATE_FILE = 1024 * 1024
_PEM_BEGIN = "-----BEGIN"


@dataclass(frozen=True, slots=True)
class GeneratedIdentity:
    """Result of :func:`generate_identity`; the private key stays in ``key_path`` only (or, with
    no path, in ``key_pem``: a shared store seals it, core.sealing)."""

    certificate_pem: str
    key_path: Path | None
    info: CertificateInfo
    key_pem: bytes = b""


def generate_identity(
    common_name: str,
    key_path: Path | None,
    valid_days: int = 3650,
    *,
    passphrase: bytes | None = None,
) -> GeneratedIdentity:
    """Create an RSA 2048 key in ``key_path`` and a self-signed certificate for it.

    AS2 partners exchange self-signed certificates out of band, so no CA is involved. The key
    file must not exist yet (an identity is never overwritten silently); missing directories are
    created 0700, and an existing parent directory must not be accessible to group or others.
    With ``passphrase`` the key is stored encrypted (PKCS#8, best available encryption), in a form
    pyas2lib/oscrypto can read. The certificate is returned, not written: it is public and the
    caller stores it with the partner configuration.
    """
    name = common_name.strip()
    if not name:
        raise InvalidInput(
            "The certificate needs a common name.",
            "Enter the AS2 name (or company name) that partners will see in the certificate.",
        )
    if valid_days < 1:
        raise InvalidInput(
            f"A certificate valid for {valid_days} days cannot be used.",
            "Enter a validity of at least 1 day (AS2 partners commonly use 1 to 10 years).",
        )

    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)
    now = utc_datetime().replace(microsecond=0)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,  # signing messages and MDNs
                content_commitment=True,
                key_encipherment=True,  # partners encrypt the content key to us
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )

    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    if key_path is None:
        return GeneratedIdentity(certificate_pem, None, _info(certificate), key_pem=key_pem)
    _write_private_file(key_path, key_pem)
    return GeneratedIdentity(
        certificate_pem=certificate_pem, key_path=key_path, info=_info(certificate)
    )


def inspect_certificate(pem: str | bytes, now: datetime | None = None) -> CertificateInfo:
    """Describe the first certificate in ``pem``, refusing one that cannot be used ``now``.

    This is the gate for every certificate a user pastes or points to, so each refusal says what
    to do. A private key in the text is refused too: it must never be stored as a certificate.
    ``now`` defaults to the current time; a naive datetime is taken as UTC.
    """
    data = pem.encode("utf-8", "replace") if isinstance(pem, str) else pem
    if b"PRIVATE KEY-----" in data:
        raise InvalidInput(
            "This text contains a private key.",
            "Paste only the certificate (the -----BEGIN CERTIFICATE----- block); a private key "
            "must never leave its owner.",
        )
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise InvalidInput(
            "This is not a PEM certificate.",
            "Paste the text from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE----- or "
            "give the path of a .pem/.crt file; convert a binary (DER) .cer file first with "
            "'openssl x509 -inform der -in partner.cer -out partner.pem'.",
        )
    try:
        certificate = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise InvalidInput(
            "The certificate text is damaged and cannot be read.",
            "Copy it again in full, from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----, "
            "or ask the partner to send the certificate file.",
        ) from exc

    info = _info(certificate)
    moment = now or utc_datetime()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment < info.not_before:
        raise InvalidInput(
            f"The certificate {info.subject} is not valid yet: it starts on "
            f"{info.not_before:%Y-%m-%d %H:%M} UTC.",
            "Check this machine's clock, or use it from that date on.",
        )
    if moment > info.not_after:
        raise InvalidInput(
            f"The certificate {info.subject} expired on {info.not_after:%Y-%m-%d %H:%M} UTC.",
            "Ask its owner for a renewed certificate (or generate a new identity if it is yours).",
        )
    return info


_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----\s.*?-----END CERTIFICATE-----", re.DOTALL)


def split_certificates(pem: str | bytes) -> list[bytes]:
    """Each certificate block of a PEM text (a partner sends two while it rolls over)."""
    data = pem.encode("utf-8", "replace") if isinstance(pem, str) else pem
    return [block.group(0) + b"\n" for block in _PEM_BLOCK.finditer(data)]


def inspect_certificates(pem: str | bytes, now: datetime | None = None) -> list[CertificateInfo]:
    """:func:`inspect_certificate` for each certificate of the text (all must be usable)."""
    blocks = split_certificates(pem)
    if len(blocks) <= 1:
        return [inspect_certificate(pem, now)]
    return [inspect_certificate(block, now) for block in blocks]


def read_certificates(pem: str | bytes) -> list[tuple[bytes, CertificateInfo]]:
    """Every readable certificate with what it says, valid or not (expiry warnings need the
    expired ones too); unreadable blocks are left out."""
    found: list[tuple[bytes, CertificateInfo]] = []
    for block in split_certificates(pem):
        try:
            found.append((block, _info(x509.load_pem_x509_certificate(block))))
        except ValueError:
            continue
    return found


def newest_valid(pem: str | bytes, now: datetime | None = None) -> bytes:
    """The certificate to encrypt to: of those valid now, the one issued last (during a
    rollover the partner's new one); on a tie the one valid longer, then the one pasted last.
    Falls back to the whole text when none is valid."""
    moment = now or utc_datetime()
    valid = [
        ((info.not_before, info.not_after, position), block)
        for position, (block, info) in enumerate(read_certificates(pem))
        if info.not_before <= moment <= info.not_after
    ]
    if not valid:
        return pem.encode() if isinstance(pem, str) else pem
    return max(valid, key=lambda found: found[0])[1]


def load_certificate_text(value: str) -> str:
    """Return PEM text given either pasted PEM text or the path of a PEM file.

    Text starting with ``-----BEGIN`` (after whitespace) is taken as pasted PEM, anything else as
    a path (``~`` expanded). The text is not validated here: pass it to
    :func:`inspect_certificate`.
    """
    text = value.strip()
    if text.startswith(_PEM_BEGIN):
        if len(text) > _MAX_CERTIFICATE_FILE:
            raise InvalidInput(
                "The pasted text is too large to be a certificate.",
                "Paste only the partner's certificate, from -----BEGIN CERTIFICATE----- to "
                "-----END CERTIFICATE-----.",
            )
        return text + "\n"
    if not text:
        raise InvalidInput(
            "No certificate given.",
            "Paste the certificate text (-----BEGIN CERTIFICATE-----...) or give the path of a "
            ".pem file.",
        )
    path = Path(text).expanduser()
    try:
        with path.open("rb") as file:
            data = file.read(_MAX_CERTIFICATE_FILE + 1)
    except FileNotFoundError as exc:
        raise InvalidInput(
            f"There is no file at {path}.",
            "Check the path, or paste the certificate text instead.",
        ) from exc
    except IsADirectoryError as exc:
        raise InvalidInput(
            f"{path} is a directory.", "Give the path of the certificate file itself."
        ) from exc
    except PermissionError as exc:
        raise InvalidInput(
            f"The file {path} cannot be read: permission denied.",
            "Make it readable for the user running docbridge, or paste the certificate text.",
        ) from exc
    except OSError as exc:
        raise InvalidInput(
            f"The file {path} cannot be read ({exc.strerror or exc}).",
            "Check the path, or paste the certificate text instead.",
        ) from exc
    if len(data) > _MAX_CERTIFICATE_FILE:
        raise InvalidInput(
            f"The file {path} is too large to be a certificate.",
            "Give the path of the partner's .pem/.crt certificate file.",
        )
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"The file {path} is not PEM text (it may be a binary DER certificate).",
            f"Convert it with 'openssl x509 -inform der -in {path} -out partner.pem' and give "
            "the .pem file.",
        ) from exc


# Short names of subject attributes (OpenSSL's and LDAP's). cryptography itself names only the
# first nine: without the rest a subject reads "1.2.840.113549.1.9.1=as2@partner.example".
_ATTRIBUTE_NAMES: dict[x509.ObjectIdentifier, str] = {
    NameOID.COMMON_NAME: "CN",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COUNTRY_NAME: "C",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.USER_ID: "UID",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.SURNAME: "SN",
    NameOID.GIVEN_NAME: "GN",
    NameOID.TITLE: "title",
    NameOID.INITIALS: "initials",
    NameOID.GENERATION_QUALIFIER: "generationQualifier",
    NameOID.DN_QUALIFIER: "dnQualifier",
    NameOID.PSEUDONYM: "pseudonym",
    NameOID.POSTAL_CODE: "postalCode",
    NameOID.POSTAL_ADDRESS: "postalAddress",
    NameOID.BUSINESS_CATEGORY: "businessCategory",
    NameOID.JURISDICTION_COUNTRY_NAME: "jurisdictionC",
    NameOID.JURISDICTION_LOCALITY_NAME: "jurisdictionL",
    NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME: "jurisdictionST",
    NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier",
    NameOID.UNSTRUCTURED_NAME: "unstructuredName",
    NameOID.X500_UNIQUE_IDENTIFIER: "x500UniqueIdentifier",
    NameOID.INN: "INN",
    NameOID.OGRN: "OGRN",
    NameOID.SNILS: "SNILS",
}


def subject_text(name: x509.Name) -> str:
    """``name`` as RFC 4514 text with attributes named, e.g. ``CN=acme,emailAddress=...``.

    An attribute appears as its dotted OID only when it has no registered short name: the OID is
    then the only thing a user can look up.
    """
    return name.rfc4514_string(attr_name_overrides=_ATTRIBUTE_NAMES)


def _info(certificate: x509.Certificate) -> CertificateInfo:
    return CertificateInfo(
        subject=subject_text(certificate.subject),
        fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex(":").upper(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


def _write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the first byte, write ``data`` and make it durable."""
    _ensure_private_directory(path.parent)
    try:
        fd = os.open(path, NEW_FILE_FLAGS, 0o600)
    except FileExistsError as exc:
        raise InvalidInput(
            f"A key file already exists at {path}.",
            "Choose another file name, or move the old key away first if you really mean to "
            "replace this identity (partners will need the new certificate).",
        ) from exc
    except OSError as exc:
        raise InvalidInput(
            f"The key file {path} cannot be created ({exc.strerror or exc}).",
            "Check that the directory is writable by the user running docbridge.",
        ) from exc
    fill_new_file(fd, path, data, mode=0o600)
    fsync_dir(path.parent)


def _ensure_private_directory(directory: Path) -> None:
    """Create missing directories 0700; refuse an existing one that others can enter."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for new in reversed(missing):
        try:
            os.mkdir(new, 0o700)
        except FileExistsError:
            continue  # created meanwhile by someone else: the mode check below decides
        except OSError as exc:
            raise InvalidInput(
                f"The directory {new} cannot be created ({exc.strerror or exc}).",
                "Choose a location writable by the user running docbridge.",
            ) from exc
        os.chmod(new, 0o700)
        fsync_dir(new.parent)
    try:
        mode = directory.stat().st_mode
    except OSError as exc:
        raise InvalidInput(
            f"The directory {directory} cannot be used ({exc.strerror or exc}).",
            "Choose a location writable by the user running docbridge.",
        ) from exc
    if not stat.S_ISDIR(mode):
        raise InvalidInput(
            f"{directory} is not a directory.", "Choose another location for the key file."
        )
    if mode & 0o077:
        raise InvalidInput(
            f"The directory {directory} is accessible to other users "
            f"(mode {stat.S_IMODE(mode):04o}); private keys must be in a 0700 directory.",
            f"Run 'chmod 700 {directory}' or choose a directory that does not exist yet "
            "(docbridge then creates it 0700).",
        )
