from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from portcullis_resource.db.models import Post


class PostRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, post_id: uuid.UUID) -> Post | None:
        return await self._session.get(Post, post_id)

    async def list(self, *, limit: int, offset: int) -> list[Post]:
        result = await self._session.execute(
            select(Post)
            .order_by(Post.created_at.desc(), Post.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return list(result.scalars())

    async def add(self, post: Post) -> Post:
        self._session.add(post)
        await self._session.flush()
        return post

    async def save(self, post: Post) -> None:
        await self._session.flush()

    async def delete(self, post_id: uuid.UUID) -> bool:
        result = await self._session.execute(delete(Post).where(Post.id == post_id))
        return bool(result.rowcount)  # type: ignore[attr-defined]
