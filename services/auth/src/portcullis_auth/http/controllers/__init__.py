"""Route handlers, one controller per concern."""
