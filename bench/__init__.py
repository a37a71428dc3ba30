"""Load benchmarks: what a token costs, next to baselines measured in the same run."""
