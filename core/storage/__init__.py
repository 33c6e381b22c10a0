"""SQLite storage: one connection per process, owned by one thread, migrated by version."""
