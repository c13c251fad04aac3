"""Running the ASGI app: on Crossway's own server (`builtin`, the default), uvicorn or
granian, all on uvloop.

Each shuts down gracefully on SIGTERM and SIGINT: the app's lifespan shutdown runs, which
flushes pending usage events and closes the upstream pools.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
import sys
from collections.abc import Callable

from crossway.api.asgi import CrosswayApp
from crossway.config import ServerConfig


def settle_heap() -> None:
    """Once started: what start-up built (config, catalog, modules) is moved out of the
    collector's sight, and young objects are collected less often. A request allocates a few
    hundred short-lived objects, nearly all freed by reference counting; at the default
    threshold the collector ran every couple of requests and showed in profiles."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def serve_builtin(app: CrosswayApp, config: ServerConfig, banner: str) -> None:
    import uvloop

    from crossway.server.lifespan import StartupFailed
    from crossway.server.serve import Server

    async def main() -> int:
        server = Server(
            app,
            config.host,
            config.port,
            keep_alive_timeout=config.keep_alive_timeout,
            shutdown_timeout=config.shutdown_timeout,
        )
        try:
            await server.start()
        except StartupFailed as exc:
            print(f"Crossway did not start: {exc}", file=sys.stderr, flush=True)
            return 3
        except OSError as exc:
            print(
                f"Crossway could not listen on {config.host}:{config.port}: {exc.strerror or exc}",
                file=sys.stderr,
                flush=True,
            )
            return 1
        settle_heap()
        print(banner, flush=True)
        await server.serve_until_signalled()
        return 0

    code = uvloop.run(main())
    if code:
        raise SystemExit(code)


def serve_uvicorn(app: CrosswayApp, config: ServerConfig, banner: str) -> None:
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # listening now: only then say so
                settle_heap()
                print(banner, flush=True)

    uvicorn_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=int(config.keep_alive_timeout),
        timeout_graceful_shutdown=int(config.shutdown_timeout),
        proxy_headers=False,
        backlog=2048,
    )
    Server(uvicorn_config).run()


def serve_granian(app: CrosswayApp, config: ServerConfig, banner: str) -> None:
    import uvloop

    try:
        from granian.constants import Interfaces
        from granian.server.embed import Server
    except ImportError:
        raise SystemExit(
            "granian is not installed: pip install 'crossway[granian]', or use --server uvicorn"
        ) from None

    async def announce() -> None:
        # granian binds before the lifespan starts: the last start-up step may say so
        settle_heap()
        print(banner, flush=True)

    app.on_startup.append(announce)

    async def main() -> None:
        server = Server(
            app,
            address=config.host,
            port=config.port,
            interface=Interfaces.ASGI,
            backlog=2048,
            log_enabled=False,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stop)
        await server.serve()

    uvloop.run(main())


Runner = Callable[[CrosswayApp, ServerConfig, str], None]
SERVERS: dict[str, Runner] = {
    "builtin": serve_builtin,
    "uvicorn": serve_uvicorn,
    "granian": serve_granian,
}
