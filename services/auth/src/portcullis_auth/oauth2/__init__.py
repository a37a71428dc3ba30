"""The OAuth 2.0 core: grants, client authentication, errors (RFC 6749 and friends).

Nothing here imports Litestar: the HTTP layer turns requests into
`TokenRequest`s and `OAuth2Error`s into responses.
"""
