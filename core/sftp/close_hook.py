"""Telling a finished upload from one cut off, with asyncssh's SFTP server.

asyncssh calls ``SFTPServer.close()`` both for the client's FXP_CLOSE and for its clean-up when a
session ends with files open; only the first may publish an upload. Nothing public tells them
apart, so this module finds asyncssh's FXP_CLOSE handler and looks for it on the call stack, and
the server refuses to start when the handler cannot be found.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import CodeType

import asyncssh
from asyncssh.constants import FXP_CLOSE
from asyncssh.sftp import SFTPServerHandler

from core.errors import EngineUnavailable

# asyncssh versions whose SFTP close handling was read and tested against this module.
TESTED_ASYNCSSH = ">=2.17,<2.25"


class UnsupportedAsyncssh(EngineUnavailable):
    """The installed asyncssh no longer closes files the way :func:`called_for_client_close`
    relies on; the SFTP server does not start."""


def client_close_code() -> CodeType | None:
    """The code of asyncssh's FXP_CLOSE request handler, if it still calls ``close()`` itself.

    Found through the handler's dispatch table by protocol number, not by method name, so a
    rename of the private method changes nothing. None when the table or the entry is gone, or
    when the handler no longer calls ``close`` in its own body.
    """
    handlers = getattr(SFTPServerHandler, "_packet_handlers", None)
    handler = handlers.get(FXP_CLOSE) if isinstance(handlers, Mapping) else None
    code = getattr(handler, "__code__", None)
    if isinstance(code, CodeType) and "close" in code.co_names:
        return code
    return None


def require_close_hook() -> None:
    """Raise :class:`UnsupportedAsyncssh` unless finished uploads can be told from cut-off ones.

    Run when the SFTP server starts. Without the hook, :func:`called_for_client_close` would
    answer False for every close and every upload would be discarded after the client was told
    it succeeded.
    """
    if client_close_code() is None:
        raise UnsupportedAsyncssh(
            f"asyncssh {asyncssh.__version__} closes SFTP files in a way docbridge does not "
            "know: it cannot tell a finished upload from one cut off, so the SFTP server does "
            "not start.",
            f"Install a tested asyncssh (pip install 'asyncssh{TESTED_ASYNCSSH}') and start again.",
        )


def called_for_client_close() -> bool:
    """True when asyncssh is closing a handle because the client sent FXP_CLOSE.

    asyncssh calls ``SFTPServer.close()`` from exactly two places in ``SFTPServerHandler``: its
    FXP_CLOSE request handler (the client's close, after all its earlier writes were processed:
    requests are handled one at a time, in order) and its clean-up when the session ends with
    the handle still open (connection dropped, channel closed, input ended, bad packet). Nothing
    in the public API tells them apart, and the channel's state does not either (when only the
    client's input ended, the channel is still open). So look at the call stack: a client's
    close runs inside the FXP_CLOSE handler, a clean-up close never does. The check fails
    safe: if the handler cannot be found, every upload is discarded, never accepted half done;
    :func:`require_close_hook` keeps the server from starting in that case.
    """
    code = client_close_code()
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False
