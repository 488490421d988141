"""The embedded store: SQLite through aiosqlite, its schema and migrations, and repositories."""
