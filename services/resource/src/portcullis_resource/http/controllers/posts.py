"""The posts API: /api/posts."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody, QueryParameter

from portcullis_resource.http.schemas import PostCreate, PostOut, PostPage, PostUpdate
from portcullis_resource.runtime import runtime_of
from portcullis_resource.services.posts import ADMIN_SCOPE, NotAuthorError, PostChanges, PostService
from portcullis_shared.errors import InsufficientScopeError
from portcullis_shared.guards import current_principal, scopes, user_required
from portcullis_shared.principal import Principal

PrincipalRequest = Request[Principal, Any, State]


class PostController(Controller):
    path = "/api/posts"

    @get("/", guards=[scopes("read-posts")])
    async def list_posts(
        self,
        state: State,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
    ) -> PostPage:
        async with runtime_of(state).transaction() as session:
            posts = await PostService(session).list(limit=limit + 1, offset=offset)
        return PostPage(
            items=[PostOut.of(p) for p in posts[:limit]],
            limit=limit,
            offset=offset,
            next_offset=offset + limit if len(posts) > limit else None,
        )

    @get("/{post_id:uuid}", guards=[scopes("read-posts")])
    async def get_post(self, state: State, post_id: FromPath[uuid.UUID]) -> PostOut:
        async with runtime_of(state).transaction() as session:
            return PostOut.of(await PostService(session).get(post_id))

    @post("/", guards=[scopes("write-posts"), user_required])
    async def create_post(
        self, request: PrincipalRequest, state: State, data: JSONBody[PostCreate]
    ) -> PostOut:
        author = current_principal(request).user_id
        assert author is not None  # user_required guarantees a user
        async with runtime_of(state).transaction() as session:
            return PostOut.of(await PostService(session).create(author, data.title, data.body))

    @patch("/{post_id:uuid}", guards=[scopes("write-posts"), user_required])
    async def update_post(
        self,
        request: PrincipalRequest,
        state: State,
        post_id: FromPath[uuid.UUID],
        data: JSONBody[PostUpdate],
    ) -> PostOut:
        principal = current_principal(request)
        try:
            async with runtime_of(state).transaction() as session:
                post = await PostService(session).update(
                    post_id, principal, PostChanges(title=data.title, body=data.body)
                )
                return PostOut.of(post)
        except NotAuthorError:
            raise InsufficientScopeError(
                "only the author, or a token with the admin scope, may edit this post",
                scope=ADMIN_SCOPE,
            ) from None

    @delete("/{post_id:uuid}", guards=[scopes(ADMIN_SCOPE)], status_code=204)
    async def delete_post(self, state: State, post_id: FromPath[uuid.UUID]) -> None:
        async with runtime_of(state).transaction() as session:
            await PostService(session).delete(post_id)
