"""Driving an ASGI app's lifespan: start-up before the socket opens, shutdown after it closes."""

from __future__ import annotations

import asyncio
import logging

from crossway.server.http1 import App, Message

log = logging.getLogger("crossway.server")


class StartupFailed(RuntimeError):
    """The app said its start-up failed (or raised during it)."""


class Lifespan:
    def __init__(self, app: App) -> None:
        self._app = app
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._started: asyncio.Future[None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        loop = asyncio.get_running_loop()
        self._started = loop.create_future()
        self._stopped = loop.create_future()
        self._task = loop.create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        await self._started

    async def shutdown(self) -> None:
        if self._task is None or self._task.done() or self._stopped is None:
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._stopped

    async def _run(self) -> None:
        scope: Message = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        try:
            await self._app(scope, self._inbox.get, self._send)
        except BaseException as exc:
            if self._started is not None and not self._started.done():
                self._started.set_exception(StartupFailed(f"{type(exc).__name__}: {exc}"))
            else:
                log.exception("the app's lifespan failed")
        finally:
            if self._started is not None and not self._started.done():
                self._started.set_exception(StartupFailed("the app's lifespan ended early"))
            if self._stopped is not None and not self._stopped.done():
                self._stopped.set_result(None)

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        started, stopped = self._started, self._stopped
        assert started is not None and stopped is not None
        if kind == "lifespan.startup.complete":
            started.set_result(None)
        elif kind == "lifespan.startup.failed":
            started.set_exception(StartupFailed(message.get("message", "") or "start-up failed"))
        elif kind == "lifespan.shutdown.complete":
            stopped.set_result(None)
        elif kind == "lifespan.shutdown.failed":
            log.error("the app's shutdown failed: %s", message.get("message", ""))
            stopped.set_result(None)
