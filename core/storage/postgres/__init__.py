"""The PostgreSQL store: the same units of work as SQLite's, for several nodes sharing one
database (docs/scale-out.md). Imported only when ``[store] url`` names PostgreSQL."""
