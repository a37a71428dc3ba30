"""Running a service's Alembic migrations from code (needs the `sql` extra).

Each service keeps its own `migrations/` folder; its `env.py` calls
`run_migrations(metadata)` and its code calls `upgrade(url, folder)`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from portcullis_shared.sql import create_engine


def alembic_config(url: str, script_location: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, script_location: Path, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (blocking; runs its own event loop)."""
    command.upgrade(alembic_config(url, script_location), revision)


async def upgrade_async(url: str, script_location: Path, revision: str = "head") -> None:
    """`upgrade` from inside a running event loop."""
    await asyncio.to_thread(upgrade, url, script_location, revision)


def run_migrations(metadata: MetaData) -> None:
    """The body of a service's `env.py`: migrate the configured URL, online."""
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("migrations need a database URL")

    def run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(run)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(run_async())
