"""Client credentials beside a password flood: the argon2 queue's bound turns the flood
into quick 503s, so client-credentials latency holds and the auth service's memory stays
flat. The flood comes from many addresses, so that it fills the whole queue rather than
one address's share."""

from __future__ import annotations

import statistics
import threading
import time

from bench.figures import Figure, Results, median_run
from bench.servers import Server
from bench.settings import DURATION, RUNS, WARM_UP
from bench.wrk import Flood, Load, wrk_flood, wrk_once

FLOOD_CONNECTIONS = 64
"""Sixty-four logins at once: four times the queue's default bound of 16."""


def client_credentials_beside_a_flood(
    client_credentials: Load, flood: Load, auth: Server
) -> Results:
    """p99 of client credentials alone and during a flood, runs in turns."""
    wrk_once(client_credentials, WARM_UP)
    quiet: list[Figure] = []
    flooded: list[Figure] = []
    floods: list[Flood] = []
    rss_before = auth.rss_mib()
    rss_during: list[float] = []
    for _ in range(RUNS):
        auth.wait_until_idle()
        quiet.append(wrk_once(client_credentials, DURATION))
        auth.wait_until_idle()
        figure, flood_run, rss = _during_flood(client_credentials, flood, auth)
        flooded.append(figure)
        floods.append(flood_run)
        rss_during.append(rss)
    alone, beside = median_run(quiet), median_run(flooded)
    return {
        "client_credentials_alone": alone,
        "client_credentials_during_password_flood": beside,
        "password_flood_p99_ratio": round(
            statistics.median(
                b.p99_ms / a.p99_ms
                for a, b in zip(quiet, flooded, strict=True)
                if a.p99_ms and b.p99_ms
            ),
            2,
        ),
        "password_flood": {
            "requests_per_s": round(statistics.median(f.rps for f in floods), 1),
            "refused_share": round(
                statistics.median(f.refused / max(1, f.requests) for f in floods), 4
            ),
            "logins_served": statistics.median(f.requests - f.refused for f in floods),
            "auth_rss_before_mib": rss_before,
            "auth_rss_during_mib_max": max(rss_during),
        },
    }


def _during_flood(
    client_credentials: Load, flood: Load, auth: Server
) -> tuple[Figure, Flood, float]:
    """One client-credentials run inside a flood that starts a second before it and ends
    a second after; with the auth service's largest resident memory seen meanwhile."""
    result: list[Flood] = []
    flooding = threading.Thread(target=lambda: result.append(wrk_flood(flood, DURATION + 2)))
    flooding.start()
    time.sleep(1)
    rss = [auth.rss_mib()]
    figure = wrk_once(client_credentials, DURATION)
    rss.append(auth.rss_mib())
    flooding.join()
    return figure, result[0], max(rss)
