"""Compile and run one conversion map (XSLT) in this process.

XSLT 1.0 runs on lxml (libxslt), 2.0 and 3.0 on saxonche (SaxonC-HE), chosen by the stylesheet's
``version`` attribute. The output is the bytes ``xsl:output`` asks for (method, encoding,
declaration), so a text map declaring ISO-8859-5 yields ISO-8859-5 bytes.

This module has no time limit and no process isolation: call it through
:class:`core.conversion.pool.TransformPool`, which runs it in worker processes that can be
killed. The worker sets the output cap for Saxon as a file-size limit (``RLIMIT_FSIZE``).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, cast

from lxml import etree

from core.conversion.errors import (
    XsltCompileError,
    XsltError,
    XsltOutputTooLarge,
    XsltRuntimeError,
)
from core.conversion.extensions import (
    LOOKUPS_PARAMETER,
    MAX_LOOKUP_ROUNDS,
    add_saxon_functions,
    answer_key,
    answers_document,
    calls_wd_functions,
    is_lookup_message,
    lookup_questions,
    lxml_extensions,
)
from core.conversion.sandbox import (
    XSL,
    check_stylesheet,
    parse_source,
    parse_stylesheet,
    source_line,
)

PARAMETER_NAMES = ("SENDER_MAILBOX", "TEMPLATE_UUID", "TEMPLATE_VERSION")

MEDIA_TYPES = {
    "xml": "application/xml",
    "html": "text/html",
    "xhtml": "application/xhtml+xml",
    "text": "text/plain",
    "json": "application/json",
    "adaptive": "text/plain",
}


@dataclass(frozen=True)
class XsltOutput:
    """The serialized result of a transform, as ``xsl:output`` describes it."""

    content: bytes
    method: str
    media_type: str
    encoding: str


@dataclass(frozen=True)
class OutputSpec:
    """The unnamed ``xsl:output`` of a stylesheet (method ``None``: decided by the result)."""

    method: str | None
    encoding: str
    media_type: str | None


@dataclass
class CompiledStylesheet:
    """A stylesheet ready to run; ``key`` is the hash of its text (one rule revision)."""

    key: str
    version: Decimal
    output: OutputSpec
    engine: Any  # etree.XSLT (1.0) or saxonche.PyXsltExecutable (2.0, 3.0)
    looks_up: bool = False  # Saxon: calls the platform's look-up functions (extensions.py)


def stylesheet_key(text: bytes | str) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def compile_stylesheet(text: bytes | str) -> CompiledStylesheet:
    """Check and compile a stylesheet; refused constructs and XSLT errors name their line."""
    tree = parse_stylesheet(text)
    check_stylesheet(tree)
    version = _version(tree.getroot())
    output = _output_spec(tree.getroot())
    key = stylesheet_key(text)
    if version < 2:
        return CompiledStylesheet(key, version, output, _compile_lxml(tree))
    looks_up = calls_wd_functions(tree)
    if looks_up:
        add_saxon_functions(tree)
    if isinstance(text, str) and not looks_up:
        source = text
    else:
        source = etree.tostring(tree, encoding="unicode")
    return CompiledStylesheet(key, version, output, _compile_saxon(source), looks_up)


def transform(
    compiled: CompiledStylesheet,
    source: bytes,
    parameters: Mapping[str, str],
    *,
    max_output: int,
) -> XsltOutput:
    """Run a compiled stylesheet on a source document; every parameter is passed as a string
    (on Saxon as ``xs:untypedAtomic``, so a parameter declared ``as="xs:integer"`` accepts it).
    """
    if compiled.version < 2:
        content, root_is_html = _transform_lxml(compiled.engine, parse_source(source), parameters)
    else:
        content = _transform_saxon(compiled, _saxon_source(source), parameters, max_output)
        root_is_html = bool(re.match(rb"\s*(<\?xml[^>]*>\s*)?<html[\s>]", content, re.I))
    if len(content) > max_output:
        raise _too_large(max_output)
    spec = compiled.output
    method = spec.method or ("html" if root_is_html else "xml")
    media_type = spec.media_type or MEDIA_TYPES.get(method, "application/octet-stream")
    return XsltOutput(content, method, media_type, spec.encoding)


def _too_large(max_output: int) -> XsltOutputTooLarge:
    return XsltOutputTooLarge(
        f"The conversion map produced more than {max_output:,} bytes",
        "Its output is capped; check the map for a loop that repeats output, or raise the cap.",
    )


def _version(root: etree._Element) -> Decimal:
    qname = etree.QName(root)
    if qname.namespace == XSL and qname.localname in ("stylesheet", "transform", "package"):
        raw = root.get("version")
    else:  # a literal result element used as the stylesheet
        raw = root.get(f"{{{XSL}}}version")
    if raw is None:
        raise XsltCompileError(
            "The conversion map has no XSLT version",
            'Its root must be xsl:stylesheet with version="1.0", "2.0" or "3.0".',
            line=source_line(root),
        )
    try:
        return Decimal(raw.strip())
    except InvalidOperation:
        raise XsltCompileError(
            f"The conversion map's version {raw!r} is not a number",
            'Use version="1.0", "2.0" or "3.0".',
            line=source_line(root),
        ) from None


def _output_spec(root: etree._Element) -> OutputSpec:
    method: str | None = None
    encoding = "UTF-8"
    media_type: str | None = None
    for output in root.iterchildren(f"{{{XSL}}}output"):
        if output.get("name"):
            continue
        method = output.get("method", method)
        encoding = output.get("encoding", encoding)
        media_type = output.get("media-type", media_type)
    if method is not None and ":" in method:
        method = method.split(":", 1)[1]
    return OutputSpec(method, encoding, media_type)


# --- XSLT 1.0: lxml ---------------------------------------------------------------------------


def _compile_lxml(tree: etree._ElementTree) -> etree.XSLT:
    try:
        return etree.XSLT(
            tree,
            access_control=cast(Any, etree.XSLTAccessControl).DENY_ALL,
            extensions=cast(Any, lxml_extensions()),
        )
    except etree.XSLTParseError as error:
        title, hint, line = _lxml_message("does not compile", error)
        raise XsltCompileError(title, hint, line=line) from error


def _transform_lxml(
    engine: etree.XSLT, document: etree._ElementTree, parameters: Mapping[str, str]
) -> tuple[bytes, bool]:
    params = {name: etree.XSLT.strparam(value) for name, value in parameters.items()}
    try:
        result = cast(Any, engine)(document, **params)
    except etree.XSLTApplyError as error:
        title, hint, line = _lxml_message("stopped", error)
        raise XsltRuntimeError(title, hint, line=line) from error
    root = result.getroot()
    root_is_html = root is not None and root.tag.lower() == "html"
    return bytes(result), root_is_html


def _lxml_message(what: str, error: etree.Error) -> tuple[str, str, int | None]:
    entries = list(error.error_log) if hasattr(error, "error_log") else []
    line = next((entry.line for entry in entries if entry.line > 0), None)
    messages = [entry.message for entry in entries if entry.message] or [str(error)]
    where = f" (line {line})" if line else ""
    return (
        f"The conversion map {what}{where}",
        "; ".join(dict.fromkeys(messages)) + ". Correct the XSLT and run it again.",
        line,
    )


# --- XSLT 2.0 / 3.0: saxonche -----------------------------------------------------------------

_processor: Any = None
_PARSER_FEATURES = {
    "http%3A//apache.org/xml/features/disallow-doctype-decl": "true",
    "http%3A//xml.org/sax/features/external-general-entities": "false",
    "http%3A//xml.org/sax/features/external-parameter-entities": "false",
    "http%3A//apache.org/xml/features/nonvalidating/load-external-dtd": "false",
}
_LINE = re.compile(r"\bline (\d+)")
_BASE_URI = re.compile(r" (?:of|in) file:[^\s:)]*")


def _saxon() -> Any:
    """One Saxon processor per process; ``allowedProtocols`` stops http(s) and other schemes,
    and its XML parser refuses any DOCTYPE (``parse-xml()`` gets untrusted strings too).

    ``file`` must stay allowed: Saxon writes the serialized result to a file (its string API
    decodes as UTF-8 only, and the bytes must keep the declared encoding). Reading files is
    refused by :func:`core.conversion.sandbox.check_stylesheet` before compiling.
    """
    global _processor
    if _processor is None:
        from saxonche import PySaxonProcessor  # type: ignore[import-not-found,unused-ignore]

        processor = PySaxonProcessor(license=False)
        processor.set_configuration_property("http://saxon.sf.net/feature/allowedProtocols", "file")
        # parse-xml() on a string with a DOCTYPE would read files through external entities.
        for feature, value in _PARSER_FEATURES.items():
            processor.set_configuration_property(
                f"http://saxon.sf.net/feature/parserFeature?uri={feature}", value
            )
        _processor = processor
    return _processor


def _compile_saxon(text: str) -> Any:
    from saxonche import PySaxonApiError

    compiler = _saxon().new_xslt30_processor()
    try:
        executable = compiler.compile_stylesheet(stylesheet_text=text)
    except PySaxonApiError as error:
        raise _saxon_error(XsltCompileError, "does not compile", str(error)) from error
    if executable is None:
        raise _saxon_error(XsltCompileError, "does not compile", "")
    executable.set_save_xsl_message(True)
    return executable


def _saxon_source(source: bytes) -> list[str]:
    """The source checked as untrusted XML (as for lxml) and serialized for Saxon, in a list
    the caller empties: neither the lxml tree nor the text outlives its use. The tree's memory
    goes back to the system before Saxon parses: Saxon's heap is not malloc's and cannot reuse
    it (20 MB CSV's view: peak 1.7 GB before, 1.15 GB after, measured)."""
    text = etree.tostring(parse_source(source).getroot(), encoding="unicode")
    if len(source) >= LARGE_SOURCE_BYTES:
        release_freed_memory()
    return [text]


LARGE_SOURCE_BYTES = 1024 * 1024
_malloc_trim: Any = None


def release_freed_memory() -> None:
    """Give the memory freed in this process back to the system (glibc keeps a large freed
    heap, such as a big source's tree, for itself otherwise); nothing where unavailable."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


def _transform_saxon(
    compiled: CompiledStylesheet,
    source: list[str],
    parameters: Mapping[str, str],
    max_output: int,
) -> bytes:
    """Run once; a map that looks up values runs again with the answers to what it asked
    (see :mod:`core.conversion.extensions`) until it asks nothing new."""
    processor = _saxon()
    executable = compiled.engine
    executable.clear_parameters()
    for name, value in parameters.items():
        # Untyped, as Saxon's JAXP passes a Java string: a parameter declared as="xs:integer"
        # (TEMPLATE_VERSION) accepts it, one declared as="xs:string" too.
        executable.set_parameter(name, processor.make_atomic_value("untypedAtomic", value))
    node = processor.parse_xml(xml_text=source.pop())
    answers: dict[str, str] = {}
    for _ in range(MAX_LOOKUP_ROUNDS):
        content, error = _run_saxon(executable, node, max_output)
        questions = [key for key in lookup_questions(_messages(executable)) if key not in answers]
        if not compiled.looks_up or not questions:
            if error is not None:
                raise error
            return content
        for key in questions:
            answers[key] = answer_key(key)
        document_node = processor.parse_xml(xml_text=answers_document(answers))
        executable.set_parameter(LOOKUPS_PARAMETER, document_node)
    raise XsltRuntimeError(
        f"The conversion map kept looking up new values after {MAX_LOOKUP_ROUNDS} runs",
        "Each look-up that depends on the result of another costs a run; look up fewer values "
        "that depend on each other.",
    )


def _run_saxon(executable: Any, node: Any, max_output: int) -> tuple[bytes, XsltError | None]:
    from saxonche import PySaxonApiError

    executable.clear_xsl_messages()
    clear_error_stream()  # the report read back for a line is this run's
    with _result_file() as (target, size):
        try:
            executable.transform_to_file(xdm_node=node, output_file=target)
        except PySaxonApiError as error:
            if size() >= max_output:
                raise _too_large(max_output) from error
            message = str(error).strip()
            terminated = "; ".join(m for m in _messages(executable) if not is_lookup_message(m))
            if terminated:
                message = f"{terminated} ({message})"
            return b"", _saxon_error(XsltRuntimeError, "stopped", message)
        return _read_result(target, size()), None


_results = threading.local()  # .file: (pid, memfd) of this thread


@contextlib.contextmanager
def _result_file() -> Iterator[tuple[str, Callable[[], int]]]:
    """Where Saxon writes a result: a path, and how to ask the size written there.

    One anonymous in-memory file per thread (Linux ``memfd``), emptied after each run: a
    file and a folder made and removed per run cost more than a small transform itself
    (about 2 ms of 3 on ext4, measured), and the memory is freed with the process even
    when it is killed. Elsewhere, a temporary folder per run.
    """
    if not hasattr(os, "memfd_create"):
        with tempfile.TemporaryDirectory(prefix="docbridge-xslt-") as folder:
            target = Path(folder) / "result"
            yield str(target), lambda: target.stat().st_size if target.exists() else 0
        return
    kept: tuple[int, int] | None = getattr(_results, "file", None)
    if kept is None or kept[0] != os.getpid():
        kept = (os.getpid(), os.memfd_create("docbridge-xslt-result", os.MFD_CLOEXEC))
        _results.file = kept
    fd = kept[1]
    try:
        yield f"/proc/self/fd/{fd}", lambda: os.fstat(fd).st_size
    finally:
        os.ftruncate(fd, 0)


def _read_result(target: str, size: int) -> bytes:
    with open(target, "rb") as handle:
        return handle.read(size)


def _messages(executable: Any) -> list[str]:
    messages = executable.get_xsl_messages()
    if messages is None:
        return []
    return [str(item.string_value).strip() for item in messages]


def _saxon_error(kind: type[XsltError], what: str, message: str) -> XsltError:
    """Saxon's exception text often lacks the line; its stderr report (captured by the pool's
    worker, see :func:`set_error_stream`) has it."""
    report = _read_error_stream()
    match = _LINE.search(message) or _LINE.search(report)
    line = int(match.group(1)) if match else None
    text = " ".join((message or report).split()) or "Saxon gave no message"
    text = _BASE_URI.sub("", text)  # the worker's folder, which says nothing to a user
    where = f" (line {line})" if line else ""
    return kind(
        f"The conversion map {what}{where}",
        f"{text}. Correct the XSLT and run it again.",
        line=line,
    )


_error_stream: int | None = None


def set_error_stream(fd: int | None) -> None:
    """Name the file descriptor that stderr was redirected to (a regular file), so Saxon's
    error reports can be read back for their line numbers; the pool's worker sets it."""
    global _error_stream
    _error_stream = fd


def clear_error_stream() -> None:
    if _error_stream is not None:
        os.ftruncate(_error_stream, 0)
        os.lseek(_error_stream, 0, os.SEEK_SET)


def _read_error_stream() -> str:
    if _error_stream is None:
        return ""
    size = os.lseek(_error_stream, 0, os.SEEK_END)
    data = os.pread(_error_stream, min(size, 65536), 0)
    return data.decode("utf-8", "replace")
