"""Names shared by the migration environment and the store."""

VERSION_TABLE = "tracejudge_alembic_version"
