"""GET /playground: one page to try every flow by hand (only when PORTCULLIS_PLAYGROUND is on)."""

from __future__ import annotations

from importlib import resources

from litestar import Controller, Response, get

from portcullis_resource.runtime import ResourceRuntime
from portcullis_shared.dependencies import Injected

# No asset from another site, no inline script, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_ASSETS = resources.files("portcullis_resource") / "playground"


def _asset(name: str, media_type: str) -> Response[bytes]:
    return Response((_ASSETS / name).read_bytes(), media_type=media_type, headers=SECURITY_HEADERS)


class PlaygroundController(Controller):
    path = "/playground"
    opt = {"exclude_from_auth": True}  # noqa: RUF012 - Litestar reads it as a class attribute
    include_in_schema = False

    @get("/")
    async def page(self) -> Response[bytes]:
        return _asset("index.html", "text/html; charset=utf-8")

    @get("/app.js")
    async def script(self) -> Response[bytes]:
        return _asset("app.js", "text/javascript; charset=utf-8")

    @get("/config.json")
    async def config(self, runtime: Injected[ResourceRuntime]) -> Response[dict[str, str | None]]:
        """What the page needs to sign a user in with the authorization code flow."""
        settings = runtime.settings
        return Response(
            {
                "issuer": settings.guard.issuer,
                "authorize_url": f"{settings.guard.issuer}/oauth/authorize",
                "client_id": settings.playground_client_id,
            },
            headers=SECURITY_HEADERS,
        )

    @get("/style.css")
    async def style(self) -> Response[bytes]:
        return _asset("style.css", "text/css; charset=utf-8")
