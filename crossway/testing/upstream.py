"""The simulated upstream: OpenAI-format chat completions and embeddings, deterministic.

It answers on any path ending in `/chat/completions` or `/embeddings`, so one server stands in
for every OpenAI-format vendor (OpenAI `/v1/...`, Azure `/openai/deployments/{d}/...?api-version`,
Ark `/api/v3/...`). It also speaks Anthropic's Messages API on any path ending in `/messages`
or `/messages/count_tokens` (see `crossway.testing.anthropic`), and Google's Gemini API on any
path with `/models/{model}:{action}`, AI Studio's and Vertex's (see `crossway.testing.gemini`).
Answers say they are simulated.
It records what it was sent (`requests`) and counts answers whose client went away
(`cancelled`), for tests. Faults per request: see `crossway.testing.faults`.

Run it alone: `python -m crossway.testing --port 9100`.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from crossway.testing import anthropic, gemini, media, replies
from crossway.testing.faults import Faults
from crossway.testing.server import Cut, HTTPServer, Reply, Request

JSON = {"content-type": "application/json"}
_UPLOADS = ("/audio/transcriptions", "/audio/translations")  # multipart, not JSON
_STREAM_ERROR = (
    b"data: "
    + orjson.dumps(
        {
            "error": {
                "message": "simulated in-stream failure",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }
    )
    + b"\n\n"
)


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
) -> Reply:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return Reply(status, {**JSON, **(headers or {})}, orjson.dumps(body))


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


def _azure_deployment(path: str) -> str | None:
    parts = path.split("/")
    if "deployments" in parts:
        i = parts.index("deployments")
        if i + 1 < len(parts):
            return parts[i + 1]
    return None


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
        self.cancelled = 0  # answers whose client went away before they were complete
        self.active = 0
        self.fault_counts: dict[str, int] = {}  # fail_key -> requests seen (see Faults)
        self.base_url = ""
        self._server = HTTPServer(self.handle)

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> str:
        """Listen in the running loop; returns the base URL (`http://host:port`)."""
        port = await self._server.start(host, port, tls=tls)
        self.base_url = f"{'https' if tls else 'http'}://{host}:{port}"
        return self.base_url

    async def start_on_socket(self, sock: socket.socket) -> str:
        """Serve on a socket that is already bound (the demo binds it before start-up)."""
        port = await self._server.start(sock=sock)
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        await self._server.stop()

    # --- answering -----------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        if self.api_keys is None or request.path.startswith(self.open_prefixes):
            return True
        if gemini.handles(request.path):
            return bool(gemini.credentials(request) & self.api_keys)
        auth = request.headers.get("authorization", "")
        given = {
            auth[7:] if auth.lower().startswith("bearer ") else "",
            request.headers.get("api-key", ""),
            request.headers.get("x-api-key", ""),
        }
        return bool(given & self.api_keys)

    async def handle(self, request: Request) -> Reply:
        if request.method == "GET" and request.path == "/health":
            return Reply(200, {"content-type": "text/plain"}, b"ok")
        if request.method == "POST" and request.path.endswith(_UPLOADS):
            rid = "sim-" + replies.request_id(request.body[:4096])
            if self.requests.maxlen:
                self.requests.append(
                    Recorded(request.method, request.path, request.query, request.headers, None)
                )
            if not self._authorized(request):
                return _error(401, "Incorrect API key provided.")
            ctype = request.headers.get("content-type", "")
            translate = request.path.endswith("/translations")
            simulate = request.headers.get("x-simulate")
            return media.transcription(request.body, ctype, translate, rid, simulate)
        if request.method != "POST":
            return self._refuse(request, 405, f"Method {request.method} not allowed")
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return self._refuse(request, 400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return self._refuse(request, 400, "The request body must be a JSON object.")
        if self.requests.maxlen:
            self.requests.append(
                Recorded(request.method, request.path, request.query, request.headers, body)
            )
        if not self._authorized(request):
            return self._refuse(request, 401, "Incorrect API key provided.")
        faults = Faults.parse(body, request.headers.get("x-simulate"))
        self.active += 1
        try:
            reply = await self._answer(request, body, faults)
        except asyncio.CancelledError:
            self.active -= 1
            self.cancelled += 1
            raise
        if reply.stream is None:
            self.active -= 1
        else:
            reply.stream = self._counted(reply.stream)
        return reply

    def _refuse(self, request: Request, status: int, message: str) -> Reply:
        """An error in the wire format of the API the path belongs to."""
        if anthropic.handles(request.path):
            return anthropic.error(status, message, anthropic.request_id(request.body))
        if gemini.handles(request.path):
            return gemini.refuse(request, status, message)
        return _error(status, message)

    async def _counted(self, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Keep `active` and `cancelled` true while a stream is written."""
        try:
            async for chunk in stream:
                yield chunk
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.active -= 1

    def reset_counts(self) -> None:
        """Forget the request counts of the faults that change over time."""
        self.fault_counts.clear()

    async def _answer(self, request: Request, body: dict[str, Any], faults: Faults) -> Reply:
        if faults.failing_now(self.fault_counts):
            faults.status = faults.fail_status
        elif faults.fail_first is not None or faults.flap:
            faults.status = None  # this one succeeds
        if faults.hang:
            await asyncio.sleep(3600)
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if anthropic.handles(request.path):
            return anthropic.answer(request, body, faults, self._play)
        if gemini.handles(request.path):
            return gemini.answer(request, body, faults, self._play)
        rid = "sim-" + replies.request_id(request.body)
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
            return Reply(200, {**JSON, "x-request-id": rid}, b"{this is not json")
        model = body.get("model") or _azure_deployment(request.path) or "simulated-model"
        if request.path.endswith("/embeddings"):
            return self._embeddings(body, model, rid)
        if request.path.endswith("/images/generations"):
            return media.images(body, model, rid)
        if request.path.endswith("/audio/speech"):
            return media.speech(body, rid)
        if request.path.endswith("/chat/completions"):
            if body.get("stream") is True:
                return self._stream(body, model, rid, faults)
            return self._completion(body, model, rid, faults)
        return _error(404, f"Invalid URL ({request.method} {request.path})")

    def _completion(self, body: dict[str, Any], model: str, rid: str, faults: Faults) -> Reply:
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
            out["usage"] = _usage(replies.prompt_tokens(messages), completion)
        return Reply(200, {**JSON, "x-request-id": rid}, orjson.dumps(out))

    def _stream(self, body: dict[str, Any], model: str, rid: str, faults: Faults) -> Reply:
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
        headers = {
            "content-type": "text/event-stream",
            "cache-control": "no-cache",
            "x-request-id": rid,
        }
        return Reply(200, headers, stream=self._play(events, faults, _STREAM_ERROR))

    async def _play(
        self, events: list[bytes], faults: Faults, error_event: bytes
    ) -> AsyncIterator[bytes]:
        """Send the events, with the faults' timing; `error_event` ends an `error_after` stream."""
        if faults.ttfb_ms:
            await asyncio.sleep(faults.ttfb_ms / 1000)
        delay = faults.chunk_delay_ms / 1000
        if not delay and faults.cut_after is None and faults.error_after is None:
            yield b"".join(events)  # all at once, as a fast server's socket would coalesce them
            return
        for n, event in enumerate(events):
            if faults.cut_after is not None and n >= faults.cut_after:
                raise Cut  # drop the connection mid-stream
            if faults.error_after is not None and n >= faults.error_after:
                yield error_event
                return
            yield event
            if delay:
                await asyncio.sleep(delay)

    def _embeddings(self, body: dict[str, Any], model: str, rid: str) -> Reply:
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
        return Reply(200, {**JSON, "x-request-id": rid}, orjson.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description="Run Crossway's simulated upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()

    async def run() -> None:
        upstream = SimulatedUpstream(record=0)
        await upstream.start(args.host, args.port)
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
