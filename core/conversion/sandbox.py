"""Untrusted XML in, nothing out: safe parsing and the static check of a stylesheet.

A conversion map is written by whoever may edit rules, and its source documents come from
partners, so neither may reach a file, the network or the environment of the process. Parsing
never loads a DTD, expands an entity or opens a URL. Before a stylesheet is compiled, every
construct that reads or writes outside it is refused with its line; lxml's access control and
Saxon's ``allowedProtocols`` are a second line behind this check, not the only one.

The check is deliberately wider than needed: a function *named* like a refused one in any
namespace but a user prefix, or such a name inside a string literal, is refused too. A false
refusal costs a rename; a missed one leaks a file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, cast

from lxml import etree

from core.conversion.errors import XsltCompileError, XsltRefused, XsltRuntimeError
from core.conversion.extensions import PROVIDED_FUNCTIONS, WD_FUNCTIONS, WD_NAMESPACE

XSL = "http://www.w3.org/1999/XSL/Transform"
FN = "http://www.w3.org/2005/xpath-functions"

# XSL instructions and declarations that read or write other resources, or evaluate XPath built
# at run time (which no static check can see).
REFUSED_INSTRUCTIONS: dict[str, str] = {
    "include": "it reads another file",
    "import": "it reads another file",
    "import-schema": "it reads another file",
    "use-package": "it reads another package",
    "result-document": "it writes another file",
    "document": "it writes another file",
    "source-document": "it reads another file",
    "evaluate": "it runs an XPath expression built at run time",
}

# Extension elements (EXSLT, libxslt, Saxon, XT) that write or read files.
REFUSED_EXTENSION_NAMESPACES: dict[str, str] = {
    "http://exslt.org/common": "document",
    "http://icl.com/saxon": "",
    "http://saxon.sf.net/": "",
    "http://xmlsoft.org/XSLT/namespace": "",
    "http://www.jclark.com/xt": "",
}

REFUSED_FUNCTIONS: dict[str, str] = {
    "document": "it reads another file",
    "doc": "it reads another file",
    "doc-available": "it probes another file",
    "unparsed-text": "it reads another file",
    "unparsed-text-lines": "it reads another file",
    "unparsed-text-available": "it probes another file",
    "collection": "it reads other files",
    "uri-collection": "it lists other files",
    "json-doc": "it reads another file",
    "environment-variable": "it reads the process environment",
    "available-environment-variables": "it reads the process environment",
    "transform": "it runs another stylesheet",
    "load-xquery-module": "it reads another file",
    "function-lookup": "it can call any function by a name built at run time",
}

# Every function in these namespaces: EXSLT's dyn:evaluate and Saxon's extensions evaluate XPath
# built at run time or reach outside; XT and libxslt extensions likewise.
REFUSED_FUNCTION_NAMESPACES: dict[str, str] = {
    "http://exslt.org/dynamic": "it runs an XPath expression built at run time",
    "http://saxon.sf.net/": "Saxon extensions may reach outside the stylesheet",
    "http://icl.com/saxon": "Saxon extensions may reach outside the stylesheet",
    "http://xmlsoft.org/XSLT/namespace": "libxslt extensions may reach outside the stylesheet",
    "http://www.jclark.com/xt": "XT extensions may reach outside the stylesheet",
}

# A function call ``name(`` or a function reference ``name#1``, with an optional prefix or
# EQName. Kind tests such as ``node()`` match too and are let through by name.
_FUNCTION = re.compile(
    r"(?<![\w.\-:}$])"
    r"(?:Q\{(?P<uri>[^}]*)\}|(?P<prefix>[A-Za-z_][\w.\-]*):)?"
    r"(?P<name>[A-Za-z_][\w.\-]*)\s*(?:\(|#\s*\d)"
)

_HINT = "Conversion maps may not read or write files, the network or the environment; "


def safe_parser() -> etree.XMLParser:
    """A parser that loads no DTD, expands no entity and opens no URL."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
    )


def parse_stylesheet(text: bytes | str) -> etree._ElementTree:
    """Parse a stylesheet as untrusted XML; a DOCTYPE is refused (a stylesheet needs none)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        tree = etree.ElementTree(etree.fromstring(data, safe_parser()))
    except etree.XMLSyntaxError as error:
        line = error.lineno or None
        raise XsltCompileError(
            "The conversion map is not well-formed XML" + (f" (line {line})" if line else ""),
            f"{error.msg}. Correct the XSLT and run it again.",
            line=line,
        ) from error
    docinfo = cast(Any, tree.docinfo)  # lxml-stubs lack DocInfo.doctype
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise XsltRefused(
            "The conversion map has a DOCTYPE",
            _HINT + "remove the DOCTYPE (a DTD can pull in files and entities).",
            line=1,
        )
    return tree


def parse_source(source: bytes) -> etree._ElementTree:
    """Parse a source document as untrusted XML: its DTD is ignored, entities are refused."""
    try:
        root = etree.fromstring(source, safe_parser())
    except etree.XMLSyntaxError as error:
        raise XsltRuntimeError(
            "The source document is not well-formed XML",
            f"{error.msg} (line {error.lineno}).",
        ) from error
    for found in root.iter(etree.Entity):
        entity = cast(Any, found)
        raise XsltRuntimeError(
            "The source document uses an entity reference",
            f"&{entity.name}; on line {entity.sourceline} is not expanded in untrusted XML; "
            "write the character itself.",
        )
    return etree.ElementTree(root)


def check_stylesheet(tree: etree._ElementTree) -> None:
    """Refuse every construct that reaches outside the stylesheet, naming it and its line."""
    declared = _declared_function_namespaces(tree)
    for element in tree.getroot().iter(etree.Element):
        qname = etree.QName(element)
        line = source_line(element)
        if qname.namespace == XSL and qname.localname in REFUSED_INSTRUCTIONS:
            _refuse(f"xsl:{qname.localname}", REFUSED_INSTRUCTIONS[qname.localname], line)
        merge = qname.namespace == XSL and qname.localname == "merge-source"
        if merge and element.get("for-each-source") is not None:
            _refuse("xsl:merge-source/@for-each-source", "it reads other files", line)
        if qname.namespace in REFUSED_EXTENSION_NAMESPACES:
            only = REFUSED_EXTENSION_NAMESPACES[qname.namespace]
            if not only or only == qname.localname:
                _refuse(
                    f"the extension element {{{qname.namespace}}}{qname.localname}",
                    "it can read or write files",
                    line,
                )
        if qname.namespace == XSL:
            for attribute in element.attrib:
                name = str(attribute)
                if name.startswith("_"):
                    _refuse(
                        f"the shadow attribute {name}",
                        "it builds an expression at compile time that no check can see",
                        line,
                    )
        for text, nsmap in _expressions(element, qname.namespace == XSL):
            _check_expression(text, nsmap, line, declared)


def source_line(element: etree._Element) -> int | None:
    line = element.sourceline
    return line if isinstance(line, int) else None


def _expressions(
    element: etree._Element, is_xsl: bool
) -> Iterator[tuple[str, dict[str | None, str]]]:
    """Every string of the element that XSLT may evaluate as XPath."""
    nsmap = dict(element.nsmap)
    for name, value in element.attrib.items():
        text = str(value)
        if is_xsl or etree.QName(name).namespace == XSL or "{" in text:
            yield text, nsmap
    # Text value templates (3.0 expand-text) hold XPath between braces.
    if element.text and "{" in element.text:
        yield element.text, nsmap
    if element.tail and "{" in element.tail:
        parent = element.getparent()
        yield element.tail, dict(parent.nsmap) if parent is not None else nsmap


def _check_expression(
    text: str, nsmap: dict[str | None, str], line: int | None, declared: frozenset[str]
) -> None:
    for match in _FUNCTION.finditer(text):
        uri, prefix, name = match.group("uri"), match.group("prefix"), match.group("name")
        namespace = uri if uri is not None else (FN if prefix is None else nsmap.get(prefix))
        shown = f"{prefix}:{name}()" if prefix else f"{name}()"
        if namespace in REFUSED_FUNCTION_NAMESPACES:
            _refuse(shown, REFUSED_FUNCTION_NAMESPACES[namespace], line)
        if namespace is not None and namespace.startswith("java:"):
            _check_java_function(namespace, name, shown, line)
        elif namespace is not None and not _provided(namespace, declared):
            _unavailable(namespace, shown, line)
        # An undeclared prefix (None) fails to compile anyway; refuse rather than guess.
        if namespace in (FN, None) and name in REFUSED_FUNCTIONS:
            _refuse(shown, REFUSED_FUNCTIONS[name], line)


# Namespaces whose functions the engines provide: XPath's, XSLT's, type constructors, EXSLT.
_PROVIDED_NAMESPACE_PREFIXES = (
    FN,
    XSL,
    "http://www.w3.org/2001/XMLSchema",
    "http://exslt.org/",
)
_FUNCTION_DECLARATIONS = (f"{{{XSL}}}function", "{http://exslt.org/functions}function")


def _declared_function_namespaces(tree: etree._ElementTree) -> frozenset[str]:
    """The namespaces of functions the stylesheet declares itself (xsl:function in 2.0/3.0,
    EXSLT func:function in 1.0)."""
    found: set[str] = set()
    for element in tree.getroot().iter(*_FUNCTION_DECLARATIONS):
        name = (element.get("name") or "").strip()
        if name.startswith("Q{") and "}" in name:
            found.add(name[2 : name.index("}")])
        elif ":" in name:
            namespace = element.nsmap.get(name.split(":", 1)[0])
            if namespace is not None:
                found.add(namespace)
    return frozenset(found)


def _provided(namespace: str, declared: frozenset[str]) -> bool:
    return namespace in declared or namespace.startswith(_PROVIDED_NAMESPACE_PREFIXES)


def _unavailable(namespace: str, shown: str, line: int | None) -> None:
    where = f" (line {line})" if line else ""
    raise XsltCompileError(
        f"The conversion map calls {shown}{where}",
        f"{shown} is an extension function ({namespace}) that is not available here. Declare "
        "it in the stylesheet (xsl:function, or EXSLT func:function in XSLT 1.0) or compute "
        "the value another way.",
        line=line,
    )


def _check_java_function(namespace: str, name: str, shown: str, line: int | None) -> None:
    """Of Java extension functions, only the platform's that docbridge provides
    (:mod:`core.conversion.extensions`) can run; any other is named before compiling."""
    if namespace == WD_NAMESPACE and name in WD_FUNCTIONS:
        return
    where = f" (line {line})" if line else ""
    if namespace == WD_NAMESPACE:
        hint = f"{shown} is not one of the platform's functions that work here; "
    else:
        hint = f"Java extension functions ({namespace}) cannot run here; "
    hint += PROVIDED_FUNCTIONS
    raise XsltCompileError(f"The conversion map calls {shown}{where}", hint, line=line)


def _refuse(construct: str, why: str, line: int | None) -> None:
    where = f" (line {line})" if line else ""
    raise XsltRefused(
        f"The conversion map uses {construct}{where}",
        _HINT + f"{construct} is refused because {why}. Put what it needs into the source "
        "document or the stylesheet itself.",
        line=line,
    )
