"""The report: one table of the median runs and their ratios, printed, and the same as
JSON in bench/results/latest.json with every run's figures and the settings."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from bench.figures import Figure, Pair, Results
from bench.settings import CONNECTIONS, DURATION, POOL_SIZE, ROOT, RUNS


def report(results: Results) -> dict[str, object]:
    def rps(name: str) -> float:
        return float(_figure(results, name).rps)

    rows: list[tuple[str, str, str]] = []
    base_posts = _figure(results, "posts_baseline")

    def latency(label: str, figure: Figure) -> tuple[str, str, str]:
        return (
            f"  latency p50 / p99, {label}",
            f"{figure.p50_ms:.2f} / {figure.p99_ms:.2f} ms",
            "",
        )

    def pair(name: str, label: str, target: str, digits: int) -> tuple[str, str, str]:
        figure = _pair(results, name)
        measured = f"{figure.load.rps:.{digits}f} / {figure.baseline.rps:.{digits}f} per s"
        if figure.load.cpu_share is not None and figure.baseline.cpu_share is not None:
            measured += f" (cores {figure.load.cpu_share:.2f} / {figure.baseline.cpu_share:.2f})"
        return (label, measured, f"{figure.ratio:.2f}" + (f" (target {target})" if target else ""))

    for name, label, target, latency_label in (
        ("posts_authenticated", "posts GET /api/posts/{id}, token / no token", ">= 0.90", "token"),
        ("posts_new_tokens", "posts, a new token each request / no token", "", "new tokens"),
    ):
        posts = _figure(results, name)
        rows.append(pair(f"{name}_side_by_side", label, target, 0))
        rows.append(
            (
                "  in turns, each alone",
                f"{posts.rps:.0f} / {base_posts.rps:.0f} per s",
                f"{posts.rps / base_posts.rps:.2f}",
            )
        )
        rows.append(latency(latency_label, posts))
    rows.append(latency("no token", base_posts))

    granian = _pair(results, "server_uvicorn").baseline
    for name, label in (
        ("server_uvicorn", "server: stock uvicorn / Granian (posts /api/me)"),
        ("server_uvicorn_one_write", "server: uvicorn, old transport / Granian"),
    ):
        rows.append(pair(name, label, "", 0))
    rows.append(
        (
            "  requests per server CPU-second: Granian / uvicorn / old transport",
            " / ".join(
                f"{per_cpu_second(figure):.0f}"
                for figure in (
                    granian,
                    _pair(results, "server_uvicorn").load,
                    _pair(results, "server_uvicorn_one_write").load,
                )
            ),
            "",
        )
    )
    for workers in (1, 2):
        alone = _figure(results, f"workers_{workers}")
        rows.append(
            (
                f"posts with {workers} worker{'s' if workers > 1 else ''}, alone on one core",
                f"{alone.rps:.0f} per s, {per_cpu_second(alone):.0f} per CPU-second",
                "",
            )
        )

    sign = rps("raw_signing_RS256")
    rows.append(pair("client_credentials", "client credentials / raw RS256 signing", ">= 0.50", 0))
    rows.append(pair("refresh_rotation", "refresh rotations / raw RS256 signing", ">= 0.40", 0))
    rows.append(
        (
            "  raw RS256: the service's signer / jwt.encode",
            f"{sign:.0f} / {rps('raw_signing_RS256_jwt_encode'):.0f} per s",
            "",
        )
    )
    rows.append(pair("password_grant", "password grant / raw argon2 verify", ">= 0.90", 1))
    alone = _figure(results, "client_credentials_alone")
    flooded = _figure(results, "client_credentials_during_password_flood")
    rows.append(
        (
            "client credentials p99: during a password flood / alone",
            f"{flooded.p99_ms:.2f} / {alone.p99_ms:.2f} ms",
            f"{results['password_flood_p99_ratio']:.2f}",
        )
    )
    rows.append(latency("client credentials alone", alone))
    rows.append(latency("client credentials during the flood", flooded))
    flood = _per_server(results, "password_flood")
    rows.append(
        (
            "  the flood: 64 logins at once from many addresses",
            f"{flood['requests_per_s']:.0f} per s, {flood['refused_share']:.2%} refused at once, "
            f"{flood['logins_served']:.0f} served",
            "",
        )
    )
    rows.append(
        (
            "  auth RSS before / at most during the flood",
            f"{flood['auth_rss_before_mib']} / {flood['auth_rss_during_mib_max']} MiB",
            "",
        )
    )
    for name, label in (
        ("posts_authenticated_1M_revoked", "posts, 1M revoked / none (new tokens)"),
        ("posts_authenticated_20_keys", "posts, 20 JWKS keys / 1 (new tokens)"),
        ("client_credentials_1M_rows", "client credentials, 1M token rows / none"),
    ):
        rows.append(pair(name, label, "0.90-1.10", 0))
    rows.append(
        (
            "  posts 1M revoked: ready / first token answered",
            f"{results['posts_1M_revoked_ready_s']:.2f} s / "
            f"{results['posts_1M_revoked_first_answer_s']:.2f} s after start",
            "(target < 2 s)",
        )
    )
    rows.append(
        (
            "  posts: revocation filter read in the background",
            f"{results['revocation_filter_entries']} entries in "
            f"{results['revocation_filter_resync_s']:.1f} s",
            "",
        )
    )
    for name, mib in _per_server(results, "peak_rss_mib").items():
        rows.append((f"peak RSS {name}", f"{mib} MiB", "(target < 200)"))
    width = max(len(r[0]) for r in rows)
    measured_width = max(len(r[1]) for r in rows)
    print(f"\n{'figure':{width}}  {'measured (median runs)':{measured_width}}  ratio")
    for figure, measured, ratio in rows:
        print(f"{figure:{width}}  {measured:{measured_width}}  {ratio}")
    print(
        "\nA ratio to a raw rate is the median of its runs' ratios, each run beside the raw run"
        "\njust before it. A ratio of two servers is the median of runs in which both served at"
        "\nonce, sharing the server core (rates then are shares of the core, and the part of"
        "\nthe core each server got is shown); the posts rows also show the rates, latencies"
        "\nand ratio of median runs taken alone, in turns."
    )
    return {
        "rows": [{"figure": f, "measured": m, "ratio": r} for f, m, r in rows],
        "raw": {k: (asdict(v) if isinstance(v, Figure | Pair) else v) for k, v in results.items()},
        "settings": {
            "duration_s": DURATION,
            "runs": RUNS,
            "connections": CONNECTIONS,
            "posts_database_pool_size": POOL_SIZE,
        },
    }


def per_cpu_second(figure: Figure) -> float:
    """Requests per CPU-second of the server: its rate over the part of a core it used."""
    assert figure.cpu_share, "a figure without the server's CPU share"
    return figure.rps / figure.cpu_share


def write(document: dict[str, object]) -> Path:
    """The report as JSON in bench/results/latest.json; its path."""
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(document, indent=2))
    return out / "latest.json"


def _figure(results: Results, name: str) -> Figure:
    figure = results[name]
    assert isinstance(figure, Figure), f"{name} is not one figure"
    return figure


def _pair(results: Results, name: str) -> Pair:
    pair = results[name]
    assert isinstance(pair, Pair), f"{name} is not a pair"
    return pair


def _per_server(results: Results, name: str) -> dict[str, float]:
    per_server = results[name]
    assert isinstance(per_server, dict), f"{name} is not a figure per server"
    return per_server
