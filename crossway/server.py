"""Running the ASGI app: uvicorn (default) or granian, both on uvloop.

Both shut down gracefully on SIGTERM and SIGINT: the app's lifespan shutdown runs, which
flushes pending usage events and closes the upstream pools.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import socket

from crossway.api.asgi import CrosswayApp


def settle_heap() -> None:
    """Once started: what start-up built (config, catalog, modules) is moved out of the
    collector's sight, and young objects are collected less often. A request allocates a few
    hundred short-lived objects, nearly all freed by reference counting; at the default
    threshold the collector ran every couple of requests and showed in profiles."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def serve_uvicorn(app: CrosswayApp, host: str, port: int, banner: str) -> None:
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # listening now: only then say so
                settle_heap()
                print(banner, flush=True)

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=30,
        proxy_headers=False,
        backlog=2048,
    )
    Server(config).run()


def serve_granian(app: CrosswayApp, host: str, port: int, banner: str) -> None:
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
            app, address=host, port=port, interface=Interfaces.ASGI, backlog=2048, log_enabled=False
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stop)
        await server.serve()

    uvloop.run(main())


SERVERS = {"uvicorn": serve_uvicorn, "granian": serve_granian}
