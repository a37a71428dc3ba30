"""How both services describe their API, and the headers every API answer carries.

Only the OpenAPI document is served (`/schema/openapi.json`): Litestar's
explorer pages load their scripts from a CDN, and on the posts service they
would share an origin with the playground and the login proxy. Any OpenAPI
explorer can load the document instead. Every JSON answer carries a CSP that
lets it load nothing and be framed nowhere; a page that needs more (the
playground) sets its own.
"""

from __future__ import annotations

from litestar.datastructures import ResponseHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

API_RESPONSE_HEADERS = [
    ResponseHeader(
        name="Content-Security-Policy", value="default-src 'none'; frame-ancestors 'none'"
    ),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
]


def openapi_config(title: str) -> OpenAPIConfig:
    """The document at /schema/openapi.json, and nothing else under /schema."""
    return OpenAPIConfig(
        title=title, version="0.1.0", path="/schema", render_plugins=[JsonRenderPlugin()]
    )
