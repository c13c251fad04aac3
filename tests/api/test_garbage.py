"""A finished request leaves nothing for the cycle collector.

Objects caught in reference cycles outlive their request until the collector finds them; at
thousands of requests a second that is collector work on the request path (it was: a
cancelled watch task, its CancelledError and their frames, every request). Checked with the
collector saving what it finds instead of freeing it.
"""

from __future__ import annotations

import gc
import time
from collections import Counter

import httpx
from conftest import MASTER_KEY, RunningGateway
from test_keys import make_key

REQUESTS = 40
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _cyclic_garbage_after(gw: RunningGateway, token: str, body: dict[str, object]) -> Counter[str]:
    """Types (module.qualname) of what the collector finds after REQUESTS requests."""
    with httpx.Client(base_url=gw.base_url, timeout=30) as http:
        headers = {"authorization": f"Bearer {token}"}
        http.post("/chat/completions", json=body, headers=headers)  # warm: caches, pools
        # clients of earlier tests, freed by this collection, close their connections; the
        # server's side of those is left to the collector once it sees them close, which is
        # no request's doing: let that happen before the count starts
        gc.collect()
        time.sleep(0.3)
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(REQUESTS):
                resp = http.post("/chat/completions", json=body, headers=headers)
                assert resp.status_code == 200, resp.text
            gc.collect()
            found = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    return found


def _ours(found: Counter[str]) -> dict[str, int]:
    """What a request of the gateway left: its own objects, and the asyncio machinery and
    exceptions that tie them into cycles (the test client's own cycles are not counted)."""
    return {
        name: n
        for name, n in found.items()
        if name.startswith(("crossway.", "asyncio.", "_asyncio."))
        or name.endswith(("CancelledError", "traceback", "frame", "coroutine"))
    }


def test_plain_and_streamed_requests_leave_no_cycles(gateway: RunningGateway) -> None:
    assert _ours(_cyclic_garbage_after(gateway, MASTER_KEY, CHAT)) == {}
    streamed = {**CHAT, "stream": True}
    assert _ours(_cyclic_garbage_after(gateway, MASTER_KEY, streamed)) == {}


def test_requests_with_a_limited_key_leave_no_cycles(keyed_gateway: RunningGateway) -> None:
    key = make_key(keyed_gateway, limits={"rpm": 100_000, "tpm": 10**9}, budget={"daily": 1000})
    assert _ours(_cyclic_garbage_after(keyed_gateway, key["key"], CHAT)) == {}
