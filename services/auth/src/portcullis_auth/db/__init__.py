"""Database models, engine and sessions."""
