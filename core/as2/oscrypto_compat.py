"""Make oscrypto 1.3.0 (pinned by pyas2lib) work with OpenSSL >= 3.0.10.

Two defects of oscrypto 1.3.0 break AS2 on current systems (Debian 12 ships OpenSSL 3.0.x with a
two-digit patch number):

* ``oscrypto._openssl._libcrypto_cffi`` / ``_libcrypto_ctypes`` find the library version with the
  regex ``\\b(\\d\\.\\d\\.\\d[a-z]*)\\b``, which does not match "3.0.19", so importing pyas2lib
  raises ``LibraryNotFoundError``;
* oscrypto never loads OpenSSL 3's "legacy" provider, so RC2-encrypted PKCS#12 files (what many
  AS2 products export) cannot be opened.

:func:`install` puts a tiny finder at the front of ``sys.meta_path`` that reacts to those two module
names only: it compiles the module from its source with the regex widened to multi-digit
components, and once the module has run it loads the "legacy" and "default" providers into the same
libcrypto. A module whose source no longer contains the old regex (a fixed oscrypto) runs
unchanged, and the provider loading is skipped quietly on OpenSSL < 3.

The hook must be active before anything imports oscrypto, so the wheel ships a ``.pth`` file that
calls :func:`install` at interpreter start-up; ``core.as2`` calls it too (for ``python -S``). This
module therefore runs in every Python process of the environment: it imports nothing beyond
``sys`` at module level, and ``ctypes`` only once oscrypto itself is being imported.
"""

from __future__ import annotations

import sys

# Not `from typing import TYPE_CHECKING`: typing (with re, enum, collections) would add ~15 ms to
# the start-up of every Python process in the environment. mypy honours this spelling too.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import CodeType, ModuleType
    from typing import Any

__all__ = ["PATCHED_MODULES", "install"]

PATCHED_MODULES = frozenset(
    {"oscrypto._openssl._libcrypto_cffi", "oscrypto._openssl._libcrypto_ctypes"}
)

# The regex literal exactly as written in oscrypto 1.3.0's source, and its widened form.
_OLD_VERSION_RE = r"'\\b(\\d\\.\\d\\.\\d[a-z]*)\\b'"
_NEW_VERSION_RE = r"'\\b(\\d+\\.\\d+\\.\\d+[a-z]*)\\b'"

# Marks our finder on sys.meta_path and the oscrypto module whose providers we loaded, so that
# install() stays idempotent even if this file were loaded twice under different names.
_MARKER = "_docbridge_oscrypto_compat"


def install() -> None:
    """Activate the fix for this process; calling it again does nothing.

    If oscrypto's libcrypto module was already imported (it parsed its version fine, e.g. on
    OpenSSL 3.0.9), only the provider loading is applied to it.
    """
    if not any(getattr(finder, _MARKER, False) for finder in sys.meta_path):
        sys.meta_path.insert(0, _OscryptoFinder())
    for name in PATCHED_MODULES:
        module = sys.modules.get(name)
        if module is not None:
            _load_legacy_provider(module)


class _OscryptoFinder:
    """Meta-path finder that hands the two libcrypto modules to :class:`_PatchingLoader`."""

    _docbridge_oscrypto_compat = True

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname not in PATCHED_MODULES:
            return None
        for finder in sys.meta_path:
            if finder is self or getattr(finder, _MARKER, False):
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec: ModuleSpec | None = find_spec(fullname, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "get_source"):
                spec.loader = _PatchingLoader(spec.loader)  # type: ignore[assignment]
            return spec
        return None

    def invalidate_caches(self) -> None:
        """Nothing cached here; present because importlib calls it on every finder."""


class _PatchingLoader:
    """Wraps the normal source loader; runs the patched source, then loads the providers."""

    def __init__(self, wrapped: Any) -> None:
        self._wrapped = wrapped

    def __getattr__(self, name: str) -> Any:
        # get_filename, get_resource_reader, ... behave as the original loader's.
        if name == "_wrapped":  # not set yet (copy, pickle): no endless recursion
            raise AttributeError(name)
        return getattr(self._wrapped, name)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._wrapped.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        code = self._patched_code(module.__name__)
        if code is None:
            self._wrapped.exec_module(module)
        else:
            exec(code, module.__dict__)  # as SourceLoader.exec_module does
        _load_legacy_provider(module)

    def _patched_code(self, fullname: str) -> CodeType | None:
        """Code of the module with the version regex widened, or None if there is nothing to fix.

        The replacement keeps every line in place, so tracebacks still point at the real file.
        The patched code is not written to ``__pycache__``: these modules are small.
        """
        source: str | None = self._wrapped.get_source(fullname)
        if source is None or _OLD_VERSION_RE not in source:
            return None
        origin: str = self._wrapped.get_filename(fullname)
        patched = source.replace(_OLD_VERSION_RE, _NEW_VERSION_RE)
        return compile(patched, origin, "exec", dont_inherit=True)


def _load_legacy_provider(module: ModuleType) -> None:
    """Load OpenSSL 3's "legacy" and "default" providers into oscrypto's libcrypto.

    Explicitly loading "legacy" stops OpenSSL from activating "default" on its own, hence both.
    Any failure (OpenSSL < 3 has no ``OSSL_PROVIDER_load``; a system without the legacy module)
    is ignored: oscrypto then behaves as it would without this fix, and the error queue is
    cleared so that oscrypto does not report our failure as its own later on.
    """
    if getattr(module, _MARKER, False):
        return
    setattr(module, _MARKER, True)
    if getattr(module, "is_libressl", False):
        return
    libcrypto_path = getattr(module, "libcrypto_path", None)
    if not libcrypto_path:
        return

    import ctypes

    try:
        # dlopen() of the same path returns the library oscrypto already holds, so the
        # providers land in the default library context that oscrypto uses.
        libcrypto = ctypes.CDLL(libcrypto_path)
        provider_load = libcrypto.OSSL_PROVIDER_load
        clear_errors = libcrypto.ERR_clear_error
    except (OSError, AttributeError):
        return
    provider_load.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    provider_load.restype = ctypes.c_void_p
    clear_errors.argtypes = []
    clear_errors.restype = None
    for name in (b"legacy", b"default"):
        if not provider_load(None, name):
            clear_errors()
