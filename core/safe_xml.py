"""Parsing XML nobody vouches for (envelopes, customer sources): no DTD, no entity, no network.

Run :class:`PrologGuard` first to refuse any DOCTYPE before its internal subset is read, then
parse with :func:`safe_parser`.
"""

from __future__ import annotations

from lxml import etree

__all__ = ["DoctypeFound", "PrologEnd", "PrologGuard", "safe_parser"]


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
