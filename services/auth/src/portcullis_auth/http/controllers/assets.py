"""The pages' stylesheet, served from the service itself."""

from __future__ import annotations

from litestar import Controller, Response, get

from portcullis_auth.http.pages.render import STYLES, STYLESHEET


class AssetsController(Controller):
    include_in_schema = False

    @get(STYLESHEET)
    async def stylesheet(self) -> Response[bytes]:
        return Response(
            STYLES,
            media_type="text/css; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )
