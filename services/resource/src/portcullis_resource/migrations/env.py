"""Alembic environment of the resource service."""

from portcullis_resource.db.models import Base
from portcullis_shared.migrations import run_migrations

run_migrations(Base.metadata)
