"""Breakers shared through Redis, so every gateway stops sending to a broken deployment.

A gateway that opens a breaker writes `{prefix}:breaker:{deployment}` = the wall-clock time
the cool-down ends (ms), expiring with it; one that closes it (a probe succeeded) deletes it.
Every `every` seconds each gateway reads all of them in one MGET and opens, locally, the
breakers another gateway opened. Counting failures stays local: only the verdict is shared.
If Redis is unreachable, each gateway goes on with its own breakers and says so once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from crossway.limits.resp import RespClient
from crossway.routing.deployments import Deployment
from crossway.routing.health import Health

log = logging.getLogger("crossway.routing")


class SharedBreakers:
    def __init__(
        self,
        health: Health,
        client: RespClient,
        prefix: str,
        deployments: list[Deployment],
        every: float = 1.0,
    ) -> None:
        self.health = health
        self.client = client
        self.every = every
        self.deployments = deployments
        self.keys = [f"{prefix}:breaker:{d.key}" for d in deployments]
        self._key_of = {id(d): k for d, k in zip(deployments, self.keys, strict=True)}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._failing = False
        health.on_open = self._opened
        health.on_close = self._closed

    async def start(self) -> None:
        await self.sync()
        self._loop_task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for task in list(self._tasks):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        await self.client.close()

    async def sync(self) -> None:
        """Open here what another gateway opened (and is still open)."""
        if not self.keys:
            return
        try:
            values = await self.client.call("MGET", *self.keys)
        except Exception as exc:
            self._trouble(exc)
            return
        self._failing = False
        now_wall, now = time.time(), self.health.clock()
        for dep, value in zip(self.deployments, values, strict=True):
            if value is None:
                continue
            left = int(value) / 1000 - now_wall
            if left > 0:
                self.health.open_until(dep, now + left)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            await self.sync()

    def _opened(self, dep: Deployment, cooldown: float) -> None:
        until_ms = int((time.time() + cooldown) * 1000)
        ttl_ms = max(int(cooldown * 1000), 1)
        self._spawn(("SET", self._key_of[id(dep)], until_ms, "PX", ttl_ms))

    def _closed(self, dep: Deployment) -> None:
        self._spawn(("DEL", self._key_of[id(dep)]))

    def _spawn(self, command: tuple[object, ...]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a unit test driving Health by hand): nothing to share
            return
        task = loop.create_task(self._send(command))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, command: tuple[object, ...]) -> None:
        try:
            await self.client.call(*command)
        except Exception as exc:
            self._trouble(exc)

    def _trouble(self, exc: Exception) -> None:
        if not self._failing:
            log.warning("breakers are not shared: Redis is unreachable (%s)", exc)
        self._failing = True
