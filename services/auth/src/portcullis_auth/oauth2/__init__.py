"""The OAuth 2.0 core: grants, client authentication, errors (RFC 6749 and friends).

It imports no web framework, database or Redis client, and none of the
service's own http, services, repositories or db packages (the import rules in
pyproject.toml hold it to that). It works through the ports it declares
(`ports.py`) on the records of `portcullis_auth.records`; the HTTP layer turns
requests into `TokenRequest`s, hands over the services as the ports, and turns
`OAuth2Error`s into responses.
"""
