"""Crossway's own HTTP/1.1 server, spoken to byte by byte over a real socket."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest
from conftest import BackgroundLoop
from served import (
    Served,
    closed_by_server,
    read_answer,
    start_server,
)

from crossway.server.http1 import MAX_HEAD_BYTES
from crossway.server.lifespan import StartupFailed
from crossway.server.serve import Server


@pytest.fixture
def served(background: BackgroundLoop) -> Iterator[Served]:
    running = start_server(background)
    yield running
    background.run(running.server.shutdown())


def get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode()
        + body
    )


def test_keep_alive_answers_in_turn_with_date_and_length(served: Served) -> None:
    with served.connect() as sock:
        buf = bytearray()
        for body in (b"first", b"second"):
            sock.sendall(post("/echo", body))
            answer = read_answer(sock, buf)
            assert answer.status == 200 and answer.body == body
            assert answer.header("content-length") == str(len(body))
            assert answer.header(
                "date",
            ).endswith(" GMT")  # type: ignore[union-attr]
            assert answer.header("connection") is None
    assert [s["method"] for s in served.seen.scopes] == ["POST", "POST"]


def test_pipelined_requests_are_answered_in_order(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(
            post("/echo", b"a") + post("/echo", b"bb") + get("/chunked") + post("/echo", b"ccc")
        )
        buf = bytearray()
        bodies = [read_answer(sock, buf).body for _ in range(4)]
    assert bodies == [b"a", b"bb", b"one,two,three", b"ccc"]


def test_a_chunked_request_body_arrives_whole(served: Served) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    with served.connect() as sock:
        sock.sendall(head + b"5\r\nhello\r\n")
        time.sleep(0.05)
        sock.sendall(b"6\r\n world\r\n0\r\n\r\n")
        answer = read_answer(sock, bytearray())
    assert answer.body == b"hello world"


def test_a_large_body_sent_slowly_arrives_whole(served: Served) -> None:
    body = bytes(range(256)) * 8192  # 2 MB: reading pauses and resumes on the way
    with served.connect() as sock:
        sock.sendall(
            post("/echo", b"")[: -len(b"\r\n")].replace(
                b"Content-Length: 0", f"Content-Length: {len(body)}".encode()
            )
            + b"\r\n"
        )
        for at in range(0, len(body), 300_000):
            sock.sendall(body[at : at + 300_000])
        answer = read_answer(sock, bytearray())
    assert answer.body == body


def test_expect_continue_is_answered_when_the_app_reads(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(
            post("/echo", b"", "Expect: 100-continue\r\n").replace(
                b"Content-Length: 0", b"Content-Length: 4"
            )
        )
        buf = bytearray()
        interim = read_answer(sock, buf, head_request=True)
        assert interim.status == 100
        sock.sendall(b"body")
        answer = read_answer(sock, buf)
    assert answer.status == 200 and answer.body == b"body"


def test_an_answer_without_length_is_chunked(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(get("/chunked"))
        answer = read_answer(sock, bytearray())
    assert answer.header("transfer-encoding") == "chunked"
    assert answer.body == b"one,two,three"


def test_http_1_0_gets_its_body_ended_by_a_close(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET /chunked HTTP/1.0\r\n\r\n")
        answer = read_answer(sock, bytearray())
    assert answer.header("transfer-encoding") is None
    assert answer.header("connection") == "close"
    assert answer.body == b"one,two,three"


def test_http_1_0_keep_alive_is_honoured(served: Served) -> None:
    with served.connect() as sock:
        buf = bytearray()
        for _ in range(2):
            sock.sendall(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            answer = read_answer(sock, buf)
            assert answer.status == 200
            assert answer.header("connection") == "keep-alive"


def test_head_and_204_carry_no_body(served: Served) -> None:
    with served.connect() as sock:
        buf = bytearray()
        sock.sendall(b"HEAD /chunked HTTP/1.1\r\nHost: t\r\n\r\n" + get("/no-content") + get("/"))
        head = read_answer(sock, buf, head_request=True)
        empty = read_answer(sock, buf)
        after = read_answer(sock, buf)
    assert head.status == 200 and head.body == b""
    assert empty.status == 204 and empty.header("transfer-encoding") is None
    assert after.body == b"ok"  # nothing of the first two bodies leaked into it


def test_connection_close_is_honoured(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(get("/", "Connection: close\r\n"))
        answer = read_answer(sock, bytearray())
        assert answer.header("connection") == "close"
        assert closed_by_server(sock)


@pytest.mark.parametrize(
    "garbage",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost t\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ],
)
def test_an_unparsable_request_gets_400_and_a_close(served: Served, garbage: bytes) -> None:
    with served.connect() as sock:
        sock.sendall(garbage)
        answer = read_answer(sock, bytearray())
        assert answer.status == 400 and answer.header("connection") == "close"
        assert closed_by_server(sock)
    assert served.seen.scopes == []


def test_a_head_past_the_limit_gets_431(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        filler = b"x-filler: " + b"a" * 1000 + b"\r\n"
        try:
            for _ in range(MAX_HEAD_BYTES // len(filler) + 2):
                sock.sendall(filler)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close before the client is done
        answer = read_answer(sock, bytearray())
    assert answer.status == 431
    assert served.seen.scopes == []


def test_request_scope(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(get("/caf%C3%A9/x%2Fy?q=1&r=%20", "X-Padded:  value \t\r\nX-CASE: Kept\r\n"))
        read_answer(sock, bytearray())
    scope = served.seen.scopes[0]
    assert scope["path"] == "/café/x/y"
    assert scope["raw_path"] == b"/caf%C3%A9/x%2Fy"
    assert scope["query_string"] == b"q=1&r=%20"
    assert scope["http_version"] == "1.1" and scope["scheme"] == "http"
    assert (b"x-padded", b"value") in scope["headers"]
    assert (b"x-case", b"Kept") in scope["headers"]
    assert scope["client"][0] == "127.0.0.1" and scope["server"][1] == served.server.port


def test_a_value_with_crlf_never_becomes_a_header(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(get("/split"))
        answer = read_answer(sock, bytearray())
    assert answer.status == 500
    assert all(name.lower() not in ("set-cookie", "x-value") for name, _ in answer.headers)


def test_an_invalid_header_name_is_a_500(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(get("/bad-name"))
        assert read_answer(sock, bytearray()).status == 500


def test_an_app_that_fails_before_answering_gives_500_then_close(served: Served) -> None:
    for path in ("/raise", "/silent"):
        with served.connect() as sock:
            sock.sendall(get(path))
            answer = read_answer(sock, bytearray())
            assert answer.status == 500, path
            assert answer.header("connection") == "close"
            assert closed_by_server(sock)


def test_an_app_that_fails_mid_answer_has_its_connection_closed(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(get("/raise-late"))
        raw = bytearray()
        while chunk := sock.recv(65536):  # until the server closes
            raw += chunk
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"4\r\npart\r\n")
    assert not raw.endswith(b"0\r\n\r\n")  # the chunked body never ends: the connection does


@pytest.mark.parametrize("path", ["/too-long", "/too-short"])
def test_a_body_that_breaks_its_content_length_closes_the_connection(
    served: Served, path: str
) -> None:
    with served.connect() as sock:
        sock.sendall(get(path) + get("/"))
        assert closed_by_server(sock)


def test_receive_says_disconnect_when_the_client_leaves(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(get("/watch"))
        time.sleep(0.1)
    deadline = time.monotonic() + 5
    while not served.seen.after_body and time.monotonic() < deadline:
        time.sleep(0.01)
    assert served.seen.after_body == ["http.disconnect"]


def test_receive_says_disconnect_once_the_answer_is_complete(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(get("/"))
        read_answer(sock, bytearray())
        deadline = time.monotonic() + 5
        while not served.seen.after_body and time.monotonic() < deadline:
            time.sleep(0.01)
    assert served.seen.after_body == ["http.disconnect"]


def test_an_upgrade_is_answered_as_plain_http_then_closed(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(
            get(
                "/",
                "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
            )
        )
        answer = read_answer(sock, bytearray())
        assert answer.status == 200 and answer.body == b"ok"
        assert answer.header("connection") == "close"
        assert closed_by_server(sock)


def test_a_client_that_does_not_read_holds_the_app_back(served: Served) -> None:
    with served.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(get("/flood"))
        time.sleep(0.5)
        held = served.seen.sent_chunks
        assert held < 1024  # the app waits on send() while the buffers are full
        answer = read_answer(sock, bytearray())
    assert len(answer.body) == 1024 * 65536
    assert served.seen.sent_chunks == 1024


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(
    background: BackgroundLoop,
) -> None:
    running = start_server(background, keep_alive_timeout=0.5)
    try:
        with running.connect() as sock:
            sock.sendall(get("/"))
            read_answer(sock, bytearray())
            started = time.monotonic()
            assert closed_by_server(sock, timeout=5)
            assert time.monotonic() - started >= 0.4
    finally:
        background.run(running.server.shutdown())


def test_a_head_that_takes_too_long_gets_408(background: BackgroundLoop) -> None:
    running = start_server(background, head_timeout=0.5)
    try:
        with running.connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")  # and never the end of it
            answer = read_answer(sock, bytearray())
            assert answer.status == 408
            assert closed_by_server(sock)
    finally:
        background.run(running.server.shutdown())


def test_a_graceful_stop_lets_requests_in_flight_finish(background: BackgroundLoop) -> None:
    running = start_server(background)
    seen = running.seen
    busy = running.connect()
    idle = running.connect()
    busy.sendall(get("/wait"))
    idle.sendall(get("/"))
    read_answer(idle, bytearray())
    deadline = time.monotonic() + 5
    while len(seen.scopes) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)

    async def stop_then_release() -> None:
        stopping = asyncio.ensure_future(running.server.shutdown())
        await asyncio.sleep(0.2)
        assert not stopping.done()  # waiting for /wait
        assert seen.lifespan == ["startup"]  # shutdown runs only after the requests
        assert seen.release is not None
        seen.release.set()
        await asyncio.wait_for(stopping, 5)

    port = running.server.port
    background.run(stop_then_release())
    assert closed_by_server(idle)
    answer = read_answer(busy, bytearray())
    assert answer.body == b"released" and answer.header("connection") == "close"
    assert closed_by_server(busy)
    assert seen.lifespan == ["startup", "shutdown"]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    busy.close()
    idle.close()


def test_a_stop_cancels_what_outlives_the_shutdown_timeout(background: BackgroundLoop) -> None:
    running = start_server(background, shutdown_timeout=0.3)
    with running.connect() as sock:
        sock.sendall(get("/wait"))
        deadline = time.monotonic() + 5
        while not running.seen.scopes and time.monotonic() < deadline:
            time.sleep(0.01)
        background.run(running.server.shutdown(), timeout=10)
        assert closed_by_server(sock)
    assert running.seen.lifespan == ["startup", "shutdown"]


def test_a_head_is_sent_by_itself_when_the_body_does_not_follow(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(get("/head-then-wait"))
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)  # the body waits for release: the head came alone
        assert buf.startswith(b"HTTP/1.1 200 OK\r\n")
        release = served.seen.release
        assert release is not None
        served.background.loop.call_soon_threadsafe(release.set)
        answer = read_answer(sock, buf)
    assert answer.body == b"late"


def test_a_failed_start_up_opens_no_socket(background: BackgroundLoop) -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        message = await receive()  # type: ignore[operator]
        assert message["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.failed", "message": "no database"})  # type: ignore[operator]

    async def start() -> None:
        await Server(app, "127.0.0.1", 0).start()

    with pytest.raises(StartupFailed, match="no database"):
        background.run(start())


def test_a_taken_port_is_an_os_error_after_a_clean_lifespan(served: Served) -> None:
    seen: list[str] = []

    async def app(scope: object, receive: object, send: object) -> None:
        while True:
            message = await receive()  # type: ignore[operator]
            seen.append(message["type"])
            kind = message["type"].replace("lifespan.", "")
            await send({"type": f"lifespan.{kind}.complete"})  # type: ignore[operator]
            if kind == "shutdown":
                return

    async def start() -> None:
        await Server(app, "127.0.0.1", served.server.port).start()

    with pytest.raises(OSError):
        background_run = served.background.run
        background_run(start())
    assert seen == ["lifespan.startup", "lifespan.shutdown"]
