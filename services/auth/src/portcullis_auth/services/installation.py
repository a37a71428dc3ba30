"""What a fresh deployment needs: a signing key, the password client, the personal
access client, and the playground's client. Installing twice creates nothing the
second time."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.keys.sealing import KeySealer
from portcullis_auth.keys.service import SigningKeyService
from portcullis_auth.services.clients import ClientService, ClientSpec, CreatedClient
from portcullis_auth.settings import AuthSettings

PASSWORD_CLIENT_NAME = "Portcullis Password Grant Client"  # noqa: S105 - a name
PERSONAL_ACCESS_CLIENT_NAME = "Portcullis Personal Access Client"
PLAYGROUND_CLIENT_NAME = "Portcullis Playground"
PLAYGROUND_REDIRECT_URI = "http://127.0.0.1/playground/"
"""The playground served on loopback, on any port (RFC 8252 §7.3); add the playground's
public address with `portcullis client update` where it is served elsewhere."""


@dataclass(frozen=True, slots=True)
class Installed:
    """What this installation created (None: it existed already)."""

    signing_key: str | None = None
    password_client: CreatedClient | None = None
    personal_access_client: CreatedClient | None = None
    playground_client: CreatedClient | None = None


async def install_defaults(session: AsyncSession, settings: AuthSettings) -> Installed:
    keys = SigningKeyService(session, KeySealer(settings.secret_key))
    signing_key = None
    if not await keys.has_keys():
        signing_key = (await keys.generate(settings.tokens.signing_algorithm)).kid
    clients = ClientService(session)
    names = settings.scopes.names
    unprivileged = sorted(s for s in names if not settings.scopes.is_privileged(s))
    password_client = None
    if await clients.find_by_name(PASSWORD_CLIENT_NAME) is None:
        password_client = await clients.create(
            ClientSpec(
                name=PASSWORD_CLIENT_NAME,
                grant_types=("password", "refresh_token"),
                scopes=sorted(names),
                default_scopes=unprivileged,
                first_party=True,
            ),
            names,
        )
    personal_access_client = None
    if await clients.find_by_name(PERSONAL_ACCESS_CLIENT_NAME) is None:
        personal_access_client = await clients.create(
            ClientSpec(
                name=PERSONAL_ACCESS_CLIENT_NAME,
                grant_types=(),
                scopes=sorted(names),
                first_party=True,
                personal_access=True,
            ),
            names,
        )
    playground_client = None
    if await clients.find_by_name(PLAYGROUND_CLIENT_NAME) is None:
        # A browser page keeps no secret: a public client, signing users in with the
        # authorization code flow and PKCE.
        playground_client = await clients.create(
            ClientSpec(
                name=PLAYGROUND_CLIENT_NAME,
                grant_types=("authorization_code", "refresh_token"),
                scopes=sorted(names),
                default_scopes=unprivileged,
                redirect_uris=(PLAYGROUND_REDIRECT_URI,),
                public=True,
                first_party=True,
            ),
            names,
        )
    return Installed(signing_key, password_client, personal_access_client, playground_client)
