"""Alembic environment of the auth service."""

from portcullis_auth.db.models import Base
from portcullis_shared.migrations import run_migrations

run_migrations(Base.metadata)
