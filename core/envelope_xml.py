"""Envelope XML ("WD data exchange format"): the platform's own exchange format (SPEC §2).

Envelope XML reaches docbridge from customers (``outbox/``, AS2) and from the platform, so every
document is treated as hostile: no DTD of any kind is accepted (that rules out entity bombs and
external entities before a single declaration is read), no network or file access happens while
parsing, and every document must match ``data/envelope.xsd`` before it becomes an
:class:`EnvelopeXml`. Anything wrong raises :class:`~core.errors.InvalidInput` with a message that
names the problem and, where libxml2 knows it, the line.
"""

from __future__ import annotations

import codecs
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from lxml import etree

from core.demo import SHIPPED_DATA_DIR
from core.errors import EngineUnavailable, InvalidInput
from core.safe_xml import DoctypeFound, parse_untrusted, safe_parser

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ENVELOPE_XSD_PATH",
    "FIELD_NAME_MAX_LENGTH",
    "SUBJECT_MAX_LENGTH",
    "EnvelopeDocument",
    "EnvelopeField",
    "EnvelopeFieldgroup",
    "EnvelopeFieldset",
    "EnvelopeRole",
    "EnvelopeXml",
    "StoredEnvelope",
    "check_field_name",
    "parse_envelope_xml",
    "parse_stored_envelope_xml",
    "serialize_envelope_xml",
    "validate_envelope_xml",
]

# The schema ships in the project's data/ folder: beside core/ in a source checkout or an editable
# install, inside it (core/data/) in a wheel.
ENVELOPE_XSD_PATH = SHIPPED_DATA_DIR / "envelope.xsd"

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
FIELD_NAME_MAX_LENGTH = 128
SUBJECT_MAX_LENGTH = 1000

_FIELD_NAME_FORBIDDEN = frozenset('&"<>')
# Characters XML 1.0 cannot carry at all, so a name holding one could never be written out.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

_FIX_HINT = "Correct the file and send it again."

_T = TypeVar("_T")


# --- model -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnvelopeField:
    """One named value; values are kept as the exact text of the XML element."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class EnvelopeFieldset:
    """One row of a fieldgroup (a table); ``index`` is the row number the platform gave it."""

    index: int
    fields: tuple[EnvelopeField, ...]

    def field_value(self, name: str) -> str | None:
        """The value of field ``name`` in this row, or None if the row has no such field."""
        return _find_value(self.fields, name)


@dataclass(frozen=True, slots=True)
class EnvelopeFieldgroup:
    """A table of a document: named, with its rows in document order."""

    name: str
    fieldsets: tuple[EnvelopeFieldset, ...]


@dataclass(frozen=True, slots=True)
class EnvelopeDocument:
    """One document of an envelope: top-level fields and tables (fieldgroups)."""

    id: str
    fields: tuple[EnvelopeField, ...]
    fieldgroups: tuple[EnvelopeFieldgroup, ...]

    def field_value(self, name: str) -> str | None:
        """The value of top-level field ``name`` (not inside tables), or None if absent.

        Naming patterns (``{"documentId":"fieldName"}``) resolve through this.
        """
        return _find_value(self.fields, name)

    def fieldgroup(self, name: str) -> EnvelopeFieldgroup | None:
        """The fieldgroup called ``name``, or None."""
        return next((group for group in self.fieldgroups if group.name == name), None)


@dataclass(frozen=True, slots=True)
class EnvelopeRole:
    """A participant of the envelope's flow; ``mailbox_uuid`` is lower-case."""

    id: str
    mailbox_uuid: str


@dataclass(frozen=True, slots=True)
class EnvelopeXml:
    """A parsed envelope XML document.

    UUIDs are normalised to lower case on parse so they compare equal to the UUIDs docbridge
    stores; ``uuid`` is None when the file carries none (a customer's new envelope). An absent
    ``<message>`` and an empty one both read as ``""``.
    """

    template_uuid: str
    template_version: int
    uuid: str | None
    subject: str
    message: str
    roles: tuple[EnvelopeRole, ...]
    documents: tuple[EnvelopeDocument, ...]

    def role_mailbox(self, role_id: str) -> str | None:
        """The mailbox UUID that plays role ``role_id``, or None."""
        return next((role.mailbox_uuid for role in self.roles if role.id == role_id), None)

    def document(self, document_id: str) -> EnvelopeDocument | None:
        """The document with id ``document_id``, or None."""
        return next((doc for doc in self.documents if doc.id == document_id), None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (lists, str, int, None) that :meth:`from_dict` turns back into ``self``.

        Fields stay lists of name/value pairs, not dicts, so document order survives storage.
        """
        return {
            "template_uuid": self.template_uuid,
            "template_version": self.template_version,
            "uuid": self.uuid,
            "subject": self.subject,
            "message": self.message,
            "roles": [{"id": role.id, "mailbox_uuid": role.mailbox_uuid} for role in self.roles],
            "documents": [
                {
                    "id": doc.id,
                    "fields": _fields_to_list(doc.fields),
                    "fieldgroups": [
                        {
                            "name": group.name,
                            "fieldsets": [
                                {"index": fs.index, "fields": _fields_to_list(fs.fields)}
                                for fs in group.fieldsets
                            ],
                        }
                        for group in doc.fieldgroups
                    ],
                }
                for doc in self.documents
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnvelopeXml:
        """Rebuild an envelope from :meth:`to_dict` output (e.g. read back from SQLite).

        Raises ValueError when the data does not have that shape: stored data is ours, so a
        mismatch is a bug or a damaged database, not user input.
        """
        uuid = data.get("uuid")
        if uuid is not None and not isinstance(uuid, str):
            raise ValueError("envelope dict: 'uuid' must be a string or null")
        return cls(
            template_uuid=_get(data, "template_uuid", str),
            template_version=_get_int(data, "template_version"),
            uuid=uuid,
            subject=_get(data, "subject", str),
            message=_get(data, "message", str),
            roles=tuple(
                EnvelopeRole(id=_get(role, "id", str), mailbox_uuid=_get(role, "mailbox_uuid", str))
                for role in _get_dicts(data, "roles")
            ),
            documents=tuple(
                EnvelopeDocument(
                    id=_get(doc, "id", str),
                    fields=_fields_from_list(doc),
                    fieldgroups=tuple(
                        EnvelopeFieldgroup(
                            name=_get(group, "name", str),
                            fieldsets=tuple(
                                EnvelopeFieldset(
                                    index=_get_int(fs, "index"), fields=_fields_from_list(fs)
                                )
                                for fs in _get_dicts(group, "fieldsets")
                            ),
                        )
                        for group in _get_dicts(doc, "fieldgroups")
                    ),
                )
                for doc in _get_dicts(data, "documents")
            ),
        )


def _find_value(fields: Sequence[EnvelopeField], name: str) -> str | None:
    return next((field.value for field in fields if field.name == name), None)


def _fields_to_list(fields: Sequence[EnvelopeField]) -> list[dict[str, str]]:
    return [{"name": field.name, "value": field.value} for field in fields]


def _fields_from_list(data: Mapping[str, Any]) -> tuple[EnvelopeField, ...]:
    return tuple(
        EnvelopeField(name=_get(field, "name", str), value=_get(field, "value", str))
        for field in _get_dicts(data, "fields")
    )


def _get(data: Mapping[str, Any], key: str, kind: type[_T]) -> _T:
    value = data.get(key)
    if not isinstance(value, kind):
        raise ValueError(f"envelope dict: {key!r} must be a {kind.__name__}, got {value!r}")
    return value


def _get_int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"envelope dict: {key!r} must be an int, got {value!r}")
    return value


def _get_dicts(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = _get(data, key, list)
    if not all(isinstance(item, Mapping) for item in value):
        raise ValueError(f"envelope dict: every item of {key!r} must be an object")
    return value


# --- field names --------------------------------------------------------------------------------


def check_field_name(name: str) -> str | None:
    """Return why ``name`` is not a valid field or fieldgroup name, or None if it is.

    The same rule as ``fieldNameType`` in the schema (1-128 characters without ``& " < >``),
    plus the characters XML cannot carry at all, so forms can refuse a name before it reaches
    an envelope.
    """
    if not name:
        return "Field name must not be empty."
    if len(name) > FIELD_NAME_MAX_LENGTH:
        return (
            f"Field name is {len(name)} characters long; "
            f"use at most {FIELD_NAME_MAX_LENGTH} characters."
        )
    forbidden = sorted(_FIELD_NAME_FORBIDDEN.intersection(name))
    if forbidden:
        shown = " ".join(forbidden)
        return f'Field name must not contain {shown} (the characters & " < > are not allowed).'
    if _XML_ILLEGAL.search(name):
        return "Field name must not contain control characters."
    return None


# --- parsing ----------------------------------------------------------------------------------


def _refuse_doctype() -> InvalidInput:
    return InvalidInput(
        "Envelope XML must not contain a DOCTYPE or entity declarations",
        "Remove the <!DOCTYPE ...> block; envelope XML needs no DTD.",
    )


def _not_well_formed(error: etree.XMLSyntaxError) -> InvalidInput:
    # lxml-stubs do not describe error logs; the entries carry libxml2's message and line.
    log: Any = error.error_log
    entry: Any = log.last_error if log else None
    message = str(entry.message if entry is not None else error.msg) or str(error)
    line = entry.line if entry is not None else error.lineno
    return InvalidInput(
        f"Envelope XML is not well-formed: {_clean(message)} (line {line})", _FIX_HINT
    )


def _clean(message: str) -> str:
    """libxml2's message without the trailing period, so `(line N)` can follow it."""
    # libxml2 sometimes appends its own "line N" too; ours follows.
    return re.sub(r",? line \d+(, column \d+)?$", "", message.strip().rstrip("."))


def _parse_tree(data: bytes, max_bytes: int) -> etree._Element:
    """Well-formedness, size and DTD checks; returns the root element (not yet schema-checked)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"envelope XML must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise InvalidInput(
            f"Envelope XML is too large: {len(data):,} bytes (the limit is {max_bytes:,} bytes)",
            "Split the envelope or ask the administrator to raise the size limit.",
        )
    if not data.strip():
        raise InvalidInput("Envelope XML is empty", "Send a file that contains an <envelope>.")
    if _looks_binary(data):  # libxml2 would call it "Document is empty"
        raise InvalidInput(
            "This is not envelope XML: it holds binary data.",
            "Envelope XML is text; check that this is the right file.",
        )
    try:
        return parse_untrusted(data)
    except DoctypeFound:
        raise _refuse_doctype() from None
    except etree.XMLSyntaxError as error:
        raise _not_well_formed(error) from None


def _looks_binary(data: bytes) -> bool:
    """NUL bytes near the start, in a document that is not UTF-16 or UTF-32 XML (whose text
    holds NUL bytes: with a byte-order mark, or a ``<`` next to one)."""
    head = bytes(data[:1024])
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32)):
        return False
    if head.startswith((b"<\x00", b"\x00<", b"\x00\x00\x00<")):
        return False
    return b"\x00" in head


class _SchemaCache(threading.local):
    """One compiled schema per thread: an XMLSchema's error log is per object, not per call."""

    schema: etree.XMLSchema | None = None


_schemas = _SchemaCache()
# libxml2 sets up its built-in schema types on the first schema a process compiles, and threads
# compiling their first schemas at once break that set-up: every one of them then fails with
# "Document is not valid XML Schema". Compiling one at a time is cheap (once per thread).
_compiling = threading.Lock()


def _schema() -> etree.XMLSchema:
    schema = _schemas.schema
    if schema is None:
        if not ENVELOPE_XSD_PATH.is_file():
            raise EngineUnavailable(
                f"The envelope schema is missing: {ENVELOPE_XSD_PATH} does not exist.",
                "Reinstall docbridge: the package carries it (core/data/ when installed).",
            )
        schema_doc = etree.parse(str(ENVELOPE_XSD_PATH), safe_parser())
        with _compiling:
            schema = etree.XMLSchema(schema_doc)
        _schemas.schema = schema
    return schema


def _check_schema(root: etree._Element, *, from_source: bool = True) -> None:
    """Raise InvalidInput with the first schema error; ``from_source`` says lines are meaningful."""
    schema = _schema()
    try:
        if schema.validate(root):
            return
    except etree.XMLSchemaValidateError as error:
        # libxml2 gives up on trees it cannot validate (e.g. unexpanded entity references).
        raise InvalidInput(
            f"Envelope XML does not match the envelope schema: {_clean(str(error))}", _FIX_HINT
        ) from None
    log: Any = schema.error_log  # lxml-stubs do not describe error log entries
    entry = log[0]
    # The element's XPath says where in a generated envelope (a map's output) it went wrong.
    path = f" at {entry.path}" if getattr(entry, "path", None) else ""
    where = f"{path} (line {entry.line})" if from_source else path
    raise InvalidInput(
        f"Envelope XML does not match the envelope schema: {_clean(str(entry.message))}{where}",
        _FIX_HINT,
    )


def validate_envelope_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Raise InvalidInput unless ``data`` is a safe, well-formed envelope that matches the schema.

    For callers that keep the bytes as they are (a file passed on to ``inbox/``) and only need
    the verdict.
    """
    _check_schema(_parse_tree(data, max_bytes))


def parse_envelope_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> EnvelopeXml:
    """Parse untrusted envelope XML into an :class:`EnvelopeXml`.

    Order of checks: size (``max_bytes``, default 20 MB), emptiness, DOCTYPE (refused outright,
    before any declaration is read), well-formedness, then the schema. Each failure raises
    InvalidInput with a message a user can act on.
    """
    root = _parse_tree(data, max_bytes)
    _check_schema(root)
    return _envelope_from_root(root)


@dataclass(frozen=True, slots=True)
class StoredEnvelope:
    """What running an IN rule reads of a stored envelope (:func:`parse_stored_envelope_xml`).

    UUIDs are lower-case, as in :class:`EnvelopeXml`; ``sender`` is the mailbox playing role
    ``sender``. Fields are read from the tree when asked for (:meth:`field_value`): building a
    whole :class:`EnvelopeXml` cost more than parsing the XML, and a naming pattern reads a
    field or two at most.
    """

    template_uuid: str
    template_version: int
    uuid: str | None
    sender: str | None
    root: etree._Element

    def field_value(self, document_id: str, field_name: str) -> str | None:
        """A document's top-level field, as :meth:`EnvelopeDocument.field_value` gives it."""
        documents = self.root.find("documents")
        if documents is None:
            return None
        for document in documents.iterchildren("document"):
            if document.get("id") == document_id:
                for field in document.iterchildren("field"):
                    if (field.get("name") or "") == field_name:
                        return field.text or ""
                return None
        return None


class _StoredParser(threading.local):
    """One parser per thread: lxml parsers are not to be shared between threads, and making
    one per call cost a tenth of a small envelope's parse."""

    def __init__(self) -> None:
        self.parser = safe_parser()


_stored_parsers = _StoredParser()


def parse_stored_envelope_xml(data: bytes) -> StoredEnvelope:
    """Read envelope XML that docbridge's own store holds, without the schema check.

    Every envelope in the store passed :func:`parse_envelope_xml` (schema included) when it
    was received or made by an OUT rule, and only docbridge writes the store, so checking the
    schema again on each conversion only costs time (about half of a small envelope's parse).
    It is still parsed with :func:`~core.safe_xml.safe_parser` (no DTD, no entities, no
    network). A row that is not an envelope after all (a damaged database) raises
    InvalidInput.
    """
    try:
        root = etree.fromstring(data, _stored_parsers.parser)
    except etree.XMLSyntaxError as error:
        raise _not_well_formed(error) from None
    template_uuid = root.get("templateUuid")
    version = root.get("templateVersion")
    if root.tag != "envelope" or template_uuid is None or version is None:
        raise InvalidInput(
            "The stored envelope XML is damaged: it is not an <envelope> with a template",
            "Ask the sender to send the envelope again.",
        )
    try:
        template_version = int(version)
    except ValueError:
        raise InvalidInput(
            f"The stored envelope XML is damaged: template version {version!r}",
            "Ask the sender to send the envelope again.",
        ) from None
    sender = next(
        (
            role.get("mailboxUuid")
            for role in root.iterfind("flow/roles/role")
            if role.get("id") == "sender"
        ),
        None,
    )
    uuid = root.get("uuid")
    return StoredEnvelope(
        template_uuid=template_uuid.lower(),
        template_version=template_version,
        uuid=uuid.lower() if uuid is not None else None,
        sender=sender.lower() if sender is not None else None,
        root=root,
    )


def _text(element: etree._Element | None) -> str:
    if element is None or element.text is None:
        return ""
    return element.text


def _attr(element: etree._Element, name: str) -> str:
    # The schema made every attribute read here mandatory; a miss is a schema bug.
    value = element.get(name)
    if value is None:
        raise AssertionError(f"schema let <{element.tag}> through without {name!r}")
    return value


def _fields(parent: etree._Element) -> tuple[EnvelopeField, ...]:
    # The hot loop of large envelopes (tables of many rows): keep it to plain attribute reads.
    return tuple(
        [
            EnvelopeField(field.get("name") or "", field.text or "")
            for field in parent.iterchildren("field")
        ]
    )


def _envelope_from_root(root: etree._Element) -> EnvelopeXml:
    info = root.find("info")
    roles = root.find("flow/roles")
    documents = root.find("documents")
    if info is None or roles is None or documents is None:
        raise AssertionError("schema let an envelope through without info, roles or documents")
    uuid = root.get("uuid")
    return EnvelopeXml(
        template_uuid=_attr(root, "templateUuid").lower(),
        template_version=int(_attr(root, "templateVersion")),
        uuid=uuid.lower() if uuid is not None else None,
        subject=_text(info.find("subject")),
        message=_text(info.find("message")),
        roles=tuple(
            EnvelopeRole(id=_attr(role, "id"), mailbox_uuid=_attr(role, "mailboxUuid").lower())
            for role in roles.iterchildren("role")
        ),
        documents=tuple(
            EnvelopeDocument(
                id=_attr(doc, "id"),
                fields=_fields(doc),
                fieldgroups=tuple(
                    EnvelopeFieldgroup(
                        name=_attr(group, "name"),
                        fieldsets=tuple(
                            EnvelopeFieldset(index=int(_attr(fs, "index")), fields=_fields(fs))
                            for fs in group.iterchildren("fieldset")
                        ),
                    )
                    for group in doc.iterchildren("fieldgroup")
                ),
            )
            for doc in documents.iterchildren("document")
        ),
    )


# --- serialising --------------------------------------------------------------------------------


def _add_fields(parent: etree._Element, fields: Sequence[EnvelopeField]) -> None:
    for field in fields:
        etree.SubElement(parent, "field", name=field.name).text = field.value or None


def serialize_envelope_xml(env: EnvelopeXml) -> bytes:
    """Write ``env`` as pretty-printed UTF-8 envelope XML with an XML declaration.

    ``parse_envelope_xml(serialize_envelope_xml(env)) == env`` for every envelope with lower-case
    UUIDs (values keep their exact whitespace). The output is checked against the schema, so
    docbridge never writes an envelope it would refuse to read: an invalid ``env`` (a bad field
    name, a duplicate document id, text XML cannot hold) raises InvalidInput.
    """
    try:
        root = etree.Element("envelope")
        root.set("templateUuid", env.template_uuid)
        root.set("templateVersion", str(env.template_version))
        if env.uuid is not None:
            root.set("uuid", env.uuid)
        info = etree.SubElement(root, "info")
        etree.SubElement(info, "subject").text = env.subject or None
        etree.SubElement(info, "message").text = env.message or None
        roles = etree.SubElement(etree.SubElement(root, "flow"), "roles")
        for role in env.roles:
            etree.SubElement(roles, "role", id=role.id, mailboxUuid=role.mailbox_uuid)
        documents = etree.SubElement(root, "documents")
        for doc in env.documents:
            doc_el = etree.SubElement(documents, "document", id=doc.id)
            _add_fields(doc_el, doc.fields)
            for group in doc.fieldgroups:
                group_el = etree.SubElement(doc_el, "fieldgroup", name=group.name)
                for fieldset in group.fieldsets:
                    fs_el = etree.SubElement(group_el, "fieldset", index=str(fieldset.index))
                    _add_fields(fs_el, fieldset.fields)
    except ValueError as error:
        # lxml refuses control characters and other text XML 1.0 cannot represent.
        raise InvalidInput(f"Envelope cannot be written as XML: {error}", _FIX_HINT) from None
    _check_schema(root, from_source=False)
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)
