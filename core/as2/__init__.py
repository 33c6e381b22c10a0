"""AS2 (RFC 4130) on top of pyas2lib.

Importing this package activates :mod:`core.as2.oscrypto_compat` so that pyas2lib works on
OpenSSL >= 3.0.10 even when site-packages' ``.pth`` start-up hook did not run (``python -S``).
The ``.pth`` hook imports this package in every Python process of the environment: keep this file
free of heavy imports.
"""

from __future__ import annotations

from core.as2 import oscrypto_compat

oscrypto_compat.install()
