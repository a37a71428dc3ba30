"""Request and response bodies of the posts API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from portcullis_resource.db.models import Post
from portcullis_shared.text import NO_NUL

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_NUL)]
Body = Annotated[str, msgspec.Meta(max_length=20_000, pattern=NO_NUL)]


class PostCreate(msgspec.Struct, forbid_unknown_fields=True):
    title: Title
    body: Body


class PostUpdate(msgspec.Struct, forbid_unknown_fields=True):
    title: Title | None = None
    body: Body | None = None


class PostOut(msgspec.Struct):
    id: uuid.UUID
    title: str
    body: str
    author_id: uuid.UUID
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, post: Post) -> PostOut:
        return cls(
            id=post.id,
            title=post.title,
            body=post.body,
            author_id=post.author_id,
            created_at=post.created_at,
            updated_at=post.updated_at,
        )


class PostPage(msgspec.Struct):
    items: list[PostOut]
    limit: int
    offset: int
    next_offset: int | None


class Me(msgspec.Struct):
    subject: str
    user_id: uuid.UUID | None
    client_id: str
    is_client: bool
    scopes: list[str]
    token_id: str
    grant_id: str
    expires_at: int
