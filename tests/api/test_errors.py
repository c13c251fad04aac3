"""Bad input and upstream failures: OpenAI's error shape, the right status, never a trace."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from conftest import MASTER_KEY, BackgroundLoop, RunningGateway, start_gateway, upstream_settings
from contracts import validate_openai, validate_sse_chat_stream

from crossway.testing import SimulatedUpstream

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
USER = [{"role": "user", "content": "hi"}]


def post(
    gateway: RunningGateway,
    body: Any = None,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    path: str = "/chat/completions",
) -> httpx.Response:
    with httpx.Client(timeout=30) as http:
        if content is not None:
            return http.post(
                gateway.base_url + path, content=content, headers={**AUTH, **(headers or {})}
            )
        return http.post(gateway.base_url + path, json=body, headers={**AUTH, **(headers or {})})


def error_of(resp: httpx.Response) -> dict[str, Any]:
    body = resp.json()
    validate_openai("ErrorResponse", body)
    assert "Traceback" not in resp.text
    assert resp.headers["x-request-id"].startswith("req_")
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"messages": USER}, "model", "missing required parameter: 'model'"),
        ({"model": 42, "messages": USER}, "model", "'model' must be a string, not a number"),
        ({"model": "", "messages": USER}, "model", "must not be empty"),
        ({"model": "gpt-4o"}, "messages", "missing required parameter: 'messages'"),
        ({"model": "gpt-4o", "messages": "hi"}, "messages", "must be an array of messages"),
        ({"model": "gpt-4o", "messages": []}, "messages", "at least one message"),
        ({"model": "gpt-4o", "messages": ["hi"]}, "messages[0]", "must be an object"),
        ({"model": "gpt-4o", "messages": [{"content": "x"}]}, "messages[0].role", "role"),
        ({"model": "gpt-4o", "messages": USER, "stream": "yes"}, "stream", "must be a boolean"),
        (
            {"model": "gpt-4o", "messages": USER, "stream": True, "stream_options": 3},
            "stream_options",
            "must be an object",
        ),
    ],
)
def test_malformed_requests_name_the_field(
    gateway: RunningGateway, body: dict[str, Any], param: str, fragment: str
) -> None:
    resp = post(gateway, body)
    assert resp.status_code == 400
    error = error_of(resp)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert fragment in error["message"]
    assert resp.headers["x-should-retry"] == "false"


@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_bodies_that_are_not_a_json_object(gateway: RunningGateway, content: bytes) -> None:
    resp = post(gateway, content=content, headers={"content-type": "application/json"})
    assert resp.status_code == 400
    error = error_of(resp)
    assert error["code"] == "invalid_json"


def test_sdk_sees_bad_request_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[])
    assert info.value.status_code == 400
    assert info.value.request_id is not None


def test_body_over_the_limit_is_refused_before_it_is_read(
    background: BackgroundLoop, upstream: SimulatedUpstream
) -> None:
    small = start_gateway(
        background, upstream_settings(upstream.base_url, server={"max_body_bytes": 4096})
    )
    try:
        big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 10_000}]}
        resp = post(small, big)
        assert resp.status_code == 413
        assert "larger than the limit of 4096 bytes" in error_of(resp)["message"]

        def chunks() -> Any:  # no content-length: counted while read
            yield b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}]}'

        with httpx.Client() as http:
            resp = http.post(small.base_url + "/chat/completions", content=chunks(), headers=AUTH)
        assert resp.status_code == 413
        error_of(resp)
    finally:
        small.stop()


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"authorization": "Bearer sk-wrong"}, "invalid_api_key"),
        ({"authorization": "Basic abc"}, "missing_api_key"),
    ],
)
def test_missing_or_wrong_key_is_401(
    gateway: RunningGateway, headers: dict[str, str], code: str
) -> None:
    with httpx.Client() as http:
        resp = http.post(
            gateway.base_url + "/chat/completions",
            headers=headers,
            json={"model": "gpt-4o", "messages": USER},
        )
    assert resp.status_code == 401
    assert error_of(resp)["code"] == code


def test_key_accepted_as_api_key_header(gateway: RunningGateway) -> None:
    with httpx.Client() as http:
        resp = http.post(
            gateway.base_url + "/chat/completions",
            headers={"api-key": MASTER_KEY},
            json={"model": "gpt-4o-mini", "messages": USER},
        )
    assert resp.status_code == 200


def test_sdk_with_wrong_key(gateway: RunningGateway) -> None:
    bad = openai.OpenAI(base_url=gateway.base_url, api_key="sk-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="gpt-4o", messages=USER)  # type: ignore[arg-type]


def test_unknown_model_is_404_and_lists_what_exists(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o-minii", messages=USER)  # type: ignore[arg-type]
    message = str(info.value)
    assert "'gpt-4o-minii' is not served here" in message
    assert "Did you mean: gpt-4o-mini" in message
    assert "GET /v1/models" in message


def test_unknown_vendor_header_is_400(gateway: RunningGateway) -> None:
    resp = post(gateway, {"model": "gpt-4o", "messages": USER}, headers={"vendor": "acme"})
    assert resp.status_code == 400
    error = error_of(resp)
    assert error["param"] == "vendor"
    assert "unknown vendor 'acme'" in error["message"] and "openai" in error["message"]


def test_vendor_that_does_not_serve_the_model_is_400(gateway: RunningGateway) -> None:
    resp = post(gateway, {"model": "gpt-4o", "messages": USER}, headers={"vendor": "deepseek"})
    assert resp.status_code == 400
    message = error_of(resp)["message"]
    assert "vendor 'deepseek' does not serve model 'gpt-4o'" in message
    assert "azure-eu, openai" in message


def test_vendor_header_pins_the_provider(
    gateway: RunningGateway, upstream: SimulatedUpstream
) -> None:
    for _ in range(5):
        for pin, path in (
            ("azure", "/azure/openai/deployments/gpt4o-prod/chat/completions"),
            ("openai", "/v1/chat/completions"),
        ):
            resp = post(gateway, {"model": "gpt-4o", "messages": USER}, headers={"vendor": pin})
            assert resp.status_code == 200
            assert upstream.requests[-1].path == path
    resp = post(gateway, {"model": "gpt-4o-mini", "messages": USER}, headers={"vendor": "auto"})
    assert resp.status_code == 200


def test_prefix_and_header_that_disagree(gateway: RunningGateway) -> None:
    resp = post(gateway, {"model": "openai/gpt-4o", "messages": USER}, headers={"vendor": "azure"})
    assert resp.status_code == 400
    assert error_of(resp)["code"] == "vendor_conflict"


def simulate(
    gateway: RunningGateway, spec: dict[str, Any], stream: bool = False, model: str = "gpt-4o-mini"
) -> httpx.Response:
    return post(gateway, {"model": model, "messages": USER, "stream": stream, "simulate": spec})


def test_upstream_4xx_passes_back_with_its_message(gateway: RunningGateway) -> None:
    resp = simulate(gateway, {"status": 400, "message": "temperature is out of range"})
    assert resp.status_code == 400
    error = error_of(resp)
    assert error["message"] == "temperature is out of range"
    assert error["type"] == "invalid_request_error"
    event = gateway.event(resp.headers["x-request-id"])
    assert event.status == 400 and event.error_type == "invalid_request_error"


def test_upstream_429_passes_back_with_retry_after(gateway: RunningGateway) -> None:
    resp = simulate(gateway, {"status": 429, "retry_after": 7, "message": "slow down"})
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "7"
    assert error_of(resp)["type"] == "rate_limit_error"


@pytest.mark.parametrize(
    ("upstream_status", "status"), [(500, 502), (502, 502), (503, 503), (504, 504)]
)
def test_upstream_5xx_names_the_vendor(
    gateway: RunningGateway, upstream_status: int, status: int
) -> None:
    resp = simulate(gateway, {"status": upstream_status})
    assert resp.status_code == status
    message = error_of(resp)["message"]
    assert f"upstream openai (openai) returned {upstream_status}" in message


def test_upstream_refusing_crossways_key_is_not_the_callers_401(
    background: BackgroundLoop, upstream: SimulatedUpstream
) -> None:
    data = upstream_settings(upstream.base_url)
    data["providers"]["openai"]["api_key"] = "sk-revoked-upstream-key"
    gw = start_gateway(background, data)
    try:
        resp = post(gw, {"model": "gpt-4o-mini", "messages": USER})
        assert resp.status_code == 502
        error = error_of(resp)
        assert "refused Crossway's credentials" in error["message"]
        assert "sk-revoked-upstream-key" not in resp.text
        assert resp.headers["x-should-retry"] == "false"
    finally:
        gw.stop()


def test_connection_refused_is_503(gateway: RunningGateway) -> None:
    resp = post(gateway, {"model": "dead-model", "messages": USER})
    assert resp.status_code == 503
    assert "could not reach upstream dead" in error_of(resp)["message"]


def test_upstream_timeout_is_504(background: BackgroundLoop, upstream: SimulatedUpstream) -> None:
    data = upstream_settings(upstream.base_url)
    data["providers"]["openai"]["timeout"] = {"read": 0.3}
    gw = start_gateway(background, data)
    try:
        resp = post(gw, {"model": "gpt-4o-mini", "messages": USER, "simulate": {"hang": True}})
        assert resp.status_code == 504
        assert "did not answer in time" in error_of(resp)["message"]
    finally:
        gw.stop()


def test_malformed_upstream_body_is_502(gateway: RunningGateway) -> None:
    resp = simulate(gateway, {"malformed": True})
    assert resp.status_code == 502
    assert "not JSON" in error_of(resp)["message"]


def test_stream_cut_midway_ends_with_an_in_stream_error(gateway: RunningGateway) -> None:
    resp = simulate(gateway, {"cut_after": 3}, stream=True)
    assert resp.status_code == 200
    chunks = resp.content.split(b"\n\n")
    assert b"[DONE]" not in resp.content
    last = [c for c in chunks if c.strip()][-1]
    assert last.startswith(b'data: {"error"')
    assert b"stream broke" in last
    event = gateway.event(resp.headers["x-request-id"])
    assert event.status == 502 and event.error_type == "upstream_error"


def test_stream_cut_is_an_sdk_error(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        stream=True,  # type: ignore[arg-type]
        extra_body={"simulate": {"cut_after": 2}},
    )
    with pytest.raises(openai.APIError, match="stream broke"):
        list(stream)


def test_upstream_in_stream_error_is_relayed_once(gateway: RunningGateway) -> None:
    resp = simulate(gateway, {"error_after": 4}, stream=True)
    assert resp.content.count(b'"error"') == 1
    assert b"simulated in-stream failure" in resp.content
    event = gateway.event(resp.headers["x-request-id"])
    assert event.error_type == "upstream_stream_error"


def test_upstream_error_before_a_stream_starts_is_a_plain_error(gateway: RunningGateway) -> None:
    resp = simulate(gateway, {"status": 503}, stream=True)
    assert resp.status_code == 503
    error_of(resp)


def test_unknown_path_and_wrong_method(gateway: RunningGateway) -> None:
    with httpx.Client() as http:
        resp = http.get(gateway.base_url + "/nothing-here", headers=AUTH)
        assert resp.status_code == 404
        assert error_of(resp)["code"] == "unknown_url"
        resp = http.get(gateway.base_url + "/chat/completions", headers=AUTH)
        assert resp.status_code == 405
        assert error_of(resp)["code"] == "method_not_allowed"


def test_full_stream_validates_against_the_spec(gateway: RunningGateway) -> None:
    resp = post(
        gateway,
        {
            "model": "gpt-4o-mini",
            "messages": USER,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    chunks = validate_sse_chat_stream(resp.content)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_refused_requests_are_accounted_too(gateway: RunningGateway) -> None:
    bad = post(gateway, {"model": "gpt-4o", "messages": []})
    event = gateway.event(bad.headers["x-request-id"])
    assert event.status == 400 and event.error_type == "invalid_request_error"
    assert event.principal == "master" and event.endpoint == "chat.completions"
    with httpx.Client() as http:
        anonymous = http.post(gateway.base_url + "/embeddings", json={})
    event = gateway.event(anonymous.headers["x-request-id"])
    assert event.status == 401 and event.principal == "anonymous"
    unknown = post(gateway, {"model": "nope", "messages": USER})
    assert gateway.event(unknown.headers["x-request-id"]).status == 404


def test_paths_without_v1_reach_the_same_handlers(gateway: RunningGateway) -> None:
    resp = httpx.post(
        gateway.root + "/chat/completions",
        headers=AUTH,
        json={"model": "gpt-4o-mini", "messages": []},
    )
    assert resp.status_code == 400
    assert gateway.event(resp.headers["x-request-id"]).endpoint == "chat.completions"
