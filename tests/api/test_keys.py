"""Virtual keys end to end, over every store and limiter backend, through the openai SDK."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest
from conftest import MASTER_KEY, RunningGateway

from crossway.testing import SimulatedUpstream

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
USER = [{"role": "user", "content": "hi"}]


def admin(
    gw: RunningGateway,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.request(method, gw.root + path, json=body, headers=headers or ADMIN, timeout=30)


_counter = 0


def make_key(gw: RunningGateway, **fields: Any) -> dict[str, Any]:
    global _counter
    _counter += 1
    resp = admin(gw, "POST", "/admin/keys", {"name": f"key-{_counter}-{time.time_ns()}", **fields})
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


def client(gw: RunningGateway, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=secret, max_retries=0)


def wait_until(check: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_create_shows_the_secret_once_and_stores_only_a_hash(keyed_gateway: RunningGateway) -> None:
    gw = keyed_gateway
    created = make_key(
        gw,
        owner="team-a",
        models=["gpt-4o*"],
        limits={"rpm": 100},
        budget={"monthly": 20},
        metadata={"env": "ci"},
    )
    secret = created["key"]
    assert secret.startswith("sk-cw-") and created["prefix"] == secret[:10]
    assert created["limits"] == {"rpm": 100, "tpm": None, "max_concurrency": None}
    assert created["budget"]["monthly"] == 20 and created["metadata"] == {"env": "ci"}
    shown = admin(gw, "GET", f"/admin/keys/{created['id']}").json()
    listed = admin(gw, "GET", "/admin/keys").json()["data"]
    assert "key" not in shown and "key_hash" not in shown
    assert secret not in str(listed) and created["id"] in [k["id"] for k in listed]
    assert shown["spend"]["monthly"]["limit"] == 20


def test_a_key_works_through_the_sdk_within_its_models(keyed_gateway: RunningGateway) -> None:
    gw = keyed_gateway
    created = make_key(gw, models=["gpt-4o-mini", "deepseek-*"])
    sdk = client(gw, created["key"])
    answer = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
    assert answer.parse().choices[0].message.content
    sdk.chat.completions.create(model="deepseek-chat", messages=USER)  # type: ignore[arg-type]
    with pytest.raises(openai.PermissionDeniedError, match="may not use model 'gpt-4o'"):
        sdk.chat.completions.create(model="gpt-4o", messages=USER)  # type: ignore[arg-type]
    event = gw.event(answer.headers["x-request-id"])
    assert event.principal == created["id"]
    assert wait_until(
        lambda: (
            admin(gw, "GET", f"/admin/requests/{answer.headers['x-request-id']}").status_code == 200
        )
    )
    record = admin(gw, "GET", f"/admin/requests/{answer.headers['x-request-id']}").json()
    assert record["key_id"] == created["id"] and record["model"] == "gpt-4o-mini"
    assert record["prompt_tokens"] > 0 and record["cost_usd"] > 0
    assert created["key"] not in str(record)


def test_vendor_rules_narrow_the_deployments(
    keyed_gateway: RunningGateway, upstream: SimulatedUpstream
) -> None:
    gw = keyed_gateway
    sdk = client(gw, make_key(gw, vendors=["azure"])["key"])
    for _ in range(5):  # gpt-4o is served by openai and azure-eu: only azure is allowed
        sdk.chat.completions.create(model="gpt-4o", messages=USER)  # type: ignore[arg-type]
        assert upstream.requests[-1].path.startswith("/azure/")
    with pytest.raises(openai.PermissionDeniedError, match="vendors"):
        sdk.chat.completions.create(model="deepseek-chat", messages=USER)  # type: ignore[arg-type]


def test_disabled_expired_deleted_and_rotated_keys(keyed_gateway: RunningGateway) -> None:
    gw = keyed_gateway
    created = make_key(gw)
    sdk = client(gw, created["key"])
    sdk.models.list()
    assert (
        admin(gw, "PATCH", f"/admin/keys/{created['id']}", {"enabled": False}).json()["enabled"]
        is False
    )
    with pytest.raises(openai.AuthenticationError, match="disabled"):
        sdk.models.list()
    admin(gw, "PATCH", f"/admin/keys/{created['id']}", {"enabled": True})
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    admin(gw, "PATCH", f"/admin/keys/{created['id']}", {"expires_at": past})
    with pytest.raises(openai.AuthenticationError, match="expired"):
        sdk.models.list()
    admin(gw, "PATCH", f"/admin/keys/{created['id']}", {"expires_at": None})
    rotated = admin(gw, "POST", f"/admin/keys/{created['id']}/rotate").json()
    assert rotated["key"] != created["key"] and rotated["id"] == created["id"]
    with pytest.raises(openai.AuthenticationError, match="not valid"):
        sdk.models.list()
    client(gw, rotated["key"]).models.list()
    assert admin(gw, "DELETE", f"/admin/keys/{created['id']}").json()["deleted"] is True
    with pytest.raises(openai.AuthenticationError):
        client(gw, rotated["key"]).models.list()
    assert admin(gw, "GET", f"/admin/keys/{created['id']}").status_code == 404


def test_a_key_in_use_stops_working_when_its_time_is_up(keyed_gateway: RunningGateway) -> None:
    """Expiry is checked on every request, not only when the key is first seen."""
    gw = keyed_gateway
    until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)
    sdk = client(gw, make_key(gw, expires_at=until.isoformat())["key"])
    sdk.models.list()
    sdk.models.list()  # known now: answered without asking the store
    time.sleep(max(0.0, (until - dt.datetime.now(dt.UTC)).total_seconds()) + 0.1)
    with pytest.raises(openai.AuthenticationError, match="expired"):
        sdk.models.list()


def test_rpm_limit_answers_429_with_headers(keyed_gateway: RunningGateway) -> None:
    gw = keyed_gateway
    created = make_key(gw, limits={"rpm": 3, "tpm": 100_000})
    headers = {"authorization": f"Bearer {created['key']}"}
    body = {"model": "gpt-4o-mini", "messages": USER}
    for i in range(3):
        ok = httpx.post(gw.base_url + "/chat/completions", json=body, headers=headers)
        assert ok.status_code == 200
        assert ok.headers["x-ratelimit-limit-requests"] == "3"
        assert ok.headers["x-ratelimit-remaining-requests"] == str(2 - i)
        assert ok.headers["x-ratelimit-limit-tokens"] == "100000"
    refused = httpx.post(gw.base_url + "/chat/completions", json=body, headers=headers)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.json()["error"]["code"] == "rpm_limit_exceeded"
    with pytest.raises(openai.RateLimitError):
        client(gw, created["key"]).chat.completions.create(**body)  # type: ignore[arg-type]


def test_budget_spent_is_402_naming_the_budget(keyed_gateway: RunningGateway) -> None:
    gw = keyed_gateway
    created = make_key(gw, budget={"daily": 0.00001})
    sdk = client(gw, created["key"])
    sdk.chat.completions.create(model="gpt-4o", messages=USER)  # type: ignore[arg-type]

    def refused() -> bool:
        try:
            sdk.chat.completions.create(model="gpt-4o-mini", messages=USER)  # type: ignore[arg-type]
        except openai.APIStatusError as exc:
            assert exc.status_code == 402
            assert "daily budget of $1e-05 is spent" in exc.message
            assert "resets at" in exc.message
            return True
        return False

    assert wait_until(refused)  # the cost is charged just after the answer
    mine = client(gw, created["key"]).get("/key", cast_to=object)
    assert isinstance(mine, dict) and mine["spend"]["daily"]["remaining"] == 0


def test_concurrency_limit(keyed_gateway: RunningGateway, upstream: SimulatedUpstream) -> None:
    gw = keyed_gateway
    created = make_key(gw, limits={"max_concurrency": 1})
    headers = {"authorization": f"Bearer {created['key']}"}
    slow = {"model": "gpt-4o-mini", "messages": USER, "simulate": {"latency_ms": 1500}}
    results: list[int] = []
    thread = threading.Thread(
        target=lambda: results.append(
            httpx.post(
                gw.base_url + "/chat/completions", json=slow, headers=headers, timeout=30
            ).status_code
        )
    )
    thread.start()
    assert wait_until(lambda: upstream.active == 1)  # the slow one holds the only slot
    second = httpx.post(
        gw.base_url + "/chat/completions",
        headers=headers,
        json={"model": "gpt-4o-mini", "messages": USER},
    )
    thread.join()
    assert results == [200] and second.status_code == 429
    assert second.json()["error"]["code"] == "concurrency_limit_exceeded"
    # the slot came back
    assert wait_until(
        lambda: (
            httpx.post(
                gw.base_url + "/chat/completions",
                headers=headers,
                json={"model": "gpt-4o-mini", "messages": USER},
            ).status_code
            == 200
        )
    )


def test_own_key_endpoint(keyed_gateway: RunningGateway) -> None:
    gw = keyed_gateway
    created = make_key(gw, limits={"rpm": 10}, budget={"total": 5})
    mine = httpx.get(gw.base_url + "/key", headers={"authorization": f"Bearer {created['key']}"})
    data = mine.json()
    assert data["id"] == created["id"] and data["limits"]["rpm"] == 10
    assert data["spend"]["total"] == {
        "spent": 0.0,
        "limit": 5.0,
        "remaining": 5.0,
        "resets_at": None,
    }
    assert httpx.get(gw.base_url + "/key", headers=ADMIN).json()["is_master"] is True


def test_usage_report_groups_and_filters(keyed_gateway: RunningGateway) -> None:
    gw = keyed_gateway
    created = make_key(gw)
    sdk = client(gw, created["key"])
    for model in ("gpt-4o-mini", "gpt-4o-mini", "deepseek-chat"):
        sdk.chat.completions.create(model=model, messages=USER)  # type: ignore[arg-type]

    def report() -> dict[str, Any]:
        resp = admin(gw, "GET", f"/admin/usage?key={created['id']}&group_by=model")
        return {row["model"]: row for row in resp.json()["data"]}

    assert wait_until(lambda: sum(r["requests"] for r in report().values()) == 3)
    rows = report()
    assert rows["gpt-4o-mini"]["requests"] == 2 and rows["deepseek-chat"]["requests"] == 1
    assert rows["gpt-4o-mini"]["cost_usd"] > 0
    by_day = admin(gw, "GET", f"/admin/usage?key={created['id']}&group_by=day").json()["data"]
    assert by_day[0]["day"] == dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    future = admin(gw, "GET", f"/admin/usage?key={created['id']}&since=2999-01-01").json()
    assert future["data"][0]["requests"] == 0


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"name": "x", "models": ["gpt 4o"]}, "models", "not a model pattern"),
        ({"name": "x", "models": ["gpt-[4o"]}, "models", "unclosed"),
        ({"name": "x", "budget": {"daily": -1}}, "budget.daily", "greater than or equal to 0"),
        ({"name": "x", "limits": {"rpm": 0}}, "limits.rpm", "greater than or equal to 1"),
        ({"name": "x", "colour": "red"}, "colour", "unknown field"),
        ({"name": "x", "vendors": ["acme"]}, "vendors[0]", "unknown vendor 'acme'"),
        ({"models": ["gpt-4o"]}, "name", "required"),
        ({"name": ""}, "name", "letters"),
        ({"name": "x", "expires_at": "next tuesday"}, "expires_at", "datetime"),
    ],
)
def test_bad_admin_input_names_the_field(
    keyed_gateway: RunningGateway, body: dict[str, Any], param: str, fragment: str
) -> None:
    resp = admin(keyed_gateway, "POST", "/admin/keys", body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == param and fragment in error["message"]


def test_duplicate_names_are_refused(keyed_gateway: RunningGateway) -> None:
    created = make_key(keyed_gateway)
    again = admin(keyed_gateway, "POST", "/admin/keys", {"name": created["name"]})
    assert again.status_code == 400 and again.json()["error"]["code"] == "duplicate_name"


def test_admin_api_needs_the_master_key(keyed_gateway: RunningGateway) -> None:
    gw = keyed_gateway
    virtual = {"authorization": f"Bearer {make_key(gw)['key']}"}
    for method, path in (
        ("GET", "/admin/keys"),
        ("POST", "/admin/keys"),
        ("GET", "/admin/usage"),
        ("GET", "/admin/requests/req_x"),
    ):
        assert admin(gw, method, path, {}, headers=virtual).status_code == 403
        assert httpx.request(method, gw.root + path).status_code == 401


def test_no_secret_in_usage_records_logs_or_errors(
    keyed_gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    gw = keyed_gateway
    created = make_key(gw, models=["gpt-4o-mini"])
    secret = created["key"]
    sdk = client(gw, secret)
    ids = [
        sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER).headers[
            "x-request-id"
        ]
    ]  # type: ignore[arg-type]
    for model in ("gpt-4o", "nope"):
        try:
            sdk.chat.completions.create(model=model, messages=USER)  # type: ignore[arg-type]
        except openai.APIStatusError as exc:
            assert secret not in str(exc.body) and secret[10:] not in exc.message
            ids.append(exc.response.headers["x-request-id"])
    wrong = httpx.post(
        gw.base_url + "/chat/completions",
        headers={"authorization": f"Bearer {secret}x"},
        json={"model": "gpt-4o-mini", "messages": USER},
    )
    assert wrong.status_code == 401 and secret not in wrong.text
    for rid in ids:
        assert secret[10:] not in str(gw.event(rid).as_dict())
    assert wait_until(
        lambda: all(admin(gw, "GET", f"/admin/requests/{rid}").status_code == 200 for rid in ids)
    )
    for rid in ids:
        assert secret[10:] not in admin(gw, "GET", f"/admin/requests/{rid}").text
    assert secret[10:] not in caplog.text


def test_anthropic_door_enforces_the_same_key_rules(keyed_gateway: RunningGateway) -> None:
    """A virtual key through the anthropic SDK: its models, its rpm, errors in Anthropic shape."""
    gw = keyed_gateway
    created = make_key(gw, models=["gpt-*"], limits={"rpm": 2})
    sdk = anthropic.Anthropic(base_url=gw.root, api_key=created["key"], max_retries=0)
    user = [{"role": "user", "content": "hi"}]
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        sdk.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=user)  # type: ignore[arg-type]
    assert denied.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    raw = sdk.messages.with_raw_response.create(model="gpt-4o-mini", max_tokens=10, messages=user)  # type: ignore[arg-type]
    assert raw.http_response.headers["x-ratelimit-limit-requests"] == "2"
    sdk.messages.create(model="gpt-4o-mini", max_tokens=10, messages=user)  # type: ignore[arg-type]
    with pytest.raises(anthropic.RateLimitError) as limited:
        sdk.messages.create(model="gpt-4o-mini", max_tokens=10, messages=user)  # type: ignore[arg-type]
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert int(limited.value.response.headers["retry-after"]) >= 1
