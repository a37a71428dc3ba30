"""The resource service's migrations, run from code (the CLI and the tests use this)."""

from __future__ import annotations

from pathlib import Path

from portcullis_shared import migrations

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def upgrade(url: str, revision: str = "head") -> None:
    migrations.upgrade(url, MIGRATIONS, revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    await migrations.upgrade_async(url, MIGRATIONS, revision)
