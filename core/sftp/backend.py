"""What the SFTP server needs from the rest of docbridge, and nothing more.

The server knows nothing about SQLite or the engine: the engine implements this protocol and
hands it to :class:`core.sftp.server.SftpServer`. Keeping it this small keeps the server
testable with a dictionary.
"""

from __future__ import annotations

from typing import Protocol


class SftpBackend(Protocol):
    async def password_hash(self, login: str) -> str | None:
        """The argon2id hash for this login (a mailbox uuid), or None.

        None when the login is unknown or the mailbox's integration is off (or not SFTP): the
        server then refuses the login exactly as it refuses a wrong password, after spending
        the same time.
        """
        ...

    async def file_arrived(self, mailbox_uuid: str, folder: str, name: str) -> None:
        """A complete file landed in ``outbox/`` or ``coutbox/`` and is durable on disk.

        Called after a clean close of a complete upload, and when a customer renames a file
        into ``outbox/``/``coutbox/`` (typically back from ``error/`` to retry it). The SFTP
        client is waiting for its close/rename to be acknowledged meanwhile, so this should
        record the arrival (e.g. enqueue a job) rather than process the file. An exception is
        logged, not reported to the client: the file is already accepted, and the engine is
        expected to rescan the folders when it starts.
        """
        ...
