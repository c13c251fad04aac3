"""The route table type shared by the front doors and the ASGI app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from crossway.api.http import Request
from crossway.dialects import openai as openai_dialect
from crossway.errors import GatewayError

Handler = Callable[[Request], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # exact, or a prefix when it ends with "/"
    handler: Handler
    auth: bool = True
    # the usage endpoint name when every request here is accounted ("chat.completions")
    metered: str | None = None
    # how this front door's callers expect errors to look: (error, request id) -> body
    render_error: Callable[[GatewayError, str | None], bytes] = openai_dialect.error_body
    id_headers: tuple[bytes, ...] = (b"x-request-id",)
    # the status a caller of this door gets for an error's status (Gemini: 529 -> 503)
    map_status: Callable[[int], int] | None = None
    # the key may also come as `?key=` (Google's SDKs and docs use it)
    query_key: bool = False
