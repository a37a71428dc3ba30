"""The scenarios, in the order they run: raw signing; the posts service with a repeated
token, new tokens and none; the token endpoint's client-credentials, password and refresh
grants beside their raw rates; the scaling rows (1M revoked entries, 20 JWKS keys, 1M
token rows); and each server's peak memory."""

from __future__ import annotations

import base64
from dataclasses import replace

import httpx

from bench.comparisons import paired, wrk_alone_in_turns, wrk_interleaved, wrk_side_by_side
from bench.figures import Results
from bench.password_flood import FLOOD_CONNECTIONS, client_credentials_beside_a_flood
from bench.portcullis_cli import Client
from bench.raw_rates import RawSigning, argon2_verify, raw_rate
from bench.refresh_chains import RefreshChains
from bench.servers import Server
from bench.settings import CONNECTIONS
from bench.stack import Accounts, Stack
from bench.tokens import TokenSource
from bench.twins import Twins
from bench.wrk import Load, probe, wrk_once


def measure(stack: Stack, twins: Twins, accounts: Accounts) -> Results:
    """Every result of the bench, by name, in the order measured."""
    tokens = TokenSource(stack.auth_url, accounts)
    results: Results = {}
    # Raw rates first, on the servers' core, while the servers idle (and before the
    # twins' million-row fills).
    signing = RawSigning()
    results["raw_signing_RS256"] = raw_rate(signing.service_signer())
    results["raw_signing_RS256_jwt_encode"] = raw_rate(signing.jwt_encode())

    path, headers = _posts_path_and_headers(stack, tokens)
    results.update(_posts(stack, tokens, path, headers))
    results.update(_servers(stack, headers))
    results.update(_token_endpoint(stack, accounts, tokens, signing))
    results.update(_scaling(stack, twins, accounts, tokens, path))
    results["peak_rss_mib"] = {server.name: server.peak_rss_mib() for server in stack.servers}
    return results


def _posts_path_and_headers(stack: Stack, tokens: TokenSource) -> tuple[str, dict[str, str]]:
    token = tokens.user_token()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    post = httpx.post(
        f"{stack.posts.url}/api/posts",
        json={"title": "bench", "body": "x" * 200},
        headers=headers,
        timeout=10,
    )
    post.raise_for_status()
    return f"/api/posts/{post.json()['id']}", headers


def _posts(stack: Stack, tokens: TokenSource, path: str, headers: dict[str, str]) -> Results:
    results: Results = {}
    # A client sends its token until it expires: the first request verifies it, the
    # rest find it in the verifier's cache. With a new token each request, every
    # request verifies one. Each alone, in turns (rates, latencies), then side by side
    # (the ratios).
    repeated = Load(stack.posts.url + path, headers=headers)
    new_tokens = Load.with_new_tokens(stack.posts.url + path, tokens.new_tokens())
    baseline = Load(stack.baseline.url + path)
    (
        results["posts_authenticated"],
        results["posts_new_tokens"],
        results["posts_baseline"],
    ) = wrk_interleaved(repeated, new_tokens, baseline)
    # One pair at a time: the two token loads go to one server.
    for name, load in (("posts_authenticated", repeated), ("posts_new_tokens", new_tokens)):
        (results[f"{name}_side_by_side"],) = wrk_side_by_side(
            (baseline, stack.baseline), (load, stack.posts)
        )
    return results


def _servers(stack: Stack, headers: dict[str, str]) -> Results:
    """GET /api/me with a repeated token (the guard and the framework, no database: what a
    server's own cost shows most in) on posts services served three ways, side by side on
    the server core: Granian (what `portcullis serve` runs), stock uvicorn, and uvicorn
    with the transport the services used to run. Then Granian with 1 and 2 workers, each
    alone in turns (on the one server core: what a second worker costs, not what it gains).
    Each is stopped once measured."""
    results: Results = {}
    granian = stack.posts_served_with("granian")
    uvicorn = stack.posts_served_with("uvicorn")
    one_write = stack.posts_served_with("uvicorn-one-write")
    two_workers = stack.posts_served_with("granian", workers=2)

    def load(server: Server) -> Load:
        return Load(f"{server.url}/api/me", headers=headers)

    for server in (granian, uvicorn, one_write):
        stack.start(server)
    (
        results["server_uvicorn"],
        results["server_uvicorn_one_write"],
    ) = wrk_side_by_side(
        (load(granian), granian), (load(uvicorn), uvicorn), (load(one_write), one_write)
    )
    stack.stop(uvicorn)
    stack.stop(one_write)
    stack.start(two_workers)
    (
        results["workers_1"],
        results["workers_2"],
    ) = wrk_alone_in_turns((load(granian), granian), (load(two_workers), two_workers))
    stack.stop(granian)
    stack.stop(two_workers)
    return results


def _token_endpoint(
    stack: Stack, accounts: Accounts, tokens: TokenSource, signing: RawSigning
) -> Results:
    """The grants beside their raw rates: signing for client credentials and refresh
    rotations, argon2 for password logins."""
    results: Results = {}
    client_credentials = Load(
        f"{stack.auth_url}/oauth/token",
        headers={"Authorization": _basic(accounts.machine)},
        post="grant_type=client_credentials",
    )
    probe(client_credentials)
    results["client_credentials"] = paired(
        signing.service_signer(),
        lambda seconds: wrk_once(client_credentials, seconds),
        stack.auth,
    )
    argon2 = argon2_verify()
    password = Load(
        f"{stack.auth_url}/oauth/token",
        headers={"Authorization": _basic(accounts.password_client)},
        # Fewer than the login throttle's 5: each login counts as a failure until
        # its password is checked.
        connections=4,
        post=f"grant_type=password&username=bench%40example.com&password={accounts.password}&scope=read-posts",
    )
    probe(password)
    results["password_grant"] = paired(
        argon2, lambda seconds: wrk_once(password, seconds), stack.auth
    )
    flood = replace(password, connections=FLOOD_CONNECTIONS, many_addresses=True)
    results.update(client_credentials_beside_a_flood(client_credentials, flood, stack.auth))
    first = [tokens.user_token("read-posts")["refresh_token"] for _ in range(CONNECTIONS)]
    chains = RefreshChains(f"{stack.auth_url}/oauth/token", accounts.password_client, first)
    results["refresh_rotation"] = paired(signing.service_signer(), chains.run, stack.auth)
    return results


def _scaling(
    stack: Stack, twins: Twins, accounts: Accounts, tokens: TokenSource, path: str
) -> Results:
    results: Results = {}
    # Scaling: each twin in turns with the service it varies (the post is in their
    # shared database), a new token each request, so that every request looks its
    # key up and checks its signature.
    read = twins.setup(path, tokens.user_token("read-posts")["access_token"])
    results["posts_1M_revoked_ready_s"] = read.ready_seconds
    results["posts_1M_revoked_first_answer_s"] = read.first_answer_seconds
    results["revocation_filter_resync_s"] = read.seconds
    results["revocation_filter_entries"] = read.entries
    new_tokens = tokens.new_tokens()
    (
        results["posts_authenticated_1M_revoked"],
        results["posts_authenticated_20_keys"],
    ) = wrk_side_by_side(
        *(
            (Load.with_new_tokens(server.url + path, new_tokens), server)
            for server in (stack.posts, twins.posts_1m, twins.posts_20_keys)
        )
    )
    (results["client_credentials_1M_rows"],) = wrk_side_by_side(
        (
            Load(
                f"{stack.auth_url}/oauth/token",
                headers={"Authorization": _basic(accounts.machine)},
                post="grant_type=client_credentials",
            ),
            stack.auth,
        ),
        (
            Load(
                f"{twins.auth_1m.url}/oauth/token",
                headers={"Authorization": _basic(twins.machine)},
                post="grant_type=client_credentials",
            ),
            twins.auth_1m,
        ),
    )
    return results


def _basic(client: Client) -> str:
    """The Authorization header of HTTP Basic authentication as `client`."""
    return "Basic " + base64.b64encode(f"{client[0]}:{client[1]}".encode()).decode()
