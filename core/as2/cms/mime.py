"""MIME entities and headers, read and written as AS2 (and pyas2lib) needs them.

Reading: an :class:`Entity` is a MIME entity located inside a buffer by offsets (its headers
parsed as the email package's compat32 parser reads them, its body left in place), so a
large payload is never copied to be looked at. Writing: multipart boundaries, the
Content-Disposition of a filename and AS2 names in headers, as the email package writes them,
and the AS2 protocol header values.
"""

from __future__ import annotations

import binascii
import re
import secrets
import sys
from dataclasses import dataclass
from email import utils as email_utils
from email.message import Message as MimeMessage

from core.as2.cms.buffer import Filler

AS2_VERSION = "1.2"


EDIINT_FEATURES = "CMS"


MAX_HEADERS = 1 << 16  # bytes of MIME headers read before the body is assumed to start


@dataclass(slots=True)
class Entity:
    """A MIME entity inside ``data``: its headers and where its body lies."""

    data: bytes
    headers: list[tuple[str, str]]
    start: int  # where its headers begin (the raw signed part starts here)
    body_start: int
    end: int
    # The buffer ``data`` was decrypted into, when only this package holds it: the payload is
    # then cut out of it in place instead of copied (see parse._payload).
    owner: Filler | None = None

    def get(self, name: str) -> str | None:
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return None

    def content_type(self) -> tuple[str, dict[str, str]]:
        return _parse_content_type(self.get("content-type"))

    def cte(self) -> str:
        return (self.get("content-transfer-encoding") or "").strip().lower()


_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def _parse_content_type(value: str | None) -> tuple[str, dict[str, str]]:
    if not value:
        return "text/plain", {}
    main, _, _rest = value.partition(";")
    params = {}
    for match in _PARAM.finditer(value[len(main) :]):
        raw = match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[match.group(1).lower()] = raw
    return main.strip().lower(), params


EOL = re.compile(rb"\r\n|\r|\n")


def parse_entity(data: bytes, start: int, end: int, owner: Filler | None = None) -> Entity:
    """Headers of the entity in data[start:end] (as the email package's compat32 parser reads
    them, folded lines kept) and where its body starts."""
    headers: list[tuple[str, str]] = []
    pos = start
    name: str | None = None
    value = ""
    while pos < end and pos - start < MAX_HEADERS:
        match = EOL.search(data, pos, min(end, pos + 65536))
        line_end, next_pos = (match.start(), match.end()) if match else (end, end)
        line = data[pos:line_end]
        if not line:
            pos = next_pos
            break
        text = line.decode("latin-1")
        if text[0] in " \t" and name is not None:
            value += "\r\n" + text
        elif ":" in text:
            if name is not None:
                headers.append((name, value))
            name, _, value = text.partition(":")
            value = value.lstrip(" \t")
        else:
            # Not a header line: the body starts here (no blank line), as the email package does.
            break
        pos = next_pos
    if name is not None:
        headers.append((name, value))
    return Entity(
        data=data, headers=headers, start=start, body_start=min(pos, end), end=end, owner=owner
    )


def decoded_body(entity: Entity) -> tuple[bytes, int, int]:
    """The entity's body decoded from its transfer encoding, as (data, start, end)."""
    cte = entity.cte()
    if cte == "base64":
        raw = binascii.a2b_base64(entity.data[entity.body_start : entity.end])
        return raw, 0, len(raw)
    if cte == "quoted-printable":
        raw = binascii.a2b_qp(entity.data[entity.body_start : entity.end])
        return raw, 0, len(raw)
    return entity.data, entity.body_start, entity.end


def disposition_filename(content_disposition: str | None) -> str | None:
    if content_disposition is None:
        return None
    probe = MimeMessage()
    probe["Content-Disposition"] = content_disposition
    return probe.get_filename()


def new_boundary() -> str:
    # pyas2lib's (and the email package's) form: 15 '=' signs, 19 digits, '=='.
    return "=" * 15 + f"{secrets.randbelow(sys.maxsize):019d}" + "=="


def disposition(filename: str) -> str:
    """``attachment; filename="..."`` as the email package writes it (RFC 2231 when not ASCII)."""
    if filename.isascii():
        quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
        return f'attachment; filename="{quoted}"'
    probe = MimeMessage()
    probe.add_header("Content-Disposition", "attachment", filename=filename)
    return str(probe["Content-Disposition"])


def quote_as2name(name: str) -> str:
    if re.search(r'[\\" ]', name):
        return '"' + email_utils.quote(name) + '"'
    return name
