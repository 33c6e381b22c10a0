"""Conversion maps: XSLT run on untrusted stylesheets, in worker processes (SPEC §7)."""

from __future__ import annotations

from core.conversion.errors import (
    XsltCompileError,
    XsltError,
    XsltOutputTooLarge,
    XsltRefused,
    XsltRuntimeError,
    XsltTimeLimit,
)
from core.conversion.pool import TransformPool
from core.conversion.xslt import (
    PARAMETER_NAMES,
    CompiledStylesheet,
    XsltOutput,
    compile_stylesheet,
    transform,
)

__all__ = [
    "PARAMETER_NAMES",
    "CompiledStylesheet",
    "TransformPool",
    "XsltCompileError",
    "XsltError",
    "XsltOutput",
    "XsltOutputTooLarge",
    "XsltRefused",
    "XsltRuntimeError",
    "XsltTimeLimit",
    "compile_stylesheet",
    "transform",
]
