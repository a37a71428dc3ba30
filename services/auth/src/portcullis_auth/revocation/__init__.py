"""Revocations: recorded in Postgres first, then copied to the Redis list."""
