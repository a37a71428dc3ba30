"""Posts business rules: no HTTP types; flush, never commit."""
