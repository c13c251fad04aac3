"""The simulated upstream's Gemini API, driven with the official `google-genai` SDK.

google-genai 3.4 calls AI Studio at `/v1/models/{m}:{action}` (`/v1beta/...` with
api_version="v1beta") with `x-goog-api-key`, and Vertex at `/v1beta1/publishers/google/models/...`
(API key, "express mode") or `/v1beta1/projects/{p}/locations/{l}/publishers/google/models/...`
(credentials, sent as `Authorization: Bearer`). Answers, recorded requests and raw streams are
also checked against Gemini's protobuf schema (`gemini_contracts`), and those checks are shown to
fail on broken payloads.
"""

from __future__ import annotations

import copy
from typing import Any

from gemini_contracts import (
    validate_gemini_count_tokens,
    validate_gemini_embed,
    validate_gemini_request,
    validate_gemini_response,
    validate_gemini_stream,
)
from gemini_helpers import (
    FILE_URI,
    GEMINI3,
    HELLO,
    IMAGE,
    KEY,
    MODEL,
    PARALLEL,
    STUDIO,
    TOOLS,
    VERTEX,
    generate,
    last_request,
    parts_of,
    raw,
    refused,
    stream,
    studio,
    text_chunks,
    vertex,
)
from google import genai
from google.genai import types

from crossway.testing import SimulatedUpstream

# --- paths and clients --------------------------------------------------------------------------


def test_sdk_paths_for_ai_studio_and_vertex(upstream: SimulatedUpstream) -> None:
    cases: list[tuple[genai.Client, str, str]] = [
        (studio(upstream), f"/v1/models/{MODEL}:generateContent", "x-goog-api-key"),
        (
            studio(upstream, api_version="v1beta"),
            f"/v1beta/models/{MODEL}:generateContent",
            "x-goog-api-key",
        ),
        (
            genai.Client(
                vertexai=True,
                api_key=KEY,
                http_options=types.HttpOptions(base_url=upstream.base_url),
            ),
            f"/v1beta1/publishers/google/models/{MODEL}:generateContent",
            "x-goog-api-key",
        ),
        (
            vertex(upstream),
            f"/v1beta1/projects/p/locations/us-central1/publishers/google/models/{MODEL}"
            ":generateContent",
            "authorization",
        ),
    ]
    for client, path, header in cases:
        response = client.models.generate_content(model=MODEL, contents="hello there")
        assert response.text == f"[simulated] Hello from {MODEL}. You said: hello there"
        sent = last_request(upstream)
        assert (sent.method, sent.path) == ("POST", path)
        assert KEY in sent.headers[header]
        validate_gemini_request(sent.body)
    # the Vertex v1 path and a key in the query answer the same
    by_query = raw(upstream, VERTEX + ":generateContent?key=" + KEY, {"contents": HELLO}, {})
    assert by_query.json() == generate(upstream, {"contents": HELLO})


def test_text_reply(upstream: SimulatedUpstream) -> None:
    client = studio(upstream)
    response = client.models.generate_content(model=MODEL, contents="hello there")
    assert response.text == f"[simulated] Hello from {MODEL}. You said: hello there"
    assert response.model_version == MODEL
    [candidate] = response.candidates or []
    assert candidate.finish_reason == types.FinishReason.STOP and candidate.index == 0
    usage = response.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count) == (4 + 3, 8)
    assert usage.total_token_count == 15 and usage.thoughts_token_count is None
    again = client.models.generate_content(model=MODEL, contents="hello there")
    assert again.response_id == response.response_id and response.response_id

    answer = generate(upstream, {"contents": HELLO})
    assert answer["candidates"] == [
        {
            "content": {"role": "model", "parts": [{"text": response.text}]},
            "finishReason": "STOP",
            "index": 0,
        }
    ]
    assert set(answer) == {"candidates", "usageMetadata", "modelVersion", "responseId"}


def test_snake_case_and_system_instruction(upstream: SimulatedUpstream) -> None:
    body = {
        "system_instruction": {"parts": [{"text": "Be brief and kind to everyone."}]},
        "contents": [{"parts": [{"text": "hello there"}]}],  # no role: allowed
        "generation_config": {"max_output_tokens": 100, "thinking_config": {"thinking_budget": 0}},
    }
    answer = generate(upstream, body)
    assert answer["usageMetadata"]["promptTokenCount"] == (4 + 8) + (4 + 3)
    assert parts_of(answer)[0]["text"].endswith("You said: hello there")


# --- streams ------------------------------------------------------------------------------------


def test_sse_stream_matches_the_plain_answer(upstream: SimulatedUpstream) -> None:
    client = studio(upstream)
    plain = client.models.generate_content(model=MODEL, contents="hello there")
    pieces = list(client.models.generate_content_stream(model=MODEL, contents="hello there"))
    assert "".join(p.text or "" for p in pieces) == plain.text
    assert pieces[-1].candidates and pieces[-1].candidates[0].finish_reason == "STOP"
    assert pieces[-1].usage_metadata == plain.usage_metadata
    assert last_request(upstream).query == {"alt": "sse"}

    reply = raw(upstream, STUDIO + ":streamGenerateContent?alt=sse", {"contents": HELLO})
    assert reply.content.startswith(b'data: {"candidates":')
    assert reply.content.endswith(b"\r\n\r\n") and b"[DONE]" not in reply.content
    assert reply.content.count(b"\r\n\r\n") == reply.content.count(b"data: ")
    chunks = validate_gemini_stream(reply.content)
    words = text_chunks(chunks)
    assert "".join(words) == plain.text and len(words) == len((plain.text or "").split(" "))
    prompt = chunks[0]["usageMetadata"]["promptTokenCount"]
    assert chunks[0]["usageMetadata"] == {"promptTokenCount": prompt, "totalTokenCount": prompt}
    assert "finishReason" not in chunks[0]["candidates"][0]
    last = chunks[-1]
    assert parts_of(last) == [{"text": ""}]
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert last["usageMetadata"]["candidatesTokenCount"] == len(text_chunks(chunks))
    assert {c["responseId"] for c in chunks} == {last["responseId"]}


def test_json_array_stream(upstream: SimulatedUpstream) -> None:
    reply = raw(upstream, STUDIO + ":streamGenerateContent", {"contents": HELLO})
    assert reply.status_code == 200
    assert reply.content.startswith(b"[{") and reply.content.endswith(b"}]")
    assert b",\r\n{" in reply.content
    chunks = validate_gemini_stream(reply.content)
    assert chunks == stream(upstream, {"contents": HELLO})
    assert stream(upstream, {"contents": HELLO}, sse=False) == chunks


def test_chunk_fault_sets_the_number_of_text_deltas(upstream: SimulatedUpstream) -> None:
    for chunks in (20, 2):
        body = {"contents": HELLO, "simulate": {"chunks": chunks}}
        assert len(text_chunks(stream(upstream, body))) == chunks


# --- tools --------------------------------------------------------------------------------------


def calls_of(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in parts_of(answer) if "functionCall" in p]


def test_one_function_is_called(upstream: SimulatedUpstream) -> None:
    answer = generate(upstream, {"contents": HELLO, "tools": TOOLS})
    [part] = calls_of(answer)
    assert part["functionCall"] == {"name": "get_weather", "args": {"city": "example"}}
    assert part["thoughtSignature"]  # and no id: AI Studio sends none
    assert answer["candidates"][0]["finishReason"] == "STOP"  # STOP even for a call

    client = studio(upstream)
    config = types.GenerateContentConfig(tools=TOOLS)
    response = client.models.generate_content(model=MODEL, contents="hi", config=config)
    [call] = response.function_calls or []
    assert (call.name, call.args, call.id) == ("get_weather", {"city": "example"}, None)
    validate_gemini_request(last_request(upstream).body)


def test_parallel_forced_and_disabled_calls(upstream: SimulatedUpstream) -> None:
    both = generate(upstream, {"contents": PARALLEL, "tools": TOOLS})
    calls = [p["functionCall"] for p in calls_of(both)]
    assert calls == [
        {"name": "get_weather", "args": {"city": "example"}},
        {"name": "get_time", "args": {"zone": "example"}},  # types lower-cased for the example
    ]
    assert len({p["thoughtSignature"] for p in calls_of(both)}) == 2

    forced = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}}
    answer = generate(upstream, {"contents": HELLO, "tools": TOOLS, "toolConfig": forced})
    assert [p["functionCall"]["name"] for p in calls_of(answer)] == ["get_time"]

    config = types.GenerateContentConfig(
        tools=TOOLS,
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=["get_time"]
            )
        ),
    )
    response = studio(upstream).models.generate_content(model=MODEL, contents="hi", config=config)
    assert [c.name for c in response.function_calls or []] == ["get_time"]

    none = {"functionCallingConfig": {"mode": "NONE"}}
    answer = generate(upstream, {"contents": HELLO, "tools": TOOLS, "toolConfig": none})
    assert not calls_of(answer) and parts_of(answer)[0]["text"].startswith("[simulated]")


def test_streamed_call_arrives_whole_without_finish(upstream: SimulatedUpstream) -> None:
    chunks = stream(upstream, {"contents": PARALLEL, "tools": TOOLS})
    assert len(chunks) == 2
    call_chunk, last = chunks
    assert "finishReason" not in call_chunk["candidates"][0]
    assert [p["functionCall"]["name"] for p in parts_of(call_chunk)] == ["get_weather", "get_time"]
    assert parts_of(last) == [{"text": ""}] and last["candidates"][0]["finishReason"] == "STOP"

    pieces = list(
        studio(upstream).models.generate_content_stream(
            model=MODEL,
            contents="weather [parallel]",
            config=types.GenerateContentConfig(tools=TOOLS),
        )
    )
    assert [c.name for c in pieces[0].function_calls or []] == ["get_weather", "get_time"]


def test_function_response_turn(upstream: SimulatedUpstream) -> None:
    client = studio(upstream)
    config = types.GenerateContentConfig(tools=TOOLS)
    first = client.models.generate_content(
        model=GEMINI3, contents="weather [parallel]", config=config
    )
    assert first.candidates and first.candidates[0].content
    history: Any = [
        types.Content(role="user", parts=[types.Part(text="weather [parallel]")]),
        first.candidates[0].content,  # with its thought signatures, as the SDK got them
        types.Content(
            role="user",
            parts=[
                types.Part.from_function_response(name="get_weather", response={"temp": 21}),
                types.Part.from_function_response(name="get_time", response={"hour": 9}),
            ],
        ),
    ]
    answer = client.models.generate_content(model=GEMINI3, contents=history, config=config)
    assert answer.text == (
        f'[simulated] Hello from {GEMINI3}. The tool answered: [{{"temp":21}},{{"hour":9}}]'
    )
    assert not answer.function_calls
    sent = last_request(upstream).body
    validate_gemini_request(sent)
    assert all(p.get("thoughtSignature") for p in sent["contents"][1]["parts"])


def test_gemini_3_needs_thought_signatures(upstream: SimulatedUpstream) -> None:
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    answer = {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}}
    history = [*HELLO, {"role": "model", "parts": [call]}, {"role": "user", "parts": [answer]}]
    path = f"/v1beta/models/{GEMINI3}:generateContent"
    error = refused(raw(upstream, path, {"contents": history, "tools": TOOLS}))
    assert error["message"].startswith(
        "Function call is missing a thought_signature in functionCall parts."
    )
    assert error["status"] == "INVALID_ARGUMENT"
    # the same history is fine for other models, and with the documented dummy signature
    assert generate(upstream, {"contents": history, "tools": TOOLS})
    skipped = copy.deepcopy(history)
    skipped[1]["parts"][0]["thoughtSignature"] = "skip_thought_signature_validator"
    validate_gemini_request({"contents": skipped})
    reply = raw(upstream, path, {"contents": skipped, "tools": TOOLS})
    assert reply.status_code == 200
    validate_gemini_response(reply.json())


# --- generation options -------------------------------------------------------------------------


def test_thinking_comes_first(upstream: SimulatedUpstream) -> None:
    config = {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024}}
    answer = generate(upstream, {"contents": HELLO, "generationConfig": config})
    thought, text = parts_of(answer)
    assert thought == {"text": "[simulated] Thinking it over: hello there", "thought": True}
    usage = answer["usageMetadata"]
    assert usage["thoughtsTokenCount"] > 0
    total = usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    assert usage["totalTokenCount"] == total

    chunks = stream(upstream, {"contents": HELLO, "generationConfig": config})
    assert parts_of(chunks[0]) == [thought]
    assert "".join(text_chunks(chunks)) == text["text"]
    assert chunks[-1]["usageMetadata"] == usage

    sdk = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))
    response = studio(upstream).models.generate_content(model=MODEL, contents="hi", config=sdk)
    assert response.candidates and response.candidates[0].content
    first = (response.candidates[0].content.parts or [])[0]
    assert first.thought is True
    assert last_request(upstream).body["generationConfig"] == {
        "thinkingConfig": {"include_thoughts": True}  # the SDK sends this one in snake_case
    }
    # Gemini 3's thinkingLevel is not in the installed proto; the contract checks it by hand
    validate_gemini_request(
        {"contents": HELLO, "generationConfig": {"thinkingConfig": {"thinkingLevel": "LOW"}}}
    )


def test_stop_sequences_and_max_output_tokens(upstream: SimulatedUpstream) -> None:
    stopped = generate(
        upstream, {"contents": HELLO, "generationConfig": {"stopSequences": ["zzz", "from"]}}
    )
    assert parts_of(stopped) == [{"text": "[simulated] Hello "}]
    assert stopped["candidates"][0]["finishReason"] == "STOP"

    config = types.GenerateContentConfig(max_output_tokens=3)
    cut = studio(upstream).models.generate_content(model=MODEL, contents="hi", config=config)
    assert cut.text == "[simulated] Hello from"
    assert cut.candidates and cut.candidates[0].finish_reason == "MAX_TOKENS"
    assert cut.usage_metadata and cut.usage_metadata.candidates_token_count == 3
    chunks = stream(upstream, {"contents": HELLO, "generationConfig": {"maxOutputTokens": 3}})
    assert len(text_chunks(chunks)) == 3
    assert chunks[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"


def test_candidate_count(upstream: SimulatedUpstream) -> None:
    config = types.GenerateContentConfig(candidate_count=2)
    response = studio(upstream).models.generate_content(model=MODEL, contents="hi", config=config)
    candidates = response.candidates or []
    assert [c.index for c in candidates] == [0, 1]
    assert candidates[0].content == candidates[1].content
    single = studio(upstream).models.generate_content(model=MODEL, contents="hi")
    assert response.usage_metadata and single.usage_metadata
    assert response.usage_metadata.candidates_token_count == 2 * (
        single.usage_metadata.candidates_token_count or 0
    )
    chunks = stream(upstream, {"contents": HELLO, "generationConfig": {"candidateCount": 2}})
    assert {c["index"] for c in chunks[-1]["candidates"]} == {0, 1}


def test_attachments_are_acknowledged(upstream: SimulatedUpstream) -> None:
    file = {"fileData": {"mimeType": "application/pdf", "fileUri": FILE_URI}}
    contents = [{"role": "user", "parts": [{"text": "look"}, IMAGE, IMAGE, file]}]
    answer = generate(upstream, {"contents": contents})
    assert parts_of(answer)[0]["text"].endswith(
        "You said: look (received: 2 inlineData, 1 fileData)"
    )
    assert answer["usageMetadata"]["promptTokenCount"] == 4 + 1 + 3 * 258


# --- countTokens and embeddings -----------------------------------------------------------------


def test_count_tokens(upstream: SimulatedUpstream) -> None:
    client = studio(upstream)
    counted = client.models.count_tokens(model=MODEL, contents="hello there")
    sent = client.models.generate_content(model=MODEL, contents="hello there")
    assert sent.usage_metadata is not None
    assert counted.total_tokens == sent.usage_metadata.prompt_token_count == 7
    validate_gemini_count_tokens(last_request(upstream).body, {"totalTokens": 7})

    for body, total in (
        ({"contents": [{"role": "user", "parts": [{"text": "hello there"}, IMAGE]}]}, 7 + 258),
        ({"generateContentRequest": {"model": f"models/{MODEL}", "contents": HELLO}}, 7),
    ):
        reply = raw(upstream, STUDIO + ":countTokens", body)
        assert reply.json() == {"totalTokens": total}
        validate_gemini_count_tokens(body, reply.json())
    error = refused(raw(upstream, STUDIO + ":countTokens", {"contents": []}))
    assert error["message"] == "* CountTokensRequest.contents: contents is not specified"


def test_embeddings(upstream: SimulatedUpstream) -> None:
    client = studio(upstream)
    config = types.EmbedContentConfig(output_dimensionality=8, task_type="RETRIEVAL_QUERY")
    result = client.models.embed_content(
        model="gemini-embedding-001", contents=["a", "b"], config=config
    )
    vectors = [e.values or [] for e in result.embeddings or []]
    assert [len(v) for v in vectors] == [8, 8] and vectors[0] != vectors[1]
    sent = last_request(upstream)
    assert sent.path == "/v1/models/gemini-embedding-001:batchEmbedContents"
    validate_gemini_embed(sent.body, {"embeddings": [{"values": v} for v in vectors]}, batch=True)

    single = {"content": {"parts": [{"text": "a"}]}, "taskType": "RETRIEVAL_DOCUMENT", "title": "t"}
    reply = raw(upstream, "/v1beta/models/gemini-embedding-001:embedContent", single)
    assert reply.status_code == 200
    validate_gemini_embed(single, reply.json())
    one = reply.json()["embedding"]["values"]
    assert len(one) == 768  # the default size

    batch = {
        "requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]}}
            for t in ("a", "b", "c")
        ]
    }
    reply = raw(upstream, "/v1beta/models/gemini-embedding-001:batchEmbedContents", batch)
    validate_gemini_embed(batch, reply.json(), batch=True)
    assert reply.json()["embeddings"][0]["values"] == one  # the same text, the same vector
    wrong = copy.deepcopy(batch)
    wrong["requests"][1]["model"] = "models/other"
    error = refused(raw(upstream, "/v1beta/models/gemini-embedding-001:batchEmbedContents", wrong))
    assert error["message"].startswith("* BatchEmbedContentsRequest.requests[1].model:")

    # Vertex: embedContent with its nested embedContentConfig
    express = genai.Client(
        vertexai=True, api_key=KEY, http_options=types.HttpOptions(base_url=upstream.base_url)
    )
    vertexed = express.models.embed_content(
        model="gemini-embedding-001",
        contents="a",
        config=types.EmbedContentConfig(output_dimensionality=3),
    )
    assert [len(e.values or []) for e in vertexed.embeddings or []] == [3]
    assert last_request(upstream).path.endswith(
        "/publishers/google/models/gemini-embedding-001:embedContent"
    )
