"""The posts API: every route against each kind of token."""

from __future__ import annotations

import uuid

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from portcullis_shared.testing import TestTokens

Client = AsyncTestClient[Litestar]


async def create_post(
    http: Client, tokens: TestTokens, author: uuid.UUID, title: str = "Hello"
) -> dict[str, object]:
    response = await http.post(
        "/api/posts",
        json={"title": title, "body": "first post"},
        headers=tokens.acting_as(author, scopes=["read-posts", "write-posts"]),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_user_with_write_scope_creates_a_post_as_its_author(
    posts_http: Client, tokens: TestTokens, author_id: uuid.UUID
) -> None:
    post = await create_post(posts_http, tokens, author_id)
    assert post["author_id"] == str(author_id)
    assert post["title"] == "Hello"
    assert post["created_at"] == post["updated_at"]


async def test_posts_are_read_with_read_scope(
    posts_http: Client, tokens: TestTokens, author_id: uuid.UUID
) -> None:
    post = await create_post(posts_http, tokens, author_id)
    reader = tokens.acting_as(uuid.uuid4(), scopes=["read-posts"])
    one = await posts_http.get(f"/api/posts/{post['id']}", headers=reader)
    assert one.status_code == 200
    assert one.json()["id"] == post["id"]
    page = await posts_http.get("/api/posts", headers=reader)
    assert page.status_code == 200
    assert [p["id"] for p in page.json()["items"]] == [post["id"]]


async def test_client_credentials_token_may_read_but_not_write(
    posts_http: Client, tokens: TestTokens, author_id: uuid.UUID
) -> None:
    await create_post(posts_http, tokens, author_id)
    machine = tokens.acting_as_client("reporter", scopes=["read-posts", "write-posts"])
    assert (await posts_http.get("/api/posts", headers=machine)).status_code == 200
    write = await posts_http.post("/api/posts", json={"title": "x", "body": "y"}, headers=machine)
    assert write.status_code == 403
    assert 'error="insufficient_scope"' in write.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("method", "path_suffix", "scopes"),
    [
        ("GET", "", []),
        ("GET", "/{id}", ["write-posts"]),
        ("POST", "", ["read-posts"]),
        ("PATCH", "/{id}", ["read-posts"]),
        ("DELETE", "/{id}", ["read-posts", "write-posts"]),
    ],
)
async def test_each_route_refuses_a_token_without_its_scope(
    posts_http: Client,
    tokens: TestTokens,
    author_id: uuid.UUID,
    method: str,
    path_suffix: str,
    scopes: list[str],
) -> None:
    post = await create_post(posts_http, tokens, author_id)
    path = "/api/posts" + path_suffix.replace("{id}", str(post["id"]))
    response = await posts_http.request(
        method,
        path,
        json={"title": "t", "body": "b"} if method in {"POST", "PATCH"} else None,
        headers=tokens.acting_as(author_id, scopes=scopes),
    )
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert "scope=" in challenge


async def test_only_the_author_may_edit_a_post(
    posts_http: Client, tokens: TestTokens, author_id: uuid.UUID
) -> None:
    post = await create_post(posts_http, tokens, author_id)
    stranger = tokens.acting_as(uuid.uuid4(), scopes=["read-posts", "write-posts"])
    refused = await posts_http.patch(
        f"/api/posts/{post['id']}", json={"title": "mine now"}, headers=stranger
    )
    assert refused.status_code == 403
    assert 'scope="admin"' in refused.headers["www-authenticate"]
    author = tokens.acting_as(author_id, scopes=["write-posts"])
    edited = await posts_http.patch(
        f"/api/posts/{post['id']}", json={"title": "Edited"}, headers=author
    )
    assert edited.status_code == 200
    assert edited.json()["title"] == "Edited"
    assert edited.json()["body"] == "first post"
    assert edited.json()["updated_at"] >= edited.json()["created_at"]


async def test_an_admin_may_edit_and_delete_any_post(
    posts_http: Client, tokens: TestTokens, author_id: uuid.UUID
) -> None:
    post = await create_post(posts_http, tokens, author_id)
    admin = tokens.acting_as(uuid.uuid4(), scopes=["read-posts", "write-posts", "admin"])
    edited = await posts_http.patch(
        f"/api/posts/{post['id']}", json={"body": "moderated"}, headers=admin
    )
    assert edited.status_code == 200
    assert edited.json()["author_id"] == str(author_id)
    deleted = await posts_http.delete(f"/api/posts/{post['id']}", headers=admin)
    assert deleted.status_code == 204
    gone = await posts_http.get(f"/api/posts/{post['id']}", headers=admin)
    assert gone.status_code == 404
    assert gone.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "body",
    [
        {"title": "", "body": "x"},
        {"title": "x" * 201, "body": "x"},
        {"body": "no title"},
        {"title": "t", "body": "b", "author_id": str(uuid.uuid4())},
        {"title": 5, "body": "b"},
        "not an object",
    ],
)
async def test_invalid_bodies_get_400_with_a_clear_message(
    posts_http: Client, tokens: TestTokens, author_id: uuid.UUID, body: object
) -> None:
    response = await posts_http.post(
        "/api/posts", json=body, headers=tokens.acting_as(author_id, scopes=["write-posts"])
    )
    assert response.status_code == 400
    payload = response.json()
    assert payload["error"] == "invalid_request"
    assert payload["error_description"]
    listed = await posts_http.get(
        "/api/posts", headers=tokens.acting_as(author_id, scopes=["read-posts"])
    )
    assert listed.json()["items"] == []


async def test_malformed_json_is_400_not_500(
    posts_http: Client, tokens: TestTokens, author_id: uuid.UUID
) -> None:
    headers = {
        **tokens.acting_as(author_id, scopes=["write-posts"]),
        "Content-Type": "application/json",
    }
    response = await posts_http.post("/api/posts", content=b"{not json", headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_unknown_and_malformed_post_ids(posts_http: Client, tokens: TestTokens) -> None:
    reader = tokens.acting_as(uuid.uuid4(), scopes=["read-posts"])
    assert (await posts_http.get(f"/api/posts/{uuid.uuid4()}", headers=reader)).status_code == 404
    assert (await posts_http.get("/api/posts/not-a-uuid", headers=reader)).status_code in {400, 404}


async def test_list_is_paginated_newest_first(
    posts_http: Client, tokens: TestTokens, author_id: uuid.UUID
) -> None:
    ids = [
        (await create_post(posts_http, tokens, author_id, title=f"post {i}"))["id"]
        for i in range(5)
    ]
    reader = tokens.acting_as(author_id, scopes=["read-posts"])
    first = (await posts_http.get("/api/posts?limit=2", headers=reader)).json()
    assert [p["id"] for p in first["items"]] == ids[::-1][:2]
    assert first["next_offset"] == 2
    rest = (await posts_http.get("/api/posts?limit=10&offset=2", headers=reader)).json()
    assert [p["id"] for p in rest["items"]] == ids[::-1][2:]
    assert rest["next_offset"] is None
    bad = await posts_http.get("/api/posts?limit=1000", headers=reader)
    assert bad.status_code == 400


async def test_me_tells_who_the_token_speaks_for(
    posts_http: Client, tokens: TestTokens, author_id: uuid.UUID
) -> None:
    user = (
        await posts_http.get("/api/me", headers=tokens.acting_as(author_id, scopes=["read-posts"]))
    ).json()
    assert user["user_id"] == str(author_id)
    assert user["is_client"] is False
    assert user["scopes"] == ["read-posts"]
    machine = (await posts_http.get("/api/me", headers=tokens.acting_as_client("reporter"))).json()
    assert machine["is_client"] is True
    assert machine["user_id"] is None
    assert machine["client_id"] == "reporter"


async def test_health_needs_no_token_but_the_api_does(posts_http: Client) -> None:
    assert (await posts_http.get("/healthz")).status_code == 200
    assert (await posts_http.get("/readyz")).status_code == 200
    response = await posts_http.get("/api/posts")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="posts"'


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_invalid_utf8_inside_a_json_string_is_400(
    posts_http: Client, tokens: TestTokens, author_id: uuid.UUID, method: str
) -> None:
    post = await create_post(posts_http, tokens, author_id)
    path = "/api/posts" if method == "POST" else f"/api/posts/{post['id']}"
    response = await posts_http.request(
        method,
        path,
        content=b'{"title": "\xff", "body": "b"}',
        headers={
            **tokens.acting_as(author_id, scopes=["read-posts", "write-posts"]),
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    unchanged = await posts_http.get(
        f"/api/posts/{post['id']}", headers=tokens.acting_as(author_id, scopes=["read-posts"])
    )
    assert unchanged.json()["title"] == post["title"]


@pytest.mark.parametrize(
    "body",
    [{"title": "a\x00b", "body": "b"}, {"title": "t", "body": "nul\x00"}],
    ids=["title", "body"],
)
async def test_a_nul_character_is_400_not_a_database_error(
    posts_http: Client, tokens: TestTokens, author_id: uuid.UUID, body: dict[str, str]
) -> None:
    writer = tokens.acting_as(author_id, scopes=["read-posts", "write-posts"])
    created = await posts_http.post("/api/posts", json=body, headers=writer)
    assert created.status_code == 400, created.text
    assert created.json()["error"] == "invalid_request"
    post = await create_post(posts_http, tokens, author_id)
    edited = await posts_http.patch(f"/api/posts/{post['id']}", json=body, headers=writer)
    assert edited.status_code == 400, edited.text
    listed = await posts_http.get("/api/posts", headers=writer)
    assert [item["title"] for item in listed.json()["items"]] == [post["title"]]


async def test_the_api_description_loads_nothing_from_other_sites(posts_http: Client) -> None:
    """The explorer pages (which pull scripts from a CDN) are not served beside the
    playground and the login proxy; the description itself is, under a strict CSP."""
    for explorer in ("/schema/swagger", "/schema/redoc", "/schema/elements", "/schema/rapidoc"):
        assert (await posts_http.get(explorer)).status_code == 404, explorer
    described = await posts_http.get("/schema/openapi.json")
    assert described.status_code == 200
    csp = described.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
