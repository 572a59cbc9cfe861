"""The revisions, one per schema version (Alembic skips this file)."""
