"""Image generation and speech through the official openai SDK (issue 7, first part)."""

from __future__ import annotations

import base64
from pathlib import Path

import openai
import pytest
from conftest import (
    UPSTREAM_KEY,
    BackgroundLoop,
    RunningGateway,
    start_gateway,
    upstream_settings,
)

from crossway.testing import SimulatedUpstream
from crossway.testing.media import PNG


def test_images_by_url_and_as_base64(
    client: openai.OpenAI, gateway: RunningGateway, upstream: SimulatedUpstream
) -> None:
    raw = client.images.with_raw_response.generate(
        model="dall-e-3", prompt="a lighthouse at dawn", n=2, size="1024x1024"
    )
    by_url = raw.parse()
    assert [d.url for d in by_url.data or []] == [
        d.url for d in by_url.data or [] if d.url and d.url.startswith("https://")
    ] and len(by_url.data or []) == 2
    assert raw.http_response.headers["x-crossway-model"] == "dall-e-3"
    sent = next(r for r in reversed(upstream.requests) if r.path.endswith("/images/generations"))
    assert sent.body == {"model": "dall-e-3", "prompt": "a lighthouse at dawn", "n": 2,
                         "size": "1024x1024"}  # fmt: skip
    inline = client.images.generate(
        model="gpt-image-1", prompt="a lighthouse", response_format="b64_json"
    )
    assert base64.b64decode((inline.data or [])[0].b64_json or "") == PNG
    event = gateway.event(raw.http_response.headers["x-request-id"])
    assert event.endpoint == "images.generations" and event.status == 200


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "n": 0}, "n"),
        ({"prompt": "x", "response_format": "png"}, "response_format"),
    ],
)
def test_bad_image_requests_name_the_field(
    client: openai.OpenAI, fields: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.post("/images/generations", body={"model": "dall-e-3", **fields}, cast_to=object)
    body: dict[str, object] = refused.value.body  # type: ignore[assignment]
    assert body["param"] == param


def test_images_need_an_openai_format_upstream(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="claude-sonnet-4-6", prompt="a cat")
    assert "OpenAI-format" in str(refused.value)


def test_speech_streams_to_a_file(
    client: openai.OpenAI, gateway: RunningGateway, tmp_path: Path
) -> None:
    text = "Hello from the gateway. " * 20
    target = tmp_path / "speech.mp3"
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=text
    ) as resp:
        assert resp.headers["content-type"] == "audio/mpeg"
        resp.stream_to_file(target)
        request_id = resp.headers["x-request-id"]
    assert target.stat().st_size == 1024 * (len(text) // 10)
    wav = client.audio.speech.create(
        model="gpt-4o-mini-tts", voice="nova", input="short", response_format="wav"
    )
    assert wav.response.headers["content-type"] == "audio/wav" and len(wav.content) == 1024
    event = gateway.event(request_id)
    assert event.endpoint == "audio.speech" and event.status == 200 and event.stream


def test_bad_speech_requests(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as missing:
        client.audio.speech.create(model="tts-1", voice="alloy", input="")
    assert missing.value.body["param"] == "input"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as speed:
        client.audio.speech.create(model="tts-1", voice="alloy", input="x", speed=9)
    assert speed.value.body["param"] == "speed"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as voice:  # the upstream's own refusal, passed on
        client.audio.speech.create(model="tts-1", voice="nobody", input="x")  # type: ignore[arg-type]
    assert voice.value.body["param"] == "voice"  # type: ignore[index]


def test_the_catalog_lists_image_and_audio_models(client: openai.OpenAI) -> None:
    def ids(modality: str) -> set[str]:
        listed = client.models.list(extra_query={"output_modalities": modality})
        return {m.id for m in listed}

    assert {"dall-e-3", "gpt-image-1"} <= ids("image")
    assert {"tts-1", "gpt-4o-mini-tts"} <= ids("audio")
    assert "gpt-4o" not in ids("audio")


def test_images_from_a_gemini_image_model(
    client: openai.OpenAI, upstream: SimulatedUpstream
) -> None:
    inline = client.images.generate(
        model="gemini-2.5-flash-image", prompt="a lighthouse", response_format="b64_json", n=2
    )
    assert [base64.b64decode(d.b64_json or "") for d in inline.data or []] == [PNG, PNG]
    sent = next(r for r in reversed(upstream.requests) if ":generateContent" in r.path)
    assert sent.body["generationConfig"] == {"responseModalities": ["IMAGE"], "candidateCount": 2}
    linked = client.images.generate(model="gemini-2.5-flash-image", prompt="a lighthouse")
    assert (linked.data or [])[0].url == "data:image/png;base64," + base64.b64encode(PNG).decode()


def test_images_are_billed_per_image_unless_tokens_were_reported(
    client: openai.OpenAI, gateway: RunningGateway
) -> None:
    raw = client.images.with_raw_response.generate(model="dall-e-3", prompt="a lighthouse", n=2)
    event = gateway.event(raw.http_response.headers["x-request-id"])
    assert event.usage is not None and event.usage.images == 2
    assert event.cost_usd == pytest.approx(2 * 0.04)  # the catalog's price per image
    raw = client.images.with_raw_response.generate(
        model="gpt-image-1", prompt="a lighthouse", response_format="b64_json"
    )
    event = gateway.event(raw.http_response.headers["x-request-id"])
    usage = event.usage
    assert usage is not None and (usage.images, usage.completion_tokens) == (1, 272)
    # gpt-image-1 reports tokens: billed by them ($5 in, $40 out per 1M), not per image
    assert event.cost_usd == pytest.approx((usage.prompt_tokens * 5 + 272 * 40) / 1e6)


def test_images_from_imagen_through_predict(
    client: openai.OpenAI, gateway: RunningGateway, upstream: SimulatedUpstream
) -> None:
    raw = client.images.with_raw_response.generate(
        model="imagen-4", prompt="a lighthouse", n=2, size="1792x1024", response_format="b64_json"
    )
    made = raw.parse()
    assert [base64.b64decode(d.b64_json or "") for d in made.data or []] == [PNG, PNG]
    sent = next(r for r in reversed(upstream.requests) if r.path.endswith(":predict"))
    assert sent.path.endswith("/models/imagen-4.0-generate-001:predict")
    assert sent.body == {
        "instances": [{"prompt": "a lighthouse"}],
        "parameters": {"sampleCount": 2, "aspectRatio": "16:9", "includeRaiReason": True},
    }
    event = gateway.event(raw.http_response.headers["x-request-id"])
    assert event.usage is not None and event.usage.images == 2
    assert event.cost_usd == pytest.approx(0.08)
    with pytest.raises(openai.BadRequestError) as withheld:
        client.images.generate(model="imagen-4", prompt="something forbidden")
    assert withheld.value.code == "content_policy_violation"
    assert "withheld every image" in withheld.value.message


def test_gemini_images_take_the_size_as_an_aspect_ratio(
    client: openai.OpenAI, gateway: RunningGateway, upstream: SimulatedUpstream
) -> None:
    raw = client.images.with_raw_response.generate(
        model="gemini-2.5-flash-image", prompt="a tall tower", size="1024x1792"
    )
    sent = next(r for r in reversed(upstream.requests) if ":generateContent" in r.path)
    assert sent.body["generationConfig"]["imageConfig"] == {"aspectRatio": "9:16"}
    event = gateway.event(raw.http_response.headers["x-request-id"])
    assert event.usage is not None and event.usage.images == 1 and event.usage.prompt_tokens


def test_an_answer_that_is_not_images_is_a_502(gateway: RunningGateway) -> None:
    client = gateway.client(max_retries=0)
    with pytest.raises(openai.APIStatusError) as broken:
        client.images.generate(
            model="dall-e-3", prompt="x", extra_body={"simulate": {"malformed": True}}
        )
    assert broken.value.status_code == 502
    assert "is not a JSON object" in broken.value.message


def test_speech_is_billed_by_the_character(client: openai.OpenAI, gateway: RunningGateway) -> None:
    text = "Twelve chars" * 10
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=text
    ) as resp:
        resp.read()
        request_id = resp.headers["x-request-id"]
    event = gateway.event(request_id)
    assert event.usage is not None and event.usage.characters == len(text) == 120
    assert event.cost_usd == pytest.approx(120 * 0.000015)


def test_speech_answered_with_something_else_is_a_502(gateway: RunningGateway) -> None:
    client = gateway.client(max_retries=0)
    with pytest.raises(openai.APIStatusError) as broken:
        client.audio.speech.create(
            model="tts-1", voice="alloy", input="hi", extra_body={"simulate": {"malformed": True}}
        )
    assert broken.value.status_code == 502
    assert "was asked for audio and answered with application/json" in broken.value.message


def test_images_and_transcriptions_through_azure(
    background: BackgroundLoop, upstream: SimulatedUpstream
) -> None:
    """Azure names the deployment in the path, with its api-version."""
    azure = {
        "type": "azure",
        "api_key": UPSTREAM_KEY,
        "base_url": f"{upstream.base_url}/azure",
        "api_version": "2024-10-21",
        "models": {"dall-e-3": "images-prod", "whisper-1": "whisper"},
    }
    settings = upstream_settings(upstream.base_url, providers={"az": azure}, models={})
    gw = start_gateway(background, settings)
    try:
        client = gw.client()
        raw = client.images.with_raw_response.generate(model="dall-e-3", prompt="a lighthouse")
        assert raw.http_response.headers["x-crossway-provider"] == "az"
        sent = next(r for r in reversed(upstream.requests) if r.path.endswith("/generations"))
        assert sent.path == "/azure/openai/deployments/images-prod/images/generations"
        assert sent.query.get("api-version") == "2024-10-21"
        heard = client.audio.transcriptions.create(
            model="whisper-1", file=("a.wav", b"RIFF" + bytes(64), "audio/wav")
        )
        assert heard.text.endswith("with whisper")  # the deployment's model name
        sent = next(r for r in reversed(upstream.requests) if r.path.endswith("/transcriptions"))
        assert sent.path == "/azure/openai/deployments/whisper/audio/transcriptions"
    finally:
        gw.stop()
