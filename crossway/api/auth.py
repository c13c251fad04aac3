"""Who is calling: the key from the request, checked in constant time.

Only a hash of the master key is held in memory. Virtual keys join here with the store.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from crossway.errors import AuthenticationFailed


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    name: str
    is_master: bool = False


MASTER = Principal(id="master", name="master key", is_master=True)


def hash_key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def token_from(authorization: str | None, api_key: str | None) -> str | None:
    """`Authorization: Bearer <key>`, or an `api-key` / `x-api-key` header."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return api_key.strip() if api_key else None


class Authenticator:
    def __init__(self, master_key_hash: bytes) -> None:
        self._master = master_key_hash

    def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise AuthenticationFailed(
                "no API key: send it as 'Authorization: Bearer <key>'",
                code="missing_api_key",
                retryable=False,
            )
        if hmac.compare_digest(hash_key(token), self._master):
            return MASTER
        raise AuthenticationFailed(
            "the API key is not valid", code="invalid_api_key", retryable=False
        )
