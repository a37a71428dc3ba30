"""Portcullis posts service: a resource server protected by the Portcullis guard.

The service itself arrives with the guard in `portcullis_shared`; until then
this package only reserves its place in the workspace.
"""
