"""The simulated upstream server (aiohttp): OpenAI-format chat completions and embeddings.

It answers on any path ending in `/chat/completions` or `/embeddings`, so one server stands in
for every OpenAI-format vendor (OpenAI `/v1/...`, Azure `/openai/deployments/{d}/...?api-version`,
Ark `/api/v3/...`). Answers are deterministic and say they are simulated. It records what it
was sent (`requests`) and counts streams whose client went away (`cancelled`), for tests.
Faults per request: see `crossway.testing.faults`.

Run it alone: `python -m crossway.testing.upstream --port 9100`.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from crossway.testing import replies
from crossway.testing.faults import Faults

JSON = "application/json"


@dataclass(slots=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


def _error(
    status: int,
    message: str,
    kind: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return web.Response(status=status, body=orjson.dumps(body), content_type=JSON, headers=headers)


class SimulatedUpstream:
    def __init__(
        self,
        api_keys: set[str] | None = None,
        record: int = 1000,
        open_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.api_keys = api_keys  # None: any key (or none) is accepted
        self.open_prefixes = open_prefixes  # paths that need no key (a local server)
        self.requests: deque[Recorded] = deque(maxlen=record)
        self.cancelled = 0  # requests whose client went away before the answer was complete
        self.active = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- serving -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", self._dispatch)
        app.router.add_get("/health", self._health)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen in the running loop; returns the base URL (`http://host:port`)."""
        self._runner = web.AppRunner(self.app(), handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        sock = server.sockets[0]  # type: ignore[attr-defined]
        self.base_url = f"http://{host}:{sock.getsockname()[1]}"
        return self.base_url

    async def start_on_socket(self, sock: socket.socket) -> str:
        """Serve on a socket that is already bound (the demo binds it before start-up)."""
        self._runner = web.AppRunner(self.app(), handler_cancellation=True, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        host, port = sock.getsockname()[:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- handlers ------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def _authorized(self, request: web.Request) -> bool:
        if self.api_keys is None or request.path.startswith(self.open_prefixes):
            return True
        auth = request.headers.get("authorization", "")
        given = {
            auth[7:] if auth.lower().startswith("bearer ") else "",
            request.headers.get("api-key", ""),
            request.headers.get("x-api-key", ""),
        }
        return bool(given & self.api_keys)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                dict(request.query),
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )
        if not self._authorized(request):
            return _error(401, "Incorrect API key provided.", "invalid_request_error")
        faults = Faults.parse(body, request.headers.get("x-simulate"))
        self.active += 1
        try:
            return await self._answer(request, raw, body, faults)
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled += 1
            raise
        finally:
            self.active -= 1

    async def _answer(
        self, request: web.Request, raw: bytes, body: dict[str, Any], faults: Faults
    ) -> web.StreamResponse:
        if faults.hang:
            await asyncio.sleep(3600)
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        rid = "sim-" + replies.request_id(raw)
        if faults.status:
            headers = {"x-request-id": rid}
            if faults.retry_after is not None:
                headers["retry-after"] = str(faults.retry_after)
            kind = {429: "rate_limit_error", 401: "authentication_error"}.get(
                faults.status, "server_error" if faults.status >= 500 else "invalid_request_error"
            )
            return _error(
                faults.status, faults.message or f"simulated {faults.status} error", kind, headers
            )
        if faults.malformed:
            return web.Response(
                status=200,
                text="{this is not json",
                content_type=JSON,
                headers={"x-request-id": rid},
            )
        model = body.get("model") or _azure_deployment(request.path) or "simulated-model"
        if request.path.endswith("/embeddings"):
            return self._embeddings(body, model, rid)
        if request.path.endswith("/chat/completions"):
            if body.get("stream") is True:
                return await self._stream(request, body, model, rid, faults)
            return self._completion(body, model, rid, faults)
        return _error(404, f"Invalid URL (POST {request.path})")

    def _completion(
        self, body: dict[str, Any], model: str, rid: str, faults: Faults
    ) -> web.Response:
        messages = body.get("messages") or []
        calls = replies.tool_calls(body, rid)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "annotations": [],
        }
        if calls:
            message["tool_calls"] = calls
            completion = sum(len(c["function"]["arguments"]) // 4 + 5 for c in calls)
        else:
            words = replies.reply_words(model, messages, faults.chunks)
            message["content"] = "".join(words)
            completion = len(words)
        prompt = replies.prompt_tokens(messages)
        out: dict[str, Any] = {
            "id": f"chatcmpl-{rid}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if calls else "stop",
                }
            ],
            "service_tier": "default",
            "system_fingerprint": "fp_simulated",
        }
        if not faults.no_usage:
            out["usage"] = _usage(prompt, completion)
        return web.Response(
            body=orjson.dumps(out), content_type=JSON, headers={"x-request-id": rid}
        )

    async def _stream(
        self, request: web.Request, body: dict[str, Any], model: str, rid: str, faults: Faults
    ) -> web.StreamResponse:
        messages = body.get("messages") or []
        options = body.get("stream_options")
        with_usage = (
            isinstance(options, dict)
            and options.get("include_usage") is True
            and not faults.no_usage
        )
        base = {
            "id": f"chatcmpl-{rid}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_simulated",
        }
        calls = replies.tool_calls(body, rid)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data = {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if with_usage:
                data["usage"] = None
            return b"data: " + orjson.dumps(data) + b"\n\n"

        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        if calls:
            for i, call in enumerate(calls):
                events.append(
                    chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": i,
                                    "id": call["id"],
                                    "type": "function",
                                    "function": {"name": call["function"]["name"], "arguments": ""},
                                }
                            ]
                        }
                    )
                )
                args = call["function"]["arguments"]
                for j in range(0, len(args), 8):  # arguments arrive in fragments
                    events.append(
                        chunk(
                            {
                                "tool_calls": [
                                    {"index": i, "function": {"arguments": args[j : j + 8]}}
                                ]
                            }
                        )
                    )
            completion = sum(len(c["function"]["arguments"]) // 4 + 5 for c in calls)
            events.append(chunk({}, "tool_calls"))
        else:
            words = replies.reply_words(model, messages, faults.chunks)
            events.extend(chunk({"content": w}) for w in words)
            completion = len(words)
            events.append(chunk({}, "stop"))
        if with_usage:
            usage = {
                **base,
                "choices": [],
                "usage": _usage(replies.prompt_tokens(messages), completion),
            }
            events.append(b"data: " + orjson.dumps(usage) + b"\n\n")
        events.append(b"data: [DONE]\n\n")

        resp = web.StreamResponse(
            headers={
                "content-type": "text/event-stream",
                "cache-control": "no-cache",
                "x-request-id": rid,
            }
        )
        await resp.prepare(request)
        if faults.ttfb_ms:
            await asyncio.sleep(faults.ttfb_ms / 1000)
        delay = faults.chunk_delay_ms / 1000
        for n, event in enumerate(events):
            if faults.cut_after is not None and n >= faults.cut_after:
                assert request.transport is not None
                request.transport.close()  # drop the connection mid-stream
                return resp
            if faults.error_after is not None and n >= faults.error_after:
                error = {
                    "error": {
                        "message": "simulated in-stream failure",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
                await resp.write(b"data: " + orjson.dumps(error) + b"\n\n")
                await resp.write_eof()
                return resp
            await resp.write(event)
            if delay:
                await asyncio.sleep(delay)
        await resp.write_eof()
        return resp

    def _embeddings(self, body: dict[str, Any], model: str, rid: str) -> web.Response:
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            return _error(400, "'input' must be a non-empty string or array")
        requested = body.get("dimensions")
        dims = requested if isinstance(requested, int) and requested > 0 else 256
        as_b64 = body.get("encoding_format") == "base64"
        data = []
        tokens = 0
        for i, item in enumerate(inputs):
            text = item if isinstance(item, str) else orjson.dumps(item).decode()
            tokens += max(1, len(text) // 4)
            vec = replies.embedding(text, dims)
            data.append(
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": replies.base64_floats(vec) if as_b64 else vec,
                }
            )
        out = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return web.Response(
            body=orjson.dumps(out), content_type=JSON, headers={"x-request-id": rid}
        )


def _azure_deployment(path: str) -> str | None:
    parts = path.split("/")
    if "deployments" in parts:
        i = parts.index("deployments")
        if i + 1 < len(parts):
            return parts[i + 1]
    return None


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Run Crossway's simulated upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(
        SimulatedUpstream(record=0).app(),
        host=args.host,
        port=args.port,
        access_log=None,
        print=lambda *_: None,
    )


if __name__ == "__main__":
    main()
