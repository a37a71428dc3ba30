"""Client authentication at the token endpoint (RFC 6749 §2.3).

Two methods: `client_secret_basic` (credentials form-urlencoded, then base64,
§2.3.1) and `client_secret_post`. A public client sends only `client_id`.
Using two methods at once is `invalid_request`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote_plus

from portcullis_auth.oauth2.errors import InvalidClientError, InvalidRequestError, RateLimitedError
from portcullis_auth.oauth2.ports import ClientRateLimit, ClientStore
from portcullis_auth.oauth2.request import TokenRequest
from portcullis_auth.records import Client

AuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    client_secret: str | None
    method: AuthMethod

    @property
    def used_basic(self) -> bool:
        return self.method == "client_secret_basic"


def extract_client_credentials(request: TokenRequest) -> ClientCredentials:
    body_id = request.get("client_id")
    body_secret = request.get("client_secret")
    authorization = request.authorization
    if authorization:
        scheme, _, encoded = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            raise InvalidClientError("unsupported client authentication scheme", used_basic=True)
        client_id, client_secret = _decode_basic(encoded.strip())
        if body_secret is not None:
            raise InvalidRequestError("use one client authentication method, not two")
        if body_id is not None and body_id != client_id:
            raise InvalidRequestError(
                "client_id in the body does not match the Authorization header"
            )
        return ClientCredentials(client_id, client_secret, "client_secret_basic")
    if body_id is None:
        raise InvalidClientError("client authentication is required")
    if body_secret is not None:
        return ClientCredentials(body_id, body_secret, "client_secret_post")
    return ClientCredentials(body_id, None, "none")


async def authenticate_client(request: TokenRequest, clients: ClientStore) -> Client:
    """The client the request's credentials prove, or `invalid_client` (§5.2)."""
    credentials = extract_client_credentials(request)
    client = await clients.authenticate(credentials.client_id, credentials.client_secret)
    if client is None:
        raise InvalidClientError("client authentication failed", used_basic=credentials.used_basic)
    return client


async def authenticate_within_budget(
    request: TokenRequest, clients: ClientStore, budget: ClientRateLimit
) -> Client:
    """The authenticated client, once it has spent one request of its budget: only a
    proven client spends its own, and past it the request is refused (429)."""
    client = await authenticate_client(request, clients)
    refusal = budget.spend(client, request.client_ip)
    if refusal is not None:
        raise RateLimitedError(refusal)
    return client


def _decode_basic(encoded: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidClientError("malformed Basic credentials", used_basic=True) from None
    raw_id, separator, raw_secret = decoded.partition(":")
    if not separator or not raw_id:
        raise InvalidClientError("malformed Basic credentials", used_basic=True)
    # §2.3.1: both parts are form-urlencoded before base64.
    try:
        client_id = unquote_plus(raw_id, errors="strict")
        secret = unquote_plus(raw_secret, errors="strict")
    except UnicodeDecodeError:
        raise InvalidClientError("malformed Basic credentials", used_basic=True) from None
    if "\x00" in client_id or "\x00" in secret:
        raise InvalidClientError("malformed Basic credentials", used_basic=True)
    return client_id, secret
