"""Device authorization (RFC 8628 §3.1, §3.2): the device's first request.

The device authenticates as its client (a public client sends its id alone)
and names the scopes it wants; it gets a device code to poll with and a user
code for its user to type on another device. Privileged scopes are checked
when a user answers: only then is the user known.
"""

from __future__ import annotations

from portcullis_auth.oauth2.client_auth import authenticate_within_budget
from portcullis_auth.oauth2.errors import UnauthorizedClientError
from portcullis_auth.oauth2.ports import ClientRateLimit, ClientStore, DeviceStore
from portcullis_auth.oauth2.request import TokenRequest
from portcullis_auth.oauth2.scopes import parse_requested_scope, resolve_audience, resolve_scopes
from portcullis_shared.scopes import ScopeRegistry

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"


async def start_device_authorization(
    request: TokenRequest,
    clients: ClientStore,
    budget: ClientRateLimit,
    devices: DeviceStore,
    registry: ScopeRegistry,
    issuer: str,
) -> dict[str, object]:
    """§3.2: the device authorization response."""
    client = await authenticate_within_budget(request, clients, budget)
    if GRANT_TYPE not in client.grant_types:
        raise UnauthorizedClientError("the client may not use the device authorization grant")
    requested = parse_requested_scope(request.get("scope"), registry)
    scopes = resolve_scopes(requested, client, None, registry)
    audience = resolve_audience(request.get("resource"), client)
    started = await devices.start(client=client, scopes=scopes, audience=audience)
    verification_uri = f"{issuer}/oauth/device"
    return {
        "device_code": started.device_code,
        "user_code": started.user_code,
        "verification_uri": verification_uri,
        "verification_uri_complete": f"{verification_uri}?user_code={started.user_code}",
        "expires_in": started.expires_in,
        "interval": started.interval,
    }
