"""`python -m bench.serve_with SERVER TARGET PORT`: an app served by one of the servers
the bench compares, on the same options as `portcullis serve`.

SERVER is `granian` (what the serve commands run: `portcullis_shared.serving.serve`),
`uvicorn` (stock: httptools, uvloop) or `uvicorn-one-write` (uvicorn with the
transport the services used to run, `one_write_transport`). TARGET is an app factory,
"module:function", as the serve commands pass it.
"""

from __future__ import annotations

import sys
from typing import Any

from portcullis_shared.serving import serve

UVICORN_OPTIONS: dict[str, Any] = {
    "factory": True,
    "access_log": False,
    "proxy_headers": False,
    "log_level": "info",
    "http": "httptools",
    "loop": "uvloop",
    "ws": "none",
}


def main(server: str, target: str, port: int) -> None:
    if server == "granian":
        serve(target, host="127.0.0.1", port=port)
        return
    import uvicorn  # only these two need it

    options = dict(UVICORN_OPTIONS)
    if server == "uvicorn-one-write":
        from bench.one_write_transport import OneWriteHttpToolsProtocol

        options["http"] = OneWriteHttpToolsProtocol
    elif server != "uvicorn":
        raise SystemExit(f"unknown server {server!r}")
    uvicorn.run(target, host="127.0.0.1", port=port, **options)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
