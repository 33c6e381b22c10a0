"""Embedded SFTP server: each mailbox's five folders, confined, throttled and written atomically.

``server`` (listener, logins, sessions), ``session`` (what one client may do), ``folders`` (the
layout on disk and atomic writes the platform uses too), ``throttle`` (bans per address),
``auth`` (argon2 checks off the event loop), ``quota`` (usage accounting), ``host_key``,
``backend`` (the protocol the engine implements).
"""
