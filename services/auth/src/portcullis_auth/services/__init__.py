"""Business logic: no HTTP types; flush, never commit."""
