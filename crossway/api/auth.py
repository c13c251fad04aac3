"""Who is calling: the master key or a virtual key, checked by hash.

Neither secret is held in memory: only the master key's SHA-256 digest and the digests of
virtual keys (looked up in a dict, refreshed from the store). A token is hashed once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass

from crossway.errors import AuthenticationFailed, ServiceUnavailable
from crossway.store.keys import ApiKey, KeyStore

log = logging.getLogger("crossway.auth")


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    name: str
    is_master: bool = False
    key: ApiKey | None = None
    expires_at: float | None = None  # unix time, checked on every request


MASTER = Principal(id="master", name="master key", is_master=True)


def principal_of(key: ApiKey) -> Principal:
    return Principal(id=key.id, name=key.name, key=key, expires_at=key.expires_ts)


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


class KeyRing:
    """Virtual keys by hash, in memory; reloaded every `refresh_seconds` from the store.

    A key created by another gateway process is found on first use (a miss asks the store,
    and a miss that stays a miss is remembered briefly, so bad tokens cannot hammer the
    database). A change made through this process's admin API takes effect at once; one made
    through another process within `refresh_seconds`.
    """

    def __init__(self, store: KeyStore, refresh_seconds: float = 5.0) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self._by_hash: dict[str, ApiKey] = {}
        self._misses: dict[str, float] = {}
        # enabled keys' principals by raw digest: the one look-up most requests need
        self._principals: dict[bytes, Principal] = {}
        self._task: asyncio.Task[None] | None = None
        # counts this process's own changes (put, drop): a read of the store that one
        # overtook is older than what this process knows, and is not kept
        self._changes = 0

    async def load(self) -> None:
        changes = self._changes
        keys = await self.store.list()
        if changes != self._changes:
            return  # a key changed here while the list was read: the next reload reads anew
        self._by_hash = {k.key_hash: k for k in keys}
        self._misses.clear()
        self._principals.clear()

    async def start(self) -> None:
        await self.load()
        self._task = asyncio.get_running_loop().create_task(self._refresh())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.load()
            except Exception:  # the store is down: keep serving from what is known
                log.warning("could not reload keys from the store", exc_info=True)

    def put(self, key: ApiKey) -> None:
        self._changes += 1
        for old_hash in [h for h, k in self._by_hash.items() if k.id == key.id]:
            del self._by_hash[old_hash]
        self._by_hash[key.key_hash] = key
        self._misses.pop(key.key_hash, None)
        self._principals.clear()

    def drop(self, key_id: str) -> None:
        self._changes += 1
        for old_hash in [h for h, k in self._by_hash.items() if k.id == key_id]:
            del self._by_hash[old_hash]
        self._principals.clear()

    def known(self, digest: bytes) -> Principal | None:
        """The principal of an enabled key seen before, without awaiting anything."""
        return self._principals.get(digest)

    def remember(self, digest: bytes, key: ApiKey) -> Principal:
        principal = principal_of(key)
        if key.enabled and self._by_hash.get(key.key_hash) is key:
            self._principals[digest] = principal
        return principal

    async def find(self, key_hash: str) -> ApiKey | None:
        key = self._by_hash.get(key_hash)
        if key is not None:
            return key
        now = time.monotonic()
        if self._misses.get(key_hash, 0.0) > now:
            return None
        changes = self._changes
        try:
            key = await self.store.by_hash(key_hash)
        except Exception:
            log.warning("could not look a key up in the store", exc_info=True)
            raise ServiceUnavailable(
                "the key store cannot be reached to check this key; try again"
            ) from None
        if key is None:
            if len(self._misses) > 10_000:
                self._misses.clear()
            self._misses[key_hash] = now + self.refresh_seconds
            return None
        if changes == self._changes:  # else it may be a key this process just dropped
            self._by_hash[key_hash] = key
        return key


class Authenticator:
    def __init__(self, master_key_hash: bytes, keys: KeyRing | None = None) -> None:
        self._master = master_key_hash
        self.keys = keys

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise AuthenticationFailed(
                "no API key: send it as 'Authorization: Bearer <key>'",
                code="missing_api_key",
                retryable=False,
            )
        digest = hash_key(token)
        if hmac.compare_digest(digest, self._master):
            return MASTER
        if self.keys is None:
            raise _invalid()
        principal = self.keys.known(digest)
        if principal is None:
            key = await self.keys.find(digest.hex())
            if key is None:
                raise _invalid()
            if not key.enabled:
                raise AuthenticationFailed(
                    f"the API key {key.prefix}... is disabled",
                    code="key_disabled",
                    retryable=False,
                )
            principal = self.keys.remember(digest, key)
        if principal.expires_at is not None and principal.expires_at <= time.time():
            assert principal.key is not None
            raise AuthenticationFailed(
                f"the API key {principal.key.prefix}... has expired",
                code="key_expired",
                retryable=False,
            )
        return principal


def _invalid() -> AuthenticationFailed:
    return AuthenticationFailed("the API key is not valid", code="invalid_api_key", retryable=False)
