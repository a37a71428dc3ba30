"""Portcullis shared code: what the auth service and every resource service agree on."""
