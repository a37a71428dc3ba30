"""The request class both services (and any app the guard is mounted on) use.

msgspec reports invalid UTF-8 inside a JSON string as `UnicodeDecodeError`,
which Litestar passes on as it is: a 500 for a malformed body. Here it is the
400 any other malformed JSON gets, answered in the app's own error format.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import ClientException


class PortcullisRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            return await super().json()
        except UnicodeDecodeError:
            raise ClientException("the request body is not valid UTF-8") from None
