"""Rotating a client's secret with an overlap: the old secret keeps working at the token
endpoint until the overlap ends, the new one works at once, and without an overlap the
old one stops at once, even against the endpoint's cached copy of the client."""

from __future__ import annotations

from datetime import timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_auth.services.clients import ClientConfigError, ClientService
from portcullis_auth.services.revocations import RevocationService
from tests.auth.conftest import Seed
from tests.auth.helpers import assert_oauth_error, client_credentials_grant, execute

Http = AsyncTestClient[Litestar]


async def rotate(seed: Seed, client_id: str, overlap: timedelta) -> str:
    async def work(session: AsyncSession) -> str:
        service = ClientService(session)
        found = await service.get(client_id)
        assert found is not None
        made = await service.rotate_secret(found, overlap)
        assert made is not None
        return made

    return await seed.run(work)


async def machine(seed: Seed, http: Http) -> tuple[str, str]:
    """A client-credentials client, already in the token endpoint's cache."""
    client_id, secret = await seed.client()
    assert secret is not None
    assert (await client_credentials_grant(http, client_id, secret)).status_code == 200
    return client_id, secret


async def test_the_old_secret_works_until_the_overlap_ends(http: Http, seed: Seed) -> None:
    client_id, old = await machine(seed, http)
    new = await rotate(seed, client_id, timedelta(hours=1))

    assert (await client_credentials_grant(http, client_id, new)).status_code == 200
    assert (await client_credentials_grant(http, client_id, old)).status_code == 200

    await execute(
        seed.settings,
        "UPDATE oauth_clients SET previous_secret_expires_at = now() - interval '1 second', "
        "version = version + 1 WHERE id = :id",
        id=client_id,
    )
    assert_oauth_error(await client_credentials_grant(http, client_id, old), 401, "invalid_client")
    assert (await client_credentials_grant(http, client_id, new)).status_code == 200


async def test_without_an_overlap_the_old_secret_stops_at_once(http: Http, seed: Seed) -> None:
    client_id, old = await machine(seed, http)
    new = await rotate(seed, client_id, timedelta(0))

    assert_oauth_error(await client_credentials_grant(http, client_id, old), 401, "invalid_client")
    assert (await client_credentials_grant(http, client_id, new)).status_code == 200


async def test_a_second_rotation_ends_the_first_overlap(http: Http, seed: Seed) -> None:
    client_id, first = await machine(seed, http)
    second = await rotate(seed, client_id, timedelta(hours=1))
    third = await rotate(seed, client_id, timedelta(hours=1))

    assert_oauth_error(
        await client_credentials_grant(http, client_id, first), 401, "invalid_client"
    )
    for secret in (second, third):
        assert (await client_credentials_grant(http, client_id, secret)).status_code == 200


@pytest.mark.parametrize("overlap", [timedelta(seconds=-1), timedelta(days=31)])
async def test_an_overlap_out_of_bounds_is_refused(seed: Seed, overlap: timedelta) -> None:
    client_id, _ = await seed.client()
    with pytest.raises(ClientConfigError, match="overlap"):
        await rotate(seed, client_id, overlap)


async def test_a_public_client_has_no_secret_to_rotate(seed: Seed) -> None:
    client_id, _ = await seed.client(
        grant_types=("authorization_code",),
        redirect_uris=("https://app.example/cb",),
        public=True,
    )
    with pytest.raises(ClientConfigError, match="public"):
        await rotate(seed, client_id, timedelta(hours=1))


async def test_a_revoked_client_gets_no_new_secret(seed: Seed) -> None:
    client_id, _ = await seed.client()

    async def revoke(session: AsyncSession) -> None:
        service = ClientService(session)
        found = await service.get(client_id)
        assert found is not None
        await service.revoke(found, RevocationService(session, seed.settings.tokens))

    await seed.run(revoke)
    with pytest.raises(ClientConfigError, match="revoked"):
        await rotate(seed, client_id, timedelta(hours=1))
