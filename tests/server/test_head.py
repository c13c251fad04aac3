"""The answer head: the header block checked as a whole, and the framing read off it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossway.server.head import STATUS_LINES, BadHeader, framing, header_block

TOKEN = st.text(
    alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    min_size=1,
    max_size=20,
).map(str.encode)
VALUE = st.binary(max_size=40).filter(lambda v: not any((b < 32 and b != 9) or b == 127 for b in v))


def test_a_block_is_the_lines_joined() -> None:
    headers = [(b"content-type", b"application/json"), (b"x-request-id", b"req_1")]
    block = b"content-type: application/json\r\nx-request-id: req_1"
    assert header_block(headers) == (block, True)
    assert header_block([]) == (b"", True)
    assert header_block([(b"Content-Type", b"x")]) == (b"Content-Type: x", False)
    assert header_block([(b"connection", b"close")]) == (b"connection: close", False)


@pytest.mark.parametrize(
    "value", [b"a\r\nset-cookie: x=1", b"a\nb", b"a\rb", b"a\x00b", b"\x7f", b"a\x1bb"]
)
def test_a_control_character_in_a_value_is_refused(value: bytes) -> None:
    with pytest.raises(BadHeader):
        header_block([(b"x-ok", b"1"), (b"x-bad", value), (b"x-ok2", b"2")])


@pytest.mark.parametrize("name", [b"x value", b"x:y", b"", b"x\r\ny", b"(x)", "x-str"])
def test_a_name_that_is_not_a_token_is_refused(name: bytes) -> None:
    with pytest.raises(BadHeader):
        header_block([(name, b"1")])


def test_values_that_are_not_bytes_are_refused() -> None:
    with pytest.raises(BadHeader):
        header_block([(b"x-n", 1)])  # type: ignore[list-item]


def test_tab_and_high_bytes_are_allowed_in_values() -> None:
    assert header_block([(b"x-v", b"a\tb\xe9")])[0] == b"x-v: a\tb\xe9"


@given(st.lists(st.tuples(TOKEN, VALUE), max_size=12))
def test_any_valid_headers_give_exactly_their_lines(headers: list[tuple[bytes, bytes]]) -> None:
    block, _ = header_block(headers)
    lines = block.split(b"\r\n") if headers else []
    assert lines == [name + b": " + value for name, value in headers]


@given(
    st.lists(st.tuples(TOKEN, VALUE), min_size=1, max_size=6),
    st.integers(min_value=0),
    st.sampled_from([b"\r", b"\n", b"\x00", b"\x01", b"\x7f"]),
)
def test_any_control_character_anywhere_in_a_value_is_refused(
    headers: list[tuple[bytes, bytes]], where: int, control: bytes
) -> None:
    at = where % len(headers)
    name, value = headers[at]
    cut = where % (len(value) + 1)
    headers[at] = (name, value[:cut] + control + value[cut:])
    with pytest.raises(BadHeader):
        header_block(headers)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            [(b"x-a", b"1"), (b"Content-Length", b"12"), (b"Connection", b"Close")],
            (12, False, True),
        ),
        ([(b"transfer-encoding", b"chunked")], (None, True, False)),
        ([(b"x-content-length", b"5"), (b"x-connection", b"close")], (None, False, False)),
        ([(b"content-length", b"7"), (b"x-b", b"content-length: 9")], (7, False, False)),
        ([(b"x-b", b"2"), (b"content-length", b" 30 ")], (30, False, False)),
        ([(b"x-b", b"2")], (None, False, False)),
    ],
)
def test_framing_is_read_whatever_the_case(
    headers: list[tuple[bytes, bytes]], expected: tuple[int | None, bool, bool]
) -> None:
    assert framing(*header_block(headers)) == expected


@pytest.mark.parametrize("value", [b"-1", b"1e3", b"", b"12 13"])
def test_a_content_length_that_is_not_a_number_is_refused(value: bytes) -> None:
    with pytest.raises(BadHeader):
        framing(*header_block([(b"content-length", value)]))


def test_status_lines() -> None:
    assert STATUS_LINES[200] == b"HTTP/1.1 200 OK\r\n"
    assert STATUS_LINES[429] == b"HTTP/1.1 429 Too Many Requests\r\n"
    assert STATUS_LINES[599] == b"HTTP/1.1 599 \r\n"
