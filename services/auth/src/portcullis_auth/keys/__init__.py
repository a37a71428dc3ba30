"""Signing keys: generation, sealing at rest, rotation and the JWKS."""
