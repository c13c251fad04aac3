"""Serving the ASGI app over HTTP.

`builtin` is Crossway's own HTTP/1.1 server (`http1.py`: the protocol, `head.py`: answer
heads, `serve.py`: listening and stopping, `lifespan.py`); uvicorn and granian can be chosen
instead with `server.server` (`runners.py` starts each).
"""

from crossway.server.runners import SERVERS, Runner, settle_heap

__all__ = ["SERVERS", "Runner", "settle_heap"]
