"""Crossway's own server: listening, the once-a-second sweep, and a graceful stop.

A stop (SIGTERM or SIGINT, or `shutdown()`) closes the listening socket and every idle
connection, lets the requests in flight finish for up to `shutdown_timeout` seconds, with
`connection: close` on their answers, cancels what is still running after that, and then
runs the app's lifespan shutdown, which writes the pending usage events. A second signal
cuts the wait short.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from crossway.server.http1 import App, Connection, ServerState
from crossway.server.lifespan import Lifespan

log = logging.getLogger("crossway.server")


class Server:
    def __init__(
        self,
        app: App,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        keep_alive_timeout: float = 30.0,
        head_timeout: float = 30.0,
        shutdown_timeout: float = 30.0,
        backlog: int = 2048,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.keep_alive_timeout = keep_alive_timeout
        self.head_timeout = head_timeout
        self.shutdown_timeout = shutdown_timeout
        self.backlog = backlog
        self._lifespan = Lifespan(app)
        self._state: ServerState | None = None
        self._listener: asyncio.Server | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._hurry = asyncio.Event()

    async def start(self) -> None:
        """The app's start-up, then listening (`port` 0 picks a free port, then says which).
        Raises `StartupFailed`, or `OSError` if the address cannot be had."""
        loop = asyncio.get_running_loop()
        await self._lifespan.startup()
        state = self._state = ServerState(self.app, loop)
        try:
            self._listener = await loop.create_server(
                lambda: Connection(state),
                self.host,
                self.port,
                backlog=self.backlog,
                reuse_address=True,
            )
        except BaseException:
            await self._lifespan.shutdown()
            raise
        self.port = self._listener.sockets[0].getsockname()[1]
        self._ticker = loop.call_later(1.0, self._tick)

    def _tick(self) -> None:
        state = self._state
        assert state is not None
        state.date.refresh()
        now = state.loop.time()
        for conn in list(state.connections):
            if not conn.is_idle():
                continue
            if conn.idle_since is not None:
                if now - conn.idle_since > self.keep_alive_timeout:
                    conn.close()
            elif conn.in_head and now - conn.head_started > self.head_timeout:
                conn.refuse(408, "Request timeout: the request head took too long")
        self._ticker = state.loop.call_later(1.0, self._tick)

    def hurry(self) -> None:
        """Stop waiting for the requests in flight: a second signal."""
        self._hurry.set()

    async def shutdown(self) -> None:
        if self._stopped is not None:
            await asyncio.shield(self._stopped)
            return
        loop = asyncio.get_running_loop()
        self._stopped = loop.create_future()
        try:
            await self._drain()
            await self._lifespan.shutdown()
        finally:
            self._stopped.set_result(None)

    async def _drain(self) -> None:
        state = self._state
        if state is None:
            return
        state.shutting_down = True
        if self._listener is not None:
            self._listener.close()
        for conn in list(state.connections):
            if conn.is_idle():
                conn.close()
        deadline = state.loop.time() + self.shutdown_timeout
        hurry = asyncio.ensure_future(self._hurry.wait())
        try:
            while state.tasks and not hurry.done():
                left = deadline - state.loop.time()
                if left <= 0:
                    break
                await asyncio.wait(
                    {*state.tasks, hurry}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            hurry.cancel()
        if state.tasks:
            log.warning("stopping: %d request(s) still in flight are cancelled", len(state.tasks))
            for task in list(state.tasks):
                task.cancel()
            await asyncio.wait(set(state.tasks), timeout=5)
        for conn in list(state.connections):
            conn.close()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._listener is not None:
            await self._listener.wait_closed()

    async def serve_until_signalled(self) -> None:
        """Until SIGTERM or SIGINT, then a graceful stop (a second signal hurries it)."""
        loop = asyncio.get_running_loop()
        signalled = asyncio.Event()

        def on_signal() -> None:
            if signalled.is_set():
                self.hurry()
            signalled.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        try:
            await signalled.wait()
            await self.shutdown()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
