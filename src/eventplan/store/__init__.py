"""Storage: the write-ahead log, the background writer and the event store (DuckDB)."""
