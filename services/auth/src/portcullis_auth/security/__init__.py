"""Secrets, password hashing and login throttling."""
