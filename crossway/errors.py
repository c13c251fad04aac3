"""Errors the gateway raises, independent of any wire format.

A front door renders a `GatewayError` in its caller's dialect (see `crossway.dialects`).
"""

from __future__ import annotations


class GatewayError(Exception):
    """An error with an HTTP status, a kind and the field at fault.

    `kind` uses OpenAI's `error.type` vocabulary (`invalid_request_error`, ...); other dialects
    map it to their own names.
    """

    status: int = 500
    kind: str = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        kind: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if kind is not None:
            self.kind = kind
        self.param = param
        self.code = code
        self.headers = headers or {}
        # None: let the client's SDK decide from the status code
        self.retryable = retryable


class InvalidRequest(GatewayError):
    status = 400
    kind = "invalid_request_error"


class AuthenticationFailed(GatewayError):
    status = 401
    kind = "authentication_error"


class PermissionDenied(GatewayError):
    status = 403
    kind = "permission_error"


class NotFound(GatewayError):
    status = 404
    kind = "not_found_error"


class PayloadTooLarge(GatewayError):
    status = 413
    kind = "request_too_large"


class ServiceUnavailable(GatewayError):
    """A part Crossway depends on (its key store, its limiter) cannot be reached: try again."""

    status = 503
    kind = "service_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"retry-after": "2"})


class UpstreamError(GatewayError):
    """The upstream failed or could not be reached (502/503/504)."""

    status = 502
    kind = "upstream_error"

    def __init__(self, message: str, *, vendor: str, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.vendor = vendor
