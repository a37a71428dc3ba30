"""Posts: who may do what is decided here, from the request's principal."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_resource.db.models import Post
from portcullis_resource.repositories.posts import PostRepository
from portcullis_shared.principal import Principal
from portcullis_shared.sql import utcnow

ADMIN_SCOPE = "admin"


class PostNotFoundError(LookupError):
    pass


class NotAuthorError(PermissionError):
    """Only the author, or a token with the admin scope, may edit a post."""


@dataclass(frozen=True, slots=True)
class PostChanges:
    title: str | None = None
    body: str | None = None


class PostService:
    def __init__(self, session: AsyncSession) -> None:
        self._posts = PostRepository(session)

    async def list(self, *, limit: int, offset: int) -> list[Post]:
        return await self._posts.list(limit=limit, offset=offset)

    async def get(self, post_id: uuid.UUID) -> Post:
        post = await self._posts.get(post_id)
        if post is None:
            raise PostNotFoundError(str(post_id))
        return post

    async def create(self, author_id: uuid.UUID, title: str, body: str) -> Post:
        now = utcnow()
        return await self._posts.add(
            Post(
                id=uuid.uuid4(),
                title=title,
                body=body,
                author_id=author_id,
                created_at=now,
                updated_at=now,
            )
        )

    async def update(self, post_id: uuid.UUID, principal: Principal, changes: PostChanges) -> Post:
        post = await self.get(post_id)
        if post.author_id != principal.user_id and not principal.can(ADMIN_SCOPE):
            raise NotAuthorError(str(post_id))
        if changes.title is not None:
            post.title = changes.title
        if changes.body is not None:
            post.body = changes.body
        post.updated_at = utcnow()
        await self._posts.save(post)
        return post

    async def delete(self, post_id: uuid.UUID) -> None:
        if not await self._posts.delete(post_id):
            raise PostNotFoundError(str(post_id))
