"""Alembic migrations of the trace store, applied automatically when a store is opened."""
