"""One result buffer, written in place: how a large payload is held about twice, not more.

Encryption, decryption and decompression write straight into the buffer that becomes their
result (:class:`Filler`), and a payload found inside it is moved to its front rather than
sliced out, so no stage makes a second copy of a large payload.
"""

from __future__ import annotations

import io
from typing import Any

CHUNK = 1 << 20


class Filler:
    """Writes a bytes object in place: io.BytesIO hands its own buffer over to ``getvalue()``
    without a copy, so a large result is held once, not twice. With a size the buffer is made
    that large up front (``write``, ``encrypt``); without, it grows (``append``)."""

    def __init__(self, size: int = 0) -> None:
        self._io = io.BytesIO()
        self._size = size
        self._view: memoryview | None = None
        if size:
            self._io.seek(size - 1)
            self._io.write(b"\0")
            self._view = self._io.getbuffer()
        self.position = 0

    def append(self, data: bytes) -> None:
        self._io.write(data)
        self.position += len(data)

    def write(self, data: bytes | memoryview) -> None:
        assert self._view is not None
        self._view[self.position : self.position + len(data)] = data
        self.position += len(data)

    def encrypt(self, context: Any, data: memoryview) -> None:
        assert self._view is not None
        room = self._size - self.position
        if room >= len(data) + 31:
            self.position += context.update_into(data, self._view[self.position :])
        else:
            self.write(context.update(data))

    def cut(self, start: int, end: int) -> bytes:
        """The result's bytes [start, end) as the result, moved within the buffer."""
        view = self._io.getbuffer()
        view[0 : end - start] = view[start:end]
        view.release()
        self._io.truncate(end - start)
        return self._io.getvalue()

    def result(self, length: int | None = None) -> bytes:
        if self._view is not None:
            self._view.release()
            self._view = None
        self._io.truncate(self.position if length is None else length)
        return self._io.getvalue()
