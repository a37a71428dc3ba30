"""AuthSettings.from_env: a missing or bad value raises SettingsError naming the variable."""

from __future__ import annotations

import secrets

import pytest

from portcullis_auth.settings import AuthSettings
from portcullis_shared.environment import SettingsError

VALID: dict[str, str] = {
    "PORTCULLIS_ISSUER": "https://auth.example.com/",
    "PORTCULLIS_DATABASE_URL": "postgresql+asyncpg://portcullis@db:5432/portcullis",
    "PORTCULLIS_REDIS_URL": "redis://redis:6379/0",
    "PORTCULLIS_SECRET_KEY": secrets.token_hex(32),
}


def environ(**changes: str | None) -> dict[str, str]:
    """VALID with each PORTCULLIS_<NAME> set to the given value, or removed for None."""
    result = dict(VALID)
    for name, value in changes.items():
        key = f"PORTCULLIS_{name.upper()}"
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def test_valid_environment_gives_typed_settings() -> None:
    settings = AuthSettings.from_env(environ(access_token_ttl="600", refresh_grace="60"))

    assert settings.tokens.issuer == "https://auth.example.com"  # trailing slash dropped
    assert settings.database.url == VALID["PORTCULLIS_DATABASE_URL"]
    assert settings.redis.url == VALID["PORTCULLIS_REDIS_URL"]
    assert settings.secret_key == bytes.fromhex(VALID["PORTCULLIS_SECRET_KEY"])
    assert settings.tokens.access_token_ttl == 600
    assert settings.tokens.refresh_grace == 60
    assert settings.tokens.signing_algorithm == "RS256"
    assert settings.server.port == 8000


def test_defaults_follow_the_design() -> None:
    tokens = AuthSettings.from_env(environ()).tokens

    assert tokens.access_token_ttl == 15 * 60
    assert tokens.refresh_grace == 10
    assert tokens.refresh_token_ttl == 30 * 86_400
    assert tokens.refresh_family_ttl == 90 * 86_400
    assert tokens.pat_ttl == 365 * 86_400
    assert tokens.leeway == 30
    assert tokens.jwks_max_age == 300


def test_secret_key_is_not_in_the_repr() -> None:
    settings = AuthSettings.from_env(environ())
    assert VALID["PORTCULLIS_SECRET_KEY"] not in repr(settings)
    assert repr(settings.secret_key) not in repr(settings)


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_supported_signing_algorithms(algorithm: str) -> None:
    settings = AuthSettings.from_env(environ(signing_alg=algorithm))
    assert settings.tokens.signing_algorithm == algorithm


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        pytest.param({"issuer": None}, "PORTCULLIS_ISSUER", id="issuer-missing"),
        pytest.param({"issuer": ""}, "PORTCULLIS_ISSUER", id="issuer-empty"),
        pytest.param({"issuer": "auth.example.com"}, "PORTCULLIS_ISSUER", id="issuer-no-scheme"),
        pytest.param({"database_url": None}, "PORTCULLIS_DATABASE_URL", id="database-missing"),
        pytest.param(
            {"database_url": "postgresql://portcullis@db:5432/portcullis"},
            "PORTCULLIS_DATABASE_URL",
            id="database-not-async",
        ),
        pytest.param(
            {"database_url": "sqlite:///portcullis.db"},
            "PORTCULLIS_DATABASE_URL",
            id="database-sqlite-not-async",
        ),
        pytest.param({"access_token_ttl": "abc"}, "PORTCULLIS_ACCESS_TOKEN_TTL", id="ttl-abc"),
        pytest.param({"access_token_ttl": "1.5"}, "PORTCULLIS_ACCESS_TOKEN_TTL", id="ttl-float"),
        pytest.param({"access_token_ttl": "-1"}, "PORTCULLIS_ACCESS_TOKEN_TTL", id="ttl-negative"),
        pytest.param({"refresh_grace": "61"}, "PORTCULLIS_REFRESH_GRACE", id="grace-61"),
        pytest.param({"refresh_grace": "3600"}, "PORTCULLIS_REFRESH_GRACE", id="grace-3600"),
        pytest.param({"signing_alg": "HS256"}, "PORTCULLIS_SIGNING_ALG", id="alg-hs256"),
        pytest.param({"signing_alg": "none"}, "PORTCULLIS_SIGNING_ALG", id="alg-none"),
        pytest.param({"signing_alg": "rs256"}, "PORTCULLIS_SIGNING_ALG", id="alg-lowercase"),
        pytest.param({"secret_key": None}, "PORTCULLIS_SECRET_KEY", id="secret-missing"),
        pytest.param(
            {"secret_key": secrets.token_hex(31)}, "PORTCULLIS_SECRET_KEY", id="secret-31-bytes"
        ),
        pytest.param({"secret_key": "a" * 64}, "PORTCULLIS_SECRET_KEY", id="secret-not-random"),
        pytest.param({"redis_url": None}, "PORTCULLIS_REDIS_URL", id="redis-missing"),
        pytest.param({"port": "70000"}, "PORTCULLIS_PORT", id="port-out-of-range"),
        pytest.param(
            {"password_hash_threads": "0"}, "PORTCULLIS_PASSWORD_HASH_THREADS", id="threads-0"
        ),
        pytest.param(
            {"database_pool_size": "0"}, "PORTCULLIS_DATABASE_POOL_SIZE", id="pool-size-0"
        ),
    ],
)
def test_bad_value_raises_settings_error_naming_the_variable(
    changes: dict[str, str | None], variable: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        AuthSettings.from_env(environ(**changes))

    assert variable in str(raised.value)


def test_settings_error_does_not_echo_the_secret_key() -> None:
    short = secrets.token_hex(16)
    with pytest.raises(SettingsError) as raised:
        AuthSettings.from_env(environ(secret_key=short))
    assert short not in str(raised.value)


def test_unknown_signing_alg_message_lists_the_choices() -> None:
    with pytest.raises(SettingsError, match="PORTCULLIS_SIGNING_ALG") as raised:
        AuthSettings.from_env(environ(signing_alg="HS256"))
    for algorithm in ("RS256", "ES256", "EdDSA"):
        assert algorithm in str(raised.value)


def test_refresh_grace_of_exactly_60_is_allowed() -> None:
    assert AuthSettings.from_env(environ(refresh_grace="60")).tokens.refresh_grace == 60


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("database_url", "postgresql://portcullis:hunter2-db-password@db:5432/portcullis"),
        ("database_url", "portcullis:hunter2-db-password@db:5432/portcullis"),
        ("redis_url", "http://:hunter2-db-password@redis:6379/0"),
    ],
)
def test_a_rejected_url_is_named_without_its_password(name: str, url: str) -> None:
    with pytest.raises(SettingsError) as raised:
        AuthSettings.from_env(environ(**{name: url}))

    message = str(raised.value)
    assert f"PORTCULLIS_{name.upper()}" in message
    assert "hunter2" not in message
    assert "db:5432" in message or "redis:6379" in message
