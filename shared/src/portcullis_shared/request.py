"""What both services (and any app the guard is mounted on) need of a request.

`PortcullisRequest`: msgspec reports invalid UTF-8 inside a JSON string as
`UnicodeDecodeError`, and JSON nested too deep as `RecursionError`; Litestar
passes both on as they are, a 500 for a malformed body. Here they are the 400
any other malformed JSON gets, answered in the app's own error format.

`until_disconnected`: returns once the client has gone, for work worth
dropping when nobody waits for its answer.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import ClientException
from litestar.types import Receive


class PortcullisRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            return await super().json()
        except (UnicodeDecodeError, RecursionError):
            raise ClientException("the request body is not valid JSON") from None


async def until_disconnected(receive: Receive) -> None:
    """Returns once the client has gone. Once the body is read, the server's next
    message is the disconnect (sent when the connection closes, or when the
    response is complete)."""
    while (await receive())["type"] != "http.disconnect":
        pass
