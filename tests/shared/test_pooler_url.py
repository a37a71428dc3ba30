"""`?prepared_statement_cache_size=0`: what a transaction pooler needs, from one URL parameter."""

from __future__ import annotations

from sqlalchemy import text

from portcullis_shared.sql import create_engine, postgres_connect_args

POOLER_URL = "postgresql+asyncpg://portcullis@pgbouncer:6432/auth?prepared_statement_cache_size=0"


def test_the_pooler_parameter_turns_off_asyncpgs_own_statement_cache() -> None:
    assert postgres_connect_args(POOLER_URL)["statement_cache_size"] == 0


def test_the_pooler_parameter_prepares_every_statement_unnamed() -> None:
    assert postgres_connect_args(POOLER_URL)["prepared_statement_name_func"]() == ""


def test_a_plain_url_keeps_the_caches_and_asyncpgs_names() -> None:
    for url in (
        "postgresql+asyncpg://portcullis@postgres:5432/auth",
        "postgresql+asyncpg://portcullis@postgres:5432/auth?prepared_statement_cache_size=500",
        "postgresql+asyncpg://portcullis@postgres:5432/auth?prepared_statement_cache_size=none",
    ):
        args = postgres_connect_args(url)
        assert "statement_cache_size" not in args
        assert "prepared_statement_name_func" not in args


async def test_statements_run_through_a_pooler_url_leave_no_prepared_statement_behind(
    database_url: str,
) -> None:
    """Behind a transaction pooler a named statement stays on whichever server
    connection its transaction ran on; an unnamed one is replaced by the next."""
    engine = create_engine(f"{database_url}?prepared_statement_cache_size=0", pool_size=1)
    try:
        for value in range(3):
            async with engine.begin() as connection:
                await connection.execute(text("SELECT CAST(:value AS integer)"), {"value": value})
        async with engine.begin() as connection:
            left = (
                await connection.execute(text("SELECT name FROM pg_prepared_statements"))
            ).scalars()
            names = list(left)
    finally:
        await engine.dispose()
    assert names == []
