"""Metrics across processes: what several workers of one service count, `/metrics` adds up.

Two `portcullis serve auth` processes share one `PROMETHEUS_MULTIPROC_DIR`, as the
workers of `serve --workers N` do (`portcullis_shared.metrics`), and each issues
some of the tokens. Whichever process answers the scrape must report them all:
with a registry of its own, each would report only its share. Then the same through
`serve auth --workers 2`, which prepares the directory itself.
"""

from __future__ import annotations

from pathlib import Path

import requests

from tests.integration.processes import Cli, ServiceProcess, executable, free_port
from tests.metrics import sample

TOKEN_ENDPOINT = {"app_name": "auth", "method": "POST", "path": "/oauth/token"}


def client_credentials_token(base_url: str, client_id: str, secret: str) -> None:
    answer = requests.post(
        f"{base_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def test_two_processes_sharing_a_metrics_directory_report_the_sum_of_their_counts(
    cli: Cli, server_environ: dict[str, str], tmp_path: Path, redis_keys_cleaned: None
) -> None:
    cli.json("install")
    machine = cli.json(
        "client", "create", "machine", "--grant", "client_credentials", "--scope", "read-posts"
    )
    directory = tmp_path / "metrics"
    directory.mkdir(mode=0o700)
    environ = {
        **server_environ,
        "PORTCULLIS_METRICS": "on",
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
    }
    ports = [int(server_environ["PORTCULLIS_PORT"]), free_port()]
    processes = [
        ServiceProcess(
            [executable("portcullis"), "serve", "auth", "--port", str(port)],
            base_url=f"http://127.0.0.1:{port}",
            environ=environ,
            cwd=cli.cwd,
            log_path=tmp_path / f"auth-{port}.log",
        )
        for port in ports
    ]
    try:
        for process in processes:
            process.start()
        first, second = (process.base_url for process in processes)
        client_credentials_token(first, machine["client_id"], machine["client_secret"])
        for _ in range(2):
            client_credentials_token(second, machine["client_id"], machine["client_secret"])

        for process in processes:
            scraped = requests.get(f"{process.base_url}/metrics", timeout=10)
            assert scraped.status_code == 200, scraped.text
            exposition = scraped.text
            issued = sample(
                exposition, "portcullis_tokens_issued_total", grant_type="client_credentials"
            )
            answered = sample(
                exposition, "portcullis_requests_total", status_code="200", **TOKEN_ENDPOINT
            )
            assert (issued, answered) == (3, 3), (process.base_url, exposition)
        # Each process wrote files of its own there (named by process id).
        assert len({path.name.rsplit("_", 1)[-1] for path in directory.glob("counter_*.db")}) >= 2
    finally:
        for process in processes:
            process.stop()


def test_serve_with_two_workers_reports_every_workers_counts(
    cli: Cli, server_environ: dict[str, str], tmp_path: Path, redis_keys_cleaned: None
) -> None:
    cli.json("install")
    machine = cli.json(
        "client", "create", "machine", "--grant", "client_credentials", "--scope", "read-posts"
    )
    environ = {k: v for k, v in server_environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    server = ServiceProcess(
        [executable("portcullis"), "serve", "auth", "--workers", "2"],
        base_url=server_environ["PORTCULLIS_ISSUER"],
        environ={**environ, "PORTCULLIS_METRICS": "on"},
        cwd=cli.cwd,
        log_path=tmp_path / "auth.log",
    )
    issued = 8
    try:
        server.start()
        for _ in range(issued):
            client_credentials_token(
                server.base_url, machine["client_id"], machine["client_secret"]
            )
        # Each scrape is answered by one of the workers, and each must report all of them.
        for _ in range(6):
            scraped = requests.get(f"{server.base_url}/metrics", timeout=10)
            assert scraped.status_code == 200, scraped.text
            counted = sample(
                scraped.text, "portcullis_tokens_issued_total", grant_type="client_credentials"
            )
            assert counted == issued, scraped.text
    finally:
        server.stop()
