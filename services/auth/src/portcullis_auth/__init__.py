"""Portcullis auth service: the OAuth2 authorization server."""
