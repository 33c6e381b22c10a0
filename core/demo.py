"""Demo data for a first run: one account, its mailboxes and templates, ten incoming envelopes.

The files live in ``data/demo/`` (see its README). This module only reads them into typed values;
putting them into the database is the storage layer's job, so a demo and a test fixture share
one source of truth.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import InvalidInput

__all__ = [
    "DEMO_ACCOUNT_PATH",
    "DEMO_DIR",
    "DEMO_ENVELOPES_DIR",
    "SHIPPED_DATA_DIR",
    "DemoAccount",
    "DemoMailbox",
    "DemoPartner",
    "DemoTemplate",
    "DemoTemplateVersion",
    "demo_envelope_files",
    "load_demo_account",
]


def _shipped_data_dir() -> Path:
    """The project's ``data/`` folder (envelope schema, demo account).

    A wheel carries it inside the package as ``core/data`` (``pip install .``, ``pipx``); a
    source tree or an editable install has it beside the package.
    """
    package = Path(__file__).resolve().parent
    installed = package / "data"
    return installed if installed.is_dir() else package.parent / "data"


SHIPPED_DATA_DIR = _shipped_data_dir()
DEMO_DIR = SHIPPED_DATA_DIR / "demo"
DEMO_ACCOUNT_PATH = DEMO_DIR / "account.json"
DEMO_ENVELOPES_DIR = DEMO_DIR / "envelopes"


@dataclass(frozen=True, slots=True)
class DemoMailbox:
    """A mailbox of the demo account."""

    uuid: str
    name: str


@dataclass(frozen=True, slots=True)
class DemoPartner:
    """An external mailbox that sends the demo envelopes (not part of the account)."""

    uuid: str
    name: str


@dataclass(frozen=True, slots=True)
class DemoTemplateVersion:
    """One version of a template.

    ``documents`` keeps the JSON shape (``{"id", "fields": [{"name", "type", "required"}],
    "fieldgroups": [{"name", "fields": [...]}]}``) so storage can keep it as JSON unchanged.
    """

    version: int
    documents: tuple[Mapping[str, Any], ...]

    def field_names(self, document_id: str) -> frozenset[str]:
        """Names of the top-level fields of ``document_id`` (empty if there is no such document)."""
        for document in self.documents:
            if document.get("id") == document_id:
                return frozenset(str(field["name"]) for field in document.get("fields", []))
        return frozenset()

    def fieldgroup_field_names(self, document_id: str, fieldgroup: str) -> frozenset[str]:
        """Names of the fields of table ``fieldgroup`` in ``document_id`` (empty if unknown)."""
        for document in self.documents:
            if document.get("id") != document_id:
                continue
            for group in document.get("fieldgroups", []):
                if group.get("name") == fieldgroup:
                    return frozenset(str(field["name"]) for field in group.get("fields", []))
        return frozenset()


@dataclass(frozen=True, slots=True)
class DemoTemplate:
    """A template with its versions in file order."""

    uuid: str
    name: str
    versions: tuple[DemoTemplateVersion, ...]

    def version(self, number: int) -> DemoTemplateVersion | None:
        """Version ``number`` of this template, or None."""
        return next((v for v in self.versions if v.version == number), None)

    @property
    def latest(self) -> DemoTemplateVersion:
        """The highest version: conversion rules default to it (SPEC §7)."""
        return max(self.versions, key=lambda v: v.version)


@dataclass(frozen=True, slots=True)
class DemoAccount:
    """The demo account as read from ``account.json``."""

    uuid: str
    name: str
    mailboxes: tuple[DemoMailbox, ...]
    partners: tuple[DemoPartner, ...]
    templates: tuple[DemoTemplate, ...]

    def template(self, uuid: str) -> DemoTemplate | None:
        """The template with ``uuid`` (compared case-insensitively), or None."""
        wanted = uuid.lower()
        return next((t for t in self.templates if t.uuid.lower() == wanted), None)


def load_demo_account(path: Path | None = None) -> DemoAccount:
    """Read the demo account (``data/demo/account.json`` unless ``path`` is given).

    Raises InvalidInput naming the file when it is missing or does not have the expected shape.
    """
    path = DEMO_ACCOUNT_PATH if path is None else path
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(
            f"Demo data not found: {path}", "Run docbridge from a complete installation."
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInput(f"Demo data cannot be read: {path}: {error}") from None
    try:
        return _account(raw)
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidInput(
            f"Demo data in {path} does not have the expected shape: {error!r}"
        ) from None


def demo_envelope_files() -> list[Path]:
    """The demo envelope XML files, sorted by name (the order they should arrive in)."""
    return sorted(DEMO_ENVELOPES_DIR.glob("*.xml"))


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key!r} must be a non-empty string")
    return value


def _account(raw: Any) -> DemoAccount:
    if not isinstance(raw, Mapping):
        raise TypeError("the top level must be an object")
    account = raw["account"]
    return DemoAccount(
        uuid=_str(account, "uuid"),
        name=_str(account, "name"),
        mailboxes=tuple(
            DemoMailbox(uuid=_str(m, "uuid"), name=_str(m, "name")) for m in raw["mailboxes"]
        ),
        partners=tuple(
            DemoPartner(uuid=_str(p, "uuid"), name=_str(p, "name")) for p in raw.get("partners", [])
        ),
        templates=tuple(
            DemoTemplate(
                uuid=_str(t, "uuid"),
                name=_str(t, "name"),
                versions=tuple(_version(v) for v in t["versions"]),
            )
            for t in raw["templates"]
        ),
    )


def _version(raw: Mapping[str, Any]) -> DemoTemplateVersion:
    number = raw["version"]
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise ValueError(f"template version must be a positive integer, got {number!r}")
    documents = raw["documents"]
    if not isinstance(documents, list) or not all(isinstance(d, Mapping) for d in documents):
        raise TypeError("'documents' must be a list of objects")
    return DemoTemplateVersion(version=number, documents=tuple(documents))
