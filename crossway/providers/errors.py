"""What an upstream's error answer becomes for our client.

- 4xx other than 401/403 pass back with the upstream's status and message: the request was bad.
- 401/403 mean Crossway's own credentials for that upstream were refused, not the caller's:
  they become 502 so the caller does not think its Crossway key is wrong.
- 429 passes back with `retry-after`; 5xx become 502, 503, 504 (or Anthropic's 529,
  overloaded) naming the vendor.
Both OpenAI's and Anthropic's error bodies keep the message in `error.message`.
"""

from __future__ import annotations

from collections.abc import Mapping

from crossway.dialects import openai as openai_dialect
from crossway.errors import GatewayError, UpstreamError
from crossway.providers.base import Provider

_PASSED_HEADERS = ("retry-after", "retry-after-ms")
_RATE_HEADERS_PREFIX = "x-ratelimit-"


def upstream_error(
    provider: Provider, status: int, body: bytes, headers: Mapping[str, str]
) -> GatewayError:
    parsed = openai_dialect.parse_error(body)
    if parsed is not None and isinstance(parsed.get("message"), str):
        message = provider.redact(parsed["message"])
    else:
        text = body[:300].decode("utf-8", "replace").strip()
        message = provider.redact(text) or "(empty body)"
    passed = {
        k.lower(): v
        for k, v in headers.items()
        if k.lower() in _PASSED_HEADERS or k.lower().startswith(_RATE_HEADERS_PREFIX)
    }
    who = f"{provider.name} ({provider.vendor})"
    if status in (401, 403):
        return UpstreamError(
            f"upstream {who} refused Crossway's credentials ({status}): {message}",
            vendor=provider.vendor,
            status=502,
            kind="upstream_auth_error",
            retryable=False,
        )
    if 400 <= status < 500:
        kind = parsed.get("type") if parsed and isinstance(parsed.get("type"), str) else None
        code = parsed.get("code") if parsed else None
        param = parsed.get("param") if parsed else None
        return GatewayError(
            message,
            status=status,
            kind=kind or ("rate_limit_error" if status == 429 else "invalid_request_error"),
            code=code if isinstance(code, str) else None,
            param=param if isinstance(param, str) else None,
            headers=passed,
        )
    out_status = status if status in (503, 504, 529) else 502
    return UpstreamError(
        f"upstream {who} returned {status}: {message}",
        vendor=provider.vendor,
        status=out_status,
        headers=passed,
    )
