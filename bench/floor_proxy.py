"""The "practical floor": a raw-ASGI pass-through proxy on uvicorn (uvloop, httptools).

POST /v1/chat/completions goes to the upstream through one aiohttp ClientSession; the answer
comes back as it arrives (streams chunk by chunk). No auth, no limits, no accounting.
Run: python bench/floor_proxy.py --port P --upstream http://127.0.0.1:U
"""

import argparse

import aiohttp
import uvicorn

UPSTREAM = ""
session: aiohttp.ClientSession | None = None


async def app(scope, receive, send):
    global session
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        msg = await receive()
        body, more = body + msg.get("body", b""), msg.get("more_body", False)
    if session is None:  # created in the serving loop, once
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))
    headers = {"content-type": "application/json"}
    async with session.post(UPSTREAM + "/v1/chat/completions", data=body, headers=headers) as r:
        ctype = r.headers.get("content-type", "application/json").encode()
        if ctype.startswith(b"text/event-stream"):
            await send(
                {
                    "type": "http.response.start",
                    "status": r.status,
                    "headers": [(b"content-type", ctype)],
                }
            )
            async for chunk in r.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        else:
            raw = await r.read()
            await send(
                {
                    "type": "http.response.start",
                    "status": r.status,
                    "headers": [
                        (b"content-type", ctype),
                        (b"content-length", str(len(raw)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": raw})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    UPSTREAM = args.upstream.rstrip("/")
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
