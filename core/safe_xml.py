"""Parsing XML nobody vouches for (envelopes, customer sources): no DTD, no entity, no network.

Run :class:`PrologGuard` first to refuse any DOCTYPE before its internal subset is read, then
parse with :func:`safe_parser`.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from lxml import etree

__all__ = ["DoctypeFound", "PrologEnd", "PrologGuard", "parse_untrusted", "safe_parser"]


class DoctypeFound(Exception):
    """Raised by the prolog guard when the document declares a DOCTYPE."""


class PrologEnd(Exception):
    """Raised by the prolog guard at the root element: the prolog had no DOCTYPE."""


class PrologGuard:
    """Parser target that only looks at the prolog.

    libxml2 reports ``<!DOCTYPE`` before it reads the internal subset, so stopping there means no
    entity declaration (bomb or external) is ever processed. libxml2 does the decoding, so a
    UTF-16 document cannot hide its DOCTYPE the way it would from a byte search.
    """

    def doctype(self, name: str | None, pubid: str | None, system: str | None) -> None:
        raise DoctypeFound

    def start(self, tag: str | bytes, attrib: dict[str | bytes, str | bytes]) -> None:
        raise PrologEnd

    def end(self, tag: str | bytes) -> None:
        return None

    def data(self, data: str | bytes) -> None:
        return None

    def comment(self, text: str | bytes) -> None:
        return None

    def close(self) -> None:
        return None


def safe_parser(target: etree.ParserTarget | None = None) -> etree.XMLParser:
    """A parser for untrusted XML: no entities, no DTD, no network, no huge trees."""
    # A fresh parser per call: lxml parsers are not meant to be shared between threads, and the
    # engine parses in worker threads.
    return etree.XMLParser(
        target=target,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        strip_cdata=True,
    )


class _ThreadParsers(threading.local):
    """A guard parser and a safe parser per thread, made once: building a parser with a target
    costs lxml more than parsing a small document, and a parser must not cross threads."""

    def __init__(self) -> None:
        self.guard = safe_parser(PrologGuard())
        self.parser = safe_parser()


_parsers = _ThreadParsers()


def parse_untrusted(data: bytes) -> etree._Element:
    """The root of ``data``, parsed for no DTD, no entity, no network.

    Raises :class:`DoctypeFound` if the document declares a DOCTYPE (seen by the prolog guard
    before its internal subset is read, or on the parsed tree as defence in depth) and
    ``etree.XMLSyntaxError`` if it is not well-formed.
    """
    parsers = _parsers
    with contextlib.suppress(PrologEnd):
        etree.fromstring(data, parsers.guard)
    root = etree.fromstring(data, parsers.parser)
    docinfo: Any = root.getroottree().docinfo  # lxml-stubs do not describe DocInfo fully
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise DoctypeFound
    return root
