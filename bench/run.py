"""`make bench`: what a token costs, each figure beside its baseline from the same run.

Starts both services as production runs them (Postgres, Redis, one uvicorn
worker each, production settings; the posts services with pools of 12 database
connections so that six services fit in Postgres's default limit), the servers
pinned to core 0 and the load generators (wrk, and an asyncio driver for refresh
chains) to core 1. The raw signing rate (the service's own signer) and the raw
argon2 rate are measured on core 0 while the servers idle, in turns with the
runs they are the baseline of: the machine's speed drifts over minutes (raw
signing has moved by half within one bench), so each run is divided by the
baseline run just before it and the ratio is the median of those. Two servers
compared with each other (the posts service and its baseline, each scaling twin
and the service it varies) are loaded at once, side by side on the server core,
so that within each run the machine's speed is the same for both. Prints one
table of medians over several runs and writes it as JSON to
bench/results/latest.json. Nothing here asserts an absolute number.

The posts service is measured two ways: every request sending one token, as a
client sends its token until it expires (the verifier's cache answers all but the
first), and every request sending a token not seen before, so that each has its
signature and claims checked. The scaling rows send new tokens, so that every
request looks its key up in the JWKS.

Environment: PORTCULLIS_TEST_DATABASE_URL / PORTCULLIS_TEST_REDIS_URL (else the
local defaults), BENCH_DURATION (seconds per run, default 8), BENCH_RUNS
(default 3), BENCH_CONNECTIONS (default 32, per load). Each scaling row runs a twin
service (a million revoked entries, twenty JWKS keys, a million token rows) side by
side with the service it varies.

Where things are: `settings` (the environment), `cores` (which core runs what), `stack`
(the services, their databases, user and clients; `portcullis_cli`, `databases`,
`servers`), `twins` (the scaling twins), `tokens` (tokens the loads send), `wrk` (one
load run), `refresh_chains` (the refresh rotation load), `raw_rates` (the in-process
baselines), `comparisons` (in turns, side by side, paired with a raw rate), `scenarios`
(what is measured, in order), `report` (the table and the JSON), `baseline_app` (the
posts service without token checks).
"""

from __future__ import annotations

import shutil

from bench.cores import move_to_load_core
from bench.report import report, write
from bench.scenarios import measure
from bench.stack import Stack
from bench.twins import Twins


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("bench needs wrk (Debian: apt-get install wrk)")
    move_to_load_core()
    stack = Stack()
    twins = Twins(stack)
    failed = True
    try:
        accounts = stack.setup()
        results = measure(stack, twins, accounts)
        failed = False
    finally:
        stack.teardown(failed=failed)
    document = report(results)
    print(f"\nwritten to {write(document)}")


if __name__ == "__main__":
    main()
