"""What a fresh deployment needs: a signing key, the password client, the personal
access client, and the playground's client. Installing twice creates nothing the
second time.

A deployment may choose the password client's id and secret, and the playground
client's id, beforehand (`GivenClients`), and hand the same values to the posts
service: then nothing secret has to be read from install's output. A client
given so is created under that id unless it exists; if it exists it is left as
it is, and if it disagrees with what was given (another secret, revoked, not
that kind of client, or the default client already has another id), install
changes nothing and says so: it never rotates a secret on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.db.models import OAuthClient
from portcullis_auth.keys.sealing import KeySealer
from portcullis_auth.keys.service import SigningKeyService
from portcullis_auth.services.clients import (
    ClientService,
    ClientSpec,
    CreatedClient,
    secret_proves,
)
from portcullis_auth.settings import AuthSettings

PASSWORD_CLIENT_NAME = "Portcullis Password Grant Client"  # noqa: S105 - a name
PERSONAL_ACCESS_CLIENT_NAME = "Portcullis Personal Access Client"
PLAYGROUND_CLIENT_NAME = "Portcullis Playground"
PLAYGROUND_REDIRECT_URI = "http://127.0.0.1/playground/"
"""The playground served on loopback, on any port (RFC 8252 §7.3); add the playground's
public address with `portcullis client update` where it is served elsewhere."""


class InstallConflictError(ValueError):
    """A client given to install disagrees with the database; nothing was changed. The
    message names the client, never a secret."""


@dataclass(frozen=True, slots=True)
class GivenClients:
    """Default clients' credentials chosen by the deployment (None: install makes them)."""

    password_client_id: str | None = None
    password_client_secret: str | None = field(default=None, repr=False)
    """Given with `password_client_id`, or not at all; stored only as its hash."""
    playground_client_id: str | None = None

    def __post_init__(self) -> None:
        if (self.password_client_id is None) != (self.password_client_secret is None):
            raise ValueError("give the password client's id and secret together, or neither")


@dataclass(frozen=True, slots=True)
class Installed:
    """What this installation created (None: it existed already)."""

    signing_key: str | None = None
    password_client: CreatedClient | None = None
    personal_access_client: CreatedClient | None = None
    playground_client: CreatedClient | None = None


async def install_defaults(
    session: AsyncSession, settings: AuthSettings, given: GivenClients | None = None
) -> Installed:
    given = given or GivenClients()
    keys = SigningKeyService(session, KeySealer(settings.secret_key, settings.secret_key_previous))
    signing_key = None
    if not await keys.has_keys():
        signing_key = (await keys.generate(settings.tokens.signing_algorithm)).kid
    clients = ClientService(session)
    names = settings.scopes.names
    unprivileged = sorted(s for s in names if not settings.scopes.is_privileged(s))
    password_client = await _install_client(
        clients,
        ClientSpec(
            name=PASSWORD_CLIENT_NAME,
            grant_types=("password", "refresh_token"),
            scopes=sorted(names),
            default_scopes=unprivileged,
            first_party=True,
        ),
        names,
        given_id=given.password_client_id,
        given_secret=given.password_client_secret,
    )
    personal_access_client = await _install_client(
        clients,
        ClientSpec(
            name=PERSONAL_ACCESS_CLIENT_NAME,
            grant_types=(),
            scopes=sorted(names),
            first_party=True,
            personal_access=True,
        ),
        names,
    )
    if personal_access_client is not None:
        # Its secret is never shown: no deployment needs it (it has no grant), and it
        # would let its holder introspect and revoke every personal access token.
        personal_access_client = CreatedClient(personal_access_client.client, None)
    # A browser page keeps no secret: a public client, signing users in with the
    # authorization code flow and PKCE.
    playground_client = await _install_client(
        clients,
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
        given_id=given.playground_client_id,
    )
    return Installed(signing_key, password_client, personal_access_client, playground_client)


async def _install_client(
    clients: ClientService,
    spec: ClientSpec,
    known_scopes: frozenset[str],
    *,
    given_id: str | None = None,
    given_secret: str | None = None,
) -> CreatedClient | None:
    """The client `spec` describes, created unless it exists (None: it did).

    Without a given id, the client is found by its name. With one, the client of that id
    is the one: left as it is if it fits, refused if it does not; and if none has that
    id, it is created unless another client already plays the part."""
    by_name = await clients.find_by_name(spec.name)
    if given_id is None:
        return None if by_name is not None else await clients.create(spec, known_scopes)
    existing = await clients.get(given_id)
    if existing is not None:
        _check_fits(existing, spec, given_secret)
        return None
    if by_name is not None:
        its_secret = "" if spec.public else " (and its secret)"
        raise InstallConflictError(
            f"the {spec.name} is already {by_name.id}, not {given_id}; nothing was changed. "
            f"Give {by_name.id}{its_secret} instead, or revoke it "
            f"(`portcullis client revoke {by_name.id}`) and install again to create {given_id}"
        )
    return await clients.create(spec, known_scopes, client_id=given_id, secret=given_secret)


def _check_fits(existing: OAuthClient, spec: ClientSpec, secret: str | None) -> None:
    """`existing`, found under a given id, must be the client `spec` describes, with
    the given secret; what else it holds (scopes, redirect URIs) is the operator's."""
    if existing.revoked_at is not None:
        raise InstallConflictError(
            f"client {existing.id} is revoked; nothing was changed. Choose a new id "
            f"(and secret) for the {spec.name}"
        )
    if (
        existing.is_public != spec.public
        or existing.first_party != spec.first_party
        or spec.grant_types[0] not in existing.grant_types
    ):
        kind = ("public" if spec.public else "confidential") + (
            " first-party" if spec.first_party else ""
        )
        raise InstallConflictError(
            f"client {existing.id} ({existing.name!r}) is not a {kind} client with the "
            f"{spec.grant_types[0]} grant, so it cannot be the {spec.name}; nothing was "
            "changed. Choose another id"
        )
    if secret is not None and (existing.secret_hash is None or not secret_proves(existing, secret)):
        raise InstallConflictError(
            f"client {existing.id} exists with another secret than the one given; nothing "
            "was changed (install never replaces a secret). Give the client's current secret, "
            f"or revoke it (`portcullis client revoke {existing.id}`) and choose a new "
            "id and secret"
        )
