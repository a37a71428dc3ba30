"""The posts API: /api/posts."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter

from portcullis_resource.http.errors import (
    GUARD_ERRORS,
    INVALID_REQUEST,
    NO_SUCH_POST,
    SCOPE_ERRORS,
)
from portcullis_resource.http.schemas import PostCreate, PostOut, PostPage, PostUpdate
from portcullis_resource.services.posts import ADMIN_SCOPE, NotAuthorError, PostChanges, PostService
from portcullis_shared.dependencies import Injected
from portcullis_shared.errors import InsufficientScopeError
from portcullis_shared.guards import scopes, user_required
from portcullis_shared.openapi import answers, bearer_security
from portcullis_shared.principal import Principal


class PostController(Controller):
    path = "/api/posts"

    @get(
        "/",
        guards=[scopes("read-posts")],
        security=bearer_security("read-posts"),
        operation_class=answers(GUARD_ERRORS, SCOPE_ERRORS, INVALID_REQUEST),
    )
    async def list_posts(
        self,
        posts: Injected[PostService],
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
    ) -> PostPage:
        page = await posts.list(limit=limit + 1, offset=offset)
        return PostPage(
            items=[PostOut.of(p) for p in page[:limit]],
            limit=limit,
            offset=offset,
            next_offset=offset + limit if len(page) > limit else None,
        )

    @get(
        "/{post_id:uuid}",
        guards=[scopes("read-posts")],
        security=bearer_security("read-posts"),
        operation_class=answers(GUARD_ERRORS, SCOPE_ERRORS, NO_SUCH_POST, instead_of=["400"]),
    )
    async def get_post(self, posts: Injected[PostService], post_id: FromPath[uuid.UUID]) -> PostOut:
        return PostOut.of(await posts.get(post_id))

    @post(
        "/",
        guards=[scopes("write-posts"), user_required],
        security=bearer_security("write-posts"),
        operation_class=answers(GUARD_ERRORS, SCOPE_ERRORS, INVALID_REQUEST),
    )
    async def create_post(
        self,
        principal: Injected[Principal],
        posts: Injected[PostService],
        data: JSONBody[PostCreate],
    ) -> PostOut:
        author = principal.user_id
        assert author is not None  # user_required guarantees a user
        return PostOut.of(await posts.create(author, data.title, data.body))

    @patch(
        "/{post_id:uuid}",
        guards=[scopes("write-posts"), user_required],
        security=bearer_security("write-posts"),
        operation_class=answers(GUARD_ERRORS, SCOPE_ERRORS, INVALID_REQUEST, NO_SUCH_POST),
    )
    async def update_post(
        self,
        principal: Injected[Principal],
        posts: Injected[PostService],
        post_id: FromPath[uuid.UUID],
        data: JSONBody[PostUpdate],
    ) -> PostOut:
        try:
            post = await posts.update(
                post_id, principal, PostChanges(title=data.title, body=data.body)
            )
        except NotAuthorError:
            raise InsufficientScopeError(
                "only the author, or a token with the admin scope, may edit this post",
                scope=ADMIN_SCOPE,
            ) from None
        return PostOut.of(post)

    @delete(
        "/{post_id:uuid}",
        guards=[scopes(ADMIN_SCOPE)],
        status_code=204,
        security=bearer_security(ADMIN_SCOPE),
        operation_class=answers(GUARD_ERRORS, SCOPE_ERRORS, NO_SUCH_POST, instead_of=["400"]),
    )
    async def delete_post(self, posts: Injected[PostService], post_id: FromPath[uuid.UUID]) -> None:
        await posts.delete(post_id)
