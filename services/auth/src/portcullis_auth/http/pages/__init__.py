"""The auth service's own pages: sign in, consent, device codes, authorized applications.

Server-rendered HTML that works without JavaScript, loads nothing from other
hosts and cannot be framed.
"""
