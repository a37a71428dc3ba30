"""What a request is handed (Litestar dependency injection).

`posts` is the post service on the request's session: committed once the
handler has returned, rolled back when it raises. `principal` (who the token
speaks for) comes from the guard plugin.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from litestar.datastructures import State
from litestar.di import Provide

from portcullis_resource.runtime import ResourceRuntime, runtime_of
from portcullis_resource.services.posts import PostService
from portcullis_shared.dependencies import Injected


async def provide_runtime(state: State) -> ResourceRuntime:
    return runtime_of(state)


async def provide_posts(
    runtime: Injected[ResourceRuntime],
) -> AsyncGenerator[PostService, None]:
    async with runtime.sessionmaker() as session:
        yield PostService(session)
        await session.commit()


DEPENDENCIES = {"runtime": Provide(provide_runtime), "posts": Provide(provide_posts)}
