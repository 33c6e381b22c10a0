"""The platform's XSLT extension functions that mean something here, so its maps run unchanged.

A map written for the platform calls them in the namespace
``java:com.whitedoc.xslt.extensions.WdExtensions``:

- ``getMailboxUuidByAlias(name)``: the uuid of the account's mailbox called ``name``;
- ``findEnvelopeUuidByField(templateUuid, fieldName, value)``: the uuid of the one envelope of
  that template, in the account's mailboxes, whose top-level field has that value.

Each returns the empty string when nothing or more than one thing matches (the platform's
behaviour). Any other function of that namespace is refused before compiling
(:mod:`core.conversion.sandbox`).

The answers need the account's data, but transforms run in worker processes: a job carries a
:class:`LookupContext` (database file and account), and the worker answers from its own
read-only connection, opened on first use and kept. A transform without a context that calls
one of these functions stops with an error saying the map needs the mailbox's account.

XSLT 1.0 (lxml) calls Python functions directly. Saxon-HE 13.1.1 does not:
``PySaxonProcessor.register_user_function`` returns without error but its functions are never
found ("Cannot find a 1-argument function"), and ``java:`` names are reflexive calls that HE
lacks. So for 2.0/3.0 the two functions are declared in the stylesheet itself
(:func:`add_saxon_functions`): each looks its arguments up in a document parameter of known
answers; an unknown question is asked through ``xsl:message`` and answered as ``""``. The worker
then answers the questions and runs the transform again, until a run asks nothing new
(:data:`MAX_LOOKUP_ROUNDS`). A map that looks up N values runs twice, not N times.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import quoteattr

from lxml import etree

from core.conversion.errors import XsltRuntimeError
from core.storage import lookups
from core.storage.connection import Tx

WD_NAMESPACE = "java:com.whitedoc.xslt.extensions.WdExtensions"
WD_FUNCTIONS: dict[str, int] = {"getMailboxUuidByAlias": 1, "findEnvelopeUuidByField": 3}
LOOKUPS_NAMESPACE = "urn:docbridge:lookups"
LOOKUPS_PARAMETER = f"{{{LOOKUPS_NAMESPACE}}}answers"
LOOKUP_MESSAGE = "docbridge-lookup "
MAX_LOOKUP_ROUNDS = 8


@dataclass(frozen=True)
class LookupContext:
    """Where a transform's look-ups are answered from: the docbridge database file and the
    account whose mailboxes and envelopes the map may see (the rule's mailbox's account)."""

    database: str
    account_uuid: str


# --- answering, in the worker process -----------------------------------------------------------

_context: LookupContext | None = None
_connections: dict[str, Tx] = {}


def use_lookup_context(context: LookupContext | None) -> None:
    """Answer the following transforms' look-ups from ``context`` (one job at a time)."""
    global _context
    _context = context


def answer(function: str, arguments: tuple[str, ...]) -> str:
    """The value ``function`` returns for ``arguments``; ``""`` when not exactly one matches."""
    arity = WD_FUNCTIONS.get(function)
    if arity is None or len(arguments) != arity:
        raise XsltRuntimeError(
            f"The conversion map calls wd:{function}() with {len(arguments)} arguments",
            PROVIDED_FUNCTIONS,
        )
    if _context is None:
        raise XsltRuntimeError(
            f"The conversion map calls wd:{function}(), which needs the mailbox's account",
            "Only a rule of a mailbox can look up mailboxes and envelopes; run the rule from "
            "docbridge (its form or the engine), not on its own.",
        )
    conn = _connection(_context.database)
    if function == "getMailboxUuidByAlias":
        found = lookups.mailbox_uuid_by_alias(conn, _context.account_uuid, *arguments)
    else:
        template_uuid, field_name, value = arguments
        found = lookups.envelope_uuid_by_field(
            conn, _context.account_uuid, template_uuid, field_name, value
        )
    return found or ""


PROVIDED_FUNCTIONS = (
    "docbridge provides getMailboxUuidByAlias(name) and "
    "findEnvelopeUuidByField(templateUuid, fieldName, value) in the namespace "
    f"{WD_NAMESPACE}."
)


def _connection(database: str) -> Tx:
    conn = _connections.get(database)
    if conn is None:
        try:
            conn = lookups.open_read_only(database)
        except sqlite3.Error as error:
            raise XsltRuntimeError(
                "The conversion map's look-up could not read the docbridge database",
                f"{error}. Check that the data directory is readable.",
            ) from error
        _connections[database] = conn
    return conn


# --- XSLT 1.0: lxml extension functions ---------------------------------------------------------


def lxml_extensions() -> dict[tuple[str, str], Callable[..., str]]:
    """The functions to pass as ``extensions=`` to ``etree.XSLT``."""
    return {(WD_NAMESPACE, name): _lxml_function(name) for name in WD_FUNCTIONS}


def _lxml_function(name: str) -> Callable[..., str]:
    def call(_context: Any, *arguments: Any) -> str:
        return answer(name, tuple(_xpath_string(argument) for argument in arguments))

    return call


def _xpath_string(value: Any) -> str:
    """XPath's ``string()`` of an argument lxml hands over (node-set, string, number, boolean)."""
    if isinstance(value, list):
        return _xpath_string(value[0]) if value else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, etree._Element):
        return "".join(str(text) for text in value.itertext())
    return str(value)


# --- XSLT 2.0 / 3.0: functions declared in the stylesheet ---------------------------------------

_XSL = "http://www.w3.org/1999/XSL/Transform"
_FUNCTION_TEMPLATE = """<xsl:function xmlns:xsl="{xsl}" xmlns:wd="{wd}" xmlns:lookups="{ns}"
    name="wd:{name}">{params}
  <xsl:variable name="lookups:key" select="concat({key})"/>
  <xsl:variable name="lookups:hit" select="$lookups:answers/*/*[@key = $lookups:key]"/>
  <xsl:choose>
    <xsl:when test="exists($lookups:hit)">
      <xsl:sequence select="string($lookups:hit[1])"/>
    </xsl:when>
    <xsl:otherwise>
      <xsl:message select="concat('{message}', $lookups:key)"/>
      <xsl:sequence select="''"/>
    </xsl:otherwise>
  </xsl:choose>
</xsl:function>"""
_PARAMETER = (
    f'<xsl:param xmlns:xsl="{_XSL}" xmlns:lookups="{LOOKUPS_NAMESPACE}" '
    'name="lookups:answers" as="document-node()?" select="()"/>'
)


def calls_wd_functions(tree: etree._ElementTree) -> bool:
    """Whether the stylesheet mentions the platform's namespace (declared or as an EQName)
    and can declare functions: a simplified stylesheet (a literal result element) cannot."""
    root = etree.QName(tree.getroot())
    if root.namespace != _XSL or root.localname not in ("stylesheet", "transform", "package"):
        return False
    for element in tree.getroot().iter(etree.Element):
        if WD_NAMESPACE in element.nsmap.values():
            return True
        if any(WD_NAMESPACE in str(value) for value in element.attrib.values()):
            return True
        if element.text and WD_NAMESPACE in element.text:
            return True
    return False


def add_saxon_functions(tree: etree._ElementTree) -> None:
    """Declare the two functions (and the answers parameter) at the end of the stylesheet, so
    the stylesheet's own line numbers stay as written. Declarations carry their namespaces
    themselves: none is added to the result's elements."""
    root = tree.getroot()
    root.append(etree.fromstring(_PARAMETER))
    for name, arity in WD_FUNCTIONS.items():
        params = "".join(f'\n  <xsl:param name="lookups:a{i}"/>' for i in range(arity))
        parts = [f"'{name}'"] + [f"encode-for-uri(string($lookups:a{i}))" for i in range(arity)]
        key = ", ' ', ".join(parts)
        text = _FUNCTION_TEMPLATE.format(
            xsl=_XSL,
            wd=WD_NAMESPACE,
            ns=LOOKUPS_NAMESPACE,
            name=name,
            params=params,
            key=key,
            message=LOOKUP_MESSAGE,
        )
        root.append(etree.fromstring(text))


def lookup_questions(messages: Iterable[str]) -> list[str]:
    """The keys asked for by the declared functions' ``xsl:message``s, in order, once each."""
    keys = (m[len(LOOKUP_MESSAGE) :] for m in messages if m.startswith(LOOKUP_MESSAGE))
    return list(dict.fromkeys(keys))


def is_lookup_message(message: str) -> bool:
    return message.startswith(LOOKUP_MESSAGE)


def answer_key(key: str) -> str:
    """Answer one question ``"function arg1 arg2 ..."`` (arguments URI-encoded)."""
    function, *encoded = key.split(" ")
    return answer(function, tuple(unquote(argument) for argument in encoded))


def answers_document(answers: dict[str, str]) -> str:
    """The answers parameter's document: ``<answers><answer key="...">uuid</answer>...``."""
    items = "".join(
        f"<answer key={quoteattr(key)}>{_escape(value)}</answer>" for key, value in answers.items()
    )
    return f"<answers>{items}</answers>"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
