"""What a request is handed (Litestar dependency injection).

Handlers name what they need as parameters: `runtime`, `uow` (the request's
unit of work: one session, committed and its revocations published when the
handler returns, rolled back when it raises), the services bound to it, and
the `caller` or `first_party_user` the route's guards let in
(`http/authentication.py`). No handler commits.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide

from portcullis_auth.http.authentication import account_caller, first_party_user
from portcullis_auth.oauth2.errors import TemporarilyUnavailableError
from portcullis_auth.records import User
from portcullis_auth.revocation.publisher import RevocationNotLandedError
from portcullis_auth.runtime import AuthRuntime, runtime_of
from portcullis_auth.services.account_tokens import AccountCaller
from portcullis_auth.services.personal_access import PersonalAccessTokenService
from portcullis_auth.services.tokens import TokenService
from portcullis_auth.services.unit_of_work import UnitOfWork
from portcullis_shared.dependencies import Injected


async def provide_runtime(state: State) -> AuthRuntime:
    return runtime_of(state)


async def provide_unit_of_work(
    runtime: Injected[AuthRuntime],
) -> AsyncGenerator[UnitOfWork, None]:
    async with runtime.sessionmaker() as session:
        uow = runtime.unit_of_work(session)
        yield uow
        # Only once the handler has returned: a failure rolls back as the session closes.
        try:
            await uow.commit()
        except RevocationNotLandedError:
            raise TemporarilyUnavailableError(
                "the revocation is recorded and will take effect once the revocation list "
                "is reachable"
            ) from None


async def provide_tokens(runtime: Injected[AuthRuntime], uow: Injected[UnitOfWork]) -> TokenService:
    return runtime.token_service(uow)


async def provide_personal_access_tokens(
    uow: Injected[UnitOfWork], tokens: Injected[TokenService]
) -> PersonalAccessTokenService:
    return PersonalAccessTokenService(uow.session, tokens, uow.revocations)


async def provide_caller(request: Request[Any, Any, Any]) -> AccountCaller:
    """The caller the `bearer_caller` guard let in."""
    return account_caller(request)


async def provide_first_party_user(request: Request[Any, Any, Any]) -> User:
    """The user the `first_party_login` guard let in."""
    return first_party_user(request)


DEPENDENCIES = {
    "runtime": Provide(provide_runtime),
    "uow": Provide(provide_unit_of_work),
    "tokens": Provide(provide_tokens),
    "personal_access_tokens": Provide(provide_personal_access_tokens),
    "caller": Provide(provide_caller),
    "first_party_user": Provide(provide_first_party_user),
}
