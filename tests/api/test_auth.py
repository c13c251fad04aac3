"""The key ring: a reload or a look-up that a change in this process overtook is not kept."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from crossway.api.auth import KeyRing
from crossway.store.keys import ApiKey


class SlowStore:
    """A key store whose reads wait until they are let go, as under a slow database."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = keys
        self.go = asyncio.Event()

    async def list(self) -> list[ApiKey]:
        snapshot = list(self.keys)
        await self.go.wait()
        return snapshot

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        found = next((k for k in self.keys if k.key_hash == key_hash), None)
        await self.go.wait()
        return found


def key(n: int) -> ApiKey:
    return ApiKey(id=f"key_{n}", name=f"k{n}", key_hash=f"h{n}", prefix="sk-cw-x")


async def ring_of(store: SlowStore) -> KeyRing:
    ring = KeyRing(store)  # type: ignore[arg-type]
    store.go.set()
    await ring.load()
    store.go.clear()
    return ring


async def test_a_reload_that_a_delete_overtook_does_not_bring_the_key_back() -> None:
    store = SlowStore([key(1)])
    ring = await ring_of(store)
    reload = asyncio.create_task(ring.load())  # reads the list with key 1 still in it
    await asyncio.sleep(0)
    store.keys.clear()  # deleted through this process's admin API meanwhile
    ring.drop("key_1")
    store.go.set()
    await reload
    store.keys.append(key(9))  # a later reload is kept, and sees the store as it is now
    assert await ring.find("h1") is None
    await ring.load()
    assert await ring.find("h9") is not None and await ring.find("h1") is None


async def test_a_reload_that_an_edit_overtook_keeps_the_edit() -> None:
    store = SlowStore([key(1)])
    ring = await ring_of(store)
    reload = asyncio.create_task(ring.load())
    await asyncio.sleep(0)
    disabled = dataclasses.replace(key(1), enabled=False)
    store.keys[:] = [disabled]
    ring.put(disabled)
    store.go.set()
    await reload
    found: Any = await ring.find("h1")
    assert found is disabled and found.enabled is False


async def test_a_look_up_that_a_delete_overtook_is_not_remembered() -> None:
    store = SlowStore([key(1)])
    ring = await ring_of(store)
    ring.drop("key_1")  # not in memory now: the next look-up asks the store
    look_up = asyncio.create_task(ring.find("h1"))
    await asyncio.sleep(0)
    store.keys.clear()
    ring.drop("key_1")  # the delete completes while the store is being asked
    store.go.set()
    assert await look_up is not None  # asked before the delete: answered as it was then
    assert await ring.find("h1") is None  # but not kept
