"""What `PORTCULLIS_LOG_FORMAT` and the OTEL_* variables turn on, and the `otel` extra optional."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from portcullis_shared.environment import EnvReader, SettingsError
from portcullis_shared.observability import ObservabilitySettings


def settings_of(environ: dict[str, str]) -> ObservabilitySettings:
    return ObservabilitySettings.from_env(EnvReader(environ))


def test_text_logs_and_no_tracing_by_default() -> None:
    assert settings_of({}) == ObservabilitySettings(log_format="text", tracing=False)


def test_json_logs_when_asked_and_a_typo_stops_startup() -> None:
    assert settings_of({"PORTCULLIS_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(SettingsError, match="PORTCULLIS_LOG_FORMAT must be one of text, json"):
        settings_of({"PORTCULLIS_LOG_FORMAT": "JSONL"})


@pytest.mark.parametrize(
    ("environ", "tracing"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"},
            False,
        ),
    ],
)
def test_tracing_is_on_when_an_otlp_endpoint_is_set(environ: dict[str, str], tracing: bool) -> None:
    assert settings_of(environ).tracing is tracing


# Run in a process of its own, where OpenTelemetry cannot be imported.
WITHOUT_OPENTELEMETRY = textwrap.dedent(
    """
    import json, sys
    sys.modules["opentelemetry"] = None  # as if portcullis-shared[otel] were not installed

    from litestar.testing import TestClient

    from portcullis_resource.http.app import create_app
    from portcullis_resource.settings import ResourceSettings
    from portcullis_shared.environment import EnvReader, SettingsError
    from portcullis_shared.observability import ObservabilitySettings
    from portcullis_shared.plugin import GuardConfig
    from portcullis_shared.testing import TestTokens

    tokens = TestTokens(audience="posts")
    settings = ResourceSettings(
        guard=GuardConfig(issuer=tokens.issuer, audience="posts"),
        database_url=sys.argv[1],
        observability=ObservabilitySettings.from_env(EnvReader({})),
    )
    with TestClient(create_app(settings, guard=tokens.guard())) as http:
        answer = http.get("/healthz", headers={"X-Request-ID": "no-otel"})
    try:
        ObservabilitySettings.from_env(EnvReader({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}))
        refusal = None
    except SettingsError as exc:
        refusal = str(exc)
    print(json.dumps({
        "status": answer.status_code,
        "request_id": answer.headers.get("X-Request-ID"),
        "refusal": refusal,
        "loaded": sorted(
            name for name, module in sys.modules.items()
            if module is not None and (name.startswith("opentelemetry") or "tracing" in name)
        ),
    }))
    """
)


def test_without_the_otel_extra_a_service_runs_and_tracing_says_what_to_install(
    tmp_path: Path,
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'posts.db'}"
    completed = subprocess.run(
        [sys.executable, "-c", WITHOUT_OPENTELEMETRY, database_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.splitlines()[-1])
    assert result["status"] == 200
    assert result["request_id"] == "no-otel"
    assert result["loaded"] == []
    assert "portcullis-shared[otel]" in result["refusal"]
