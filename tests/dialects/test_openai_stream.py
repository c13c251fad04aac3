"""OpenAI streams as Crossway relays them: cut at event ends, usage found and hidden."""

from __future__ import annotations

import itertools

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from crossway.dialects.openai import StreamUsage
from crossway.dialects.sse import EventCutter, last_event


def test_only_the_usage_event_is_reencoded() -> None:
    """A read holding the whole stream: the other events pass as the upstream wrote them."""
    chunk = (
        b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"},'
        b'"finish_reason":null}],"usage":null}\n\n'
    )
    spaced = (
        b'data: {"id": "c", "choices": [{"index": 0, "delta": {"content": "yo"}}], '
        b'"usage": null}\n\n'
    )
    usage = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
    done = b"data: [DONE]\n\n"
    stream = chunk * 5 + spaced + usage + done

    hidden = StreamUsage(strip=True)
    out = hidden.process(stream)
    plain = chunk.replace(b',"usage":null', b"")
    assert out == plain * 5 + spaced.replace(b', "usage": null', b"") + done
    assert hidden.usage is not None and hidden.usage.total_tokens == 5

    kept = StreamUsage(strip=False)
    assert kept.process(stream) == stream
    assert kept.usage is not None and kept.usage.prompt_tokens == 3

    # usage riding on a chunk that also has choices (some servers do this): only it changes
    mixed = (
        b'data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\n'
    )
    out = StreamUsage(strip=True).process(chunk + mixed + done)
    assert (
        out
        == plain
        + (b'data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')
        + done
    )


def make_stream(words: list[str], with_usage: bool, crlf: bool) -> bytes:
    events = [
        b'data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant"}}]'
        + (b',"usage":null' if with_usage else b"")
        + b"}"
    ]
    for word in words:
        events.append(
            b'data: {"id":"c","choices":[{"index":0,"delta":{"content":'
            + orjson.dumps(word)  # escaped as any JSON encoder would
            + b"}}]"
            + (b',"usage":null' if with_usage else b"")
            + b"}"
        )
    if with_usage:
        events.append(
            b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":7,'
            b'"completion_tokens":' + str(len(words)).encode() + b"}}"
        )
    events.append(b"data: [DONE]")
    sep = b"\r\n\r\n" if crlf else b"\n\n"
    return sep.join(events) + sep


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.text(min_size=1, max_size=12), max_size=25),
    with_usage=st.booleans(),
    strip=st.booleans(),
    crlf=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_any_split_of_the_bytes_gives_the_same_events(
    words: list[str], with_usage: bool, strip: bool, crlf: bool, cuts: list[int]
) -> None:
    stream = make_stream(words, with_usage, crlf)
    whole = StreamUsage(strip=strip).process(stream)

    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    pieces = [stream[a:b] for a, b in itertools.pairwise(points)]
    cutter, usage, out = EventCutter(), StreamUsage(strip=strip), []
    for piece in pieces:
        part = cutter.feed(piece)
        if part:
            assert part.endswith((b"\n\n", b"\r\n\r\n")), "never half an event"
        out.append(usage.process(part))
    out.append(usage.process(cutter.finish()))
    joined = b"".join(out)

    def events(data: bytes) -> list[bytes]:
        normal = data.replace(b"\r\n", b"\n")
        return [e for e in normal.split(b"\n\n") if e]

    assert events(joined) == events(whole)
    assert last_event(joined) == b"data: [DONE]"
    if with_usage:
        assert usage.usage is not None and usage.usage.completion_tokens == len(words)
        assert (b'"usage":' in joined) == (not strip)  # the key, not a word that says usage
    else:
        assert usage.usage is None


def test_a_final_event_without_its_blank_line_is_completed() -> None:
    cutter = EventCutter()
    assert cutter.feed(b"data: 1\n\ndata: [DO") == b"data: 1\n\n"
    assert cutter.feed(b"NE]") == b""
    assert cutter.finish() == b"data: [DONE]\n\n"
    assert cutter.finish() == b""
