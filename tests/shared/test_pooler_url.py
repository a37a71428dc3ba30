"""`?prepared_statement_cache_size=0`: what a transaction pooler needs, from one URL parameter."""

from __future__ import annotations

from sqlalchemy import text

from portcullis_shared.sql import create_engine, postgres_connect_args

POOLER_URL = "postgresql+asyncpg://portcullis@pgbouncer:6432/auth?prepared_statement_cache_size=0"


def test_the_pooler_parameter_turns_off_asyncpgs_own_statement_cache() -> None:
    assert postgres_connect_args(POOLER_URL)["statement_cache_size"] == 0


def test_the_pooler_parameter_gives_every_prepared_statement_a_name_of_its_own() -> None:
    name_of = postgres_connect_args(POOLER_URL)["prepared_statement_name_func"]
    names = {name_of() for _ in range(1000)}
    assert len(names) == 1000


def test_a_plain_url_keeps_the_caches_and_asyncpgs_names() -> None:
    for url in (
        "postgresql+asyncpg://portcullis@postgres:5432/auth",
        "postgresql+asyncpg://portcullis@postgres:5432/auth?prepared_statement_cache_size=500",
        "postgresql+asyncpg://portcullis@postgres:5432/auth?prepared_statement_cache_size=none",
    ):
        args = postgres_connect_args(url)
        assert "statement_cache_size" not in args
        assert "prepared_statement_name_func" not in args


async def test_statements_prepared_through_a_pooler_url_carry_the_unique_names(
    database_url: str,
) -> None:
    engine = create_engine(f"{database_url}?prepared_statement_cache_size=0", pool_size=1)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            names = (
                await connection.execute(text("SELECT name FROM pg_prepared_statements"))
            ).scalars()
            ours = list(names)
    finally:
        await engine.dispose()
    assert ours
    assert all(name.startswith("__portcullis_") for name in ours), ours
