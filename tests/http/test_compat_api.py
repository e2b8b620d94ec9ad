"""The OpenAI/Anthropic routes, embeddings, tools, thinking and structured-output checks, in process
(fake runner). Wire framing and error envelopes are asserted exactly; model behaviour is proven
with the real model in tests/integration."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pollama.engine import Engine
from pollama.envconfig import Settings
from pollama.runner.base import CompletionRequest
from pollama.runner.fake import fake_factory
from pollama.server.app import create_app
from pollama.store.store import Store
from tests.factories import add_model

TOOLS_TEMPLATE = (Path(__file__).parent.parent / "unit" / "data" / "templates" / "qwen2.5.gotmpl").read_text()
THINK_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ if .Thinking }}<think>{{ .Thinking }}</think>\n{{ end }}{{ .Content }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n{{ if .Think }}<think>\n{{ end }}"
)
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                             "parameters": {"type": "object", "required": ["city"],
                                                            "properties": {"city": {"type": "string"}}}}}


def sse_data(text: str) -> list[Any]:
    out: list[Any] = []
    for block in text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                payload = line[6:]
                out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def sse_events(text: str) -> list[tuple[str, Any]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        out.append((lines[0][7:], json.loads(lines[1][6:])))
    return out


def scripted(text: str | None = None):  # type: ignore[no-untyped-def]
    """A responder: the given text, or (when the request is constrained) a JSON answer."""

    def respond(prompt: str, req: CompletionRequest) -> str:
        if req.json_schema is not None and text is None:
            props = req.json_schema.get("properties", {})
            if "name" in props and "const" in props["name"]:
                return json.dumps({"name": props["name"]["const"], "arguments": {"city": "Paris"}})
            return '{"answer": 42}'
        return text or "Hello there."

    return respond


@pytest.fixture
async def make_client(tiny_store: Store, tiny_gguf: Path, settings: Settings):  # type: ignore[no-untyped-def]
    add_model(tiny_store, "toolie", tiny_gguf, template=TOOLS_TEMPLATE)
    add_model(tiny_store, "thinker", tiny_gguf, template=THINK_TEMPLATE)
    engines: list[Engine] = []
    clients: list[httpx.AsyncClient] = []

    async def make(responder: Any = None) -> tuple[httpx.AsyncClient, Any]:
        factory = fake_factory(responder=responder or scripted())
        engine = Engine(settings, store=tiny_store, runner_factory=factory)
        engines.append(engine)
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(engine)), base_url="http://127.0.0.1:11434")
        clients.append(c)
        return c, factory

    yield make
    for c in clients:
        await c.aclose()
    for e in engines:
        await e.close()


# ---- OpenAI chat ------------------------------------------------------------------------------


async def test_chat_completion_non_streaming(make_client) -> None:  # type: ignore[no-untyped-def]
    c, _ = await make_client()
    r = await c.post("/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello there."}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == len("Hello there.")


async def test_chat_completion_sse_framing(make_client) -> None:  # type: ignore[no-untyped-def]
    c, _ = await make_client()
    r = await c.post("/v1/chat/completions", json={"model": "tiny", "stream": True, "stream_options": {"include_usage": True},
                                                   "messages": [{"role": "user", "content": "hi"}]})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_data(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in ch["choices"][0]["delta"] for ch in chunks[1:-1])
    finish, usage = chunks[-2], chunks[-1]
    assert finish["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == len("Hello there.")
    text = "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks[:-2])
    assert text == "Hello there."


async def test_completions_models_and_model(make_client) -> None:  # type: ignore[no-untyped-def]
    c, _ = await make_client()
    r = await c.post("/v1/completions", json={"model": "tiny", "prompt": "Say", "max_tokens": 5})
    assert r.json()["choices"][0]["text"] == "Hello" and r.json()["choices"][0]["finish_reason"] == "length"
    r = await c.post("/v1/completions", json={"model": "tiny", "prompt": "Say", "stream": True})
    events = sse_data(r.text)
    assert events[-1] == "[DONE]" and "".join(e["choices"][0]["text"] for e in events[:-1]) == "Hello there."
    ids = [m["id"] for m in (await c.get("/v1/models")).json()["data"]]
    assert "tiny:latest" in ids
    r = await c.get("/v1/models/tiny:latest")
    assert r.json()["id"] == "tiny:latest" and r.json()["object"] == "model"
    r = await c.get("/v1/models/nope")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


async def test_openai_error_envelopes(make_client) -> None:  # type: ignore[no-untyped-def]
    c, _ = await make_client()
    r = await c.post("/v1/chat/completions", json={"model": "missing", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 404 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = await c.post("/v1/chat/completions", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = await c.post("/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]})
    assert r.status_code == 400 and "invalid role" in r.json()["error"]["message"]
    r = await c.post("/v1/chat/completions", json={"model": "tiny", "temperature": "hot", "messages": []})
    assert r.status_code == 400 and "temperature" in r.json()["error"]["message"]
    r = await c.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["message"] == "404 page not found"
    r = await c.post("/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]})
    assert r.status_code == 400 and "error" in r.json()


async def test_images_reach_the_capability_check(make_client) -> None:  # type: ignore[no-untyped-def]
    c, _ = await make_client()
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 16).decode()
    r = await c.post("/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]}]})
    assert r.status_code == 400 and r.json()["error"]["message"] == "registry.ollama.ai/library/tiny:latest does not support images"
    r = await c.post("/v1/messages", json={"model": "tiny", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}]}]})
    assert r.status_code == 400 and r.json()["error"]["message"].endswith("does not support images")
    r = await c.post("/api/chat", json={"model": "tiny", "messages": [{"role": "user", "content": "x", "images": ["***"]}]})
    assert r.status_code == 400 and "base64" in r.json()["error"]
    r = await c.post("/api/generate", json={"model": "tiny", "prompt": "x", "images": [png]})
    assert r.status_code == 400 and r.json()["error"].endswith("does not support images")


# ---- Responses and Anthropic -------------------------------------------------------------------


async def test_responses_api(make_client) -> None:  # type: ignore[no-untyped-def]
    c, _ = await make_client()
    r = await c.post("/v1/responses", json={"model": "tiny", "input": "hi"})
    body = r.json()
    assert body["object"] == "response" and body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"] == "Hello there."
    r = await c.post("/v1/responses", json={"model": "tiny", "input": "hi", "stream": True})
    kinds = [k for k, _ in sse_events(r.text)]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds


async def test_anthropic_messages(make_client) -> None:  # type: ignore[no-untyped-def]
    c, _ = await make_client()
    req = {"model": "tiny", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    body = (await c.post("/v1/messages", json=req)).json()
    assert body["type"] == "message" and body["id"].startswith("msg_")
    assert body["content"] == [{"type": "text", "text": "Hello there."}] and body["stop_reason"] == "end_turn"
    r = await c.post("/v1/messages", json={**req, "stream": True})
    events = sse_events(r.text)
    kinds = [k for k, _ in events]
    assert kinds[:2] == ["message_start", "ping"] and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_start") == 1 and kinds.count("content_block_stop") == 1
    assert all(k == d["type"] for k, d in events)
    # thinking on a model that cannot think is dropped silently on this endpoint
    r = await c.post("/v1/messages", json={**req, "thinking": {"type": "enabled", "budget_tokens": 1024}})
    assert r.status_code == 200, r.text


async def test_anthropic_error_envelope(make_client) -> None:  # type: ignore[no-untyped-def]
    c, _ = await make_client()
    r = await c.post("/v1/messages", json={"model": "missing", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 404
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "not_found_error"
    r = await c.post("/v1/messages", json={"model": "tiny", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = await c.post("/v1/messages", content=b"[1,2")
    assert r.status_code == 400 and r.json()["type"] == "error"


# ---- structured outputs ----------------------------------------------------------------------


@pytest.mark.parametrize("schema, part", [
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, "/$defs/missing"),
    ({"type": "string", "pattern": "^(a"}, "unclosed group"),
    ({"type": "strin"}, "strin"),
    ({"type": "object", "not": {"type": "string"}}, '"not"'),
])
async def test_schema_the_engine_cannot_enforce_is_400(make_client, schema: dict[str, Any], part: str) -> None:  # type: ignore[no-untyped-def]
    c, factory = await make_client()
    r = await c.post("/api/generate", json={"model": "tiny", "prompt": "x", "format": schema})
    assert r.status_code == 400 and part in r.json()["error"] and "invalid JSON schema" in r.json()["error"]
    r = await c.post("/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                                                   "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}})
    assert r.status_code == 400 and part in r.json()["error"]["message"]
    assert not any(r.requests for r in factory.made), "nothing may be generated unconstrained"


async def test_format_reaches_the_runner(make_client) -> None:  # type: ignore[no-untyped-def]
    c, factory = await make_client()
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    r = await c.post("/api/chat", json={"model": "tiny", "stream": False, "format": schema,
                                        "messages": [{"role": "user", "content": "x"}]})
    assert json.loads(r.json()["message"]["content"]) == {"answer": 42}
    r = await c.post("/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                                                   "response_format": {"type": "json_object"}})
    assert r.status_code == 200
    sent = [req.json_schema for run in factory.made for req in run.requests]
    compact = {"x-guidance": {"whitespace_flexible": False}}
    assert sent == [{**compact, **schema}, compact]


# ---- tools -----------------------------------------------------------------------------------


async def test_tools_refused_for_models_without_tool_template(make_client) -> None:  # type: ignore[no-untyped-def]
    c, _ = await make_client()
    r = await c.post("/api/chat", json={"model": "tiny", "tools": [WEATHER], "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and r.json()["error"] == "registry.ollama.ai/library/tiny:latest does not support tools"
    r = await c.post("/v1/chat/completions", json={"model": "tiny", "tools": [WEATHER], "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and r.json()["error"]["message"].endswith("does not support tools")


@pytest.mark.parametrize("tools, message", [
    ([{"type": "function"}], "invalid tool at index 0: missing function"),
    ([{"function": {"name": ""}}], "invalid tool at index 0: function.name must be a non-empty string"),
    (["get_weather"], "json: cannot unmarshal string into Go struct field ChatRequest.tools.0 of type object"),
    ([{"function": {"name": "f", "parameters": "nope"}}], "invalid tool at index 0: function.parameters must be an object"),
    ([{"type": "retrieval", "function": {"name": "f"}}], 'invalid tool at index 0: unsupported type "retrieval"'),
])
async def test_malformed_tools_are_400(make_client, tools: list[Any], message: str) -> None:  # type: ignore[no-untyped-def]
    c, _ = await make_client()
    r = await c.post("/api/chat", json={"model": "toolie", "tools": tools, "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and r.json()["error"] == message
    r = await c.post("/v1/chat/completions", json={"model": "toolie", "tools": tools, "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


async def test_conflicting_format_and_forced_tool_call(make_client) -> None:  # type: ignore[no-untyped-def]
    c, _ = await make_client()
    r = await c.post("/api/chat", json={"model": "toolie", "tools": [WEATHER], "tool_choice": "required", "format": "json",
                                        "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and "tool_choice" in r.json()["error"]
    r = await c.post("/v1/chat/completions", json={"model": "toolie", "tools": [WEATHER], "messages": [{"role": "user", "content": "x"}],
                                                   "tool_choice": {"type": "function", "function": {"name": "nope"}}})
    assert r.status_code == 400 and "nope" in r.json()["error"]["message"]


TOOL_OUTPUT = 'Let me check. <tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


async def test_tool_call_parsed_from_template_tag_streaming(make_client) -> None:  # type: ignore[no-untyped-def]
    c, _ = await make_client(scripted(TOOL_OUTPUT))
    r = await c.post("/api/chat", json={"model": "toolie", "tools": [WEATHER], "messages": [{"role": "user", "content": "Weather in Paris?"}]})
    chunks = [json.loads(x) for x in r.text.splitlines()]
    with_calls = [ch for ch in chunks if ch["message"].get("tool_calls")]
    assert len(with_calls) == 1 and with_calls[0]["done"] is False
    call = with_calls[0]["message"]["tool_calls"][0]
    assert call["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}
    assert call["id"].startswith("call_") and len(call["id"]) == 13
    content = "".join(ch["message"]["content"] for ch in chunks)
    assert content == "Let me check. "


async def test_tool_call_history_and_openai_shapes(make_client) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def respond(prompt: str, req: CompletionRequest) -> str:
        seen.append(prompt)
        return TOOL_OUTPUT

    c, _ = await make_client(respond)
    r = await c.post("/v1/chat/completions", json={"model": "toolie", "tools": [WEATHER], "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_abc", "type": "function",
                                                                "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "sunny, 24C"},
    ]})
    body = r.json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert "<tool_response>\nsunny, 24C\n</tool_response>" in seen[-1]
    assert '{"name": "get_weather", "arguments": {"city":"Rome"}}' in seen[-1]
    # streaming: one delta with the call, then finish_reason tool_calls
    r = await c.post("/v1/chat/completions", json={"model": "toolie", "tools": [WEATHER], "stream": True,
                                                   "messages": [{"role": "user", "content": "Weather?"}]})
    chunks = sse_data(r.text)[:-1]
    deltas = [ch["choices"][0]["delta"] for ch in chunks]
    calls = [d["tool_calls"] for d in deltas if d.get("tool_calls")]
    assert len(calls) == 1 and calls[0][0]["function"]["name"] == "get_weather"
    assert isinstance(calls[0][0]["function"]["arguments"], str)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_tool_choice_required_constrains_generation(make_client) -> None:  # type: ignore[no-untyped-def]
    c, factory = await make_client()
    r = await c.post("/api/chat", json={"model": "toolie", "tools": [WEATHER], "tool_choice": "required", "stream": False,
                                        "messages": [{"role": "user", "content": "hi"}]})
    msg = r.json()["message"]
    assert msg["tool_calls"][0]["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}
    sent = factory.made[0].requests[-1].json_schema
    assert sent["properties"]["name"] == {"const": "get_weather"}
    # tool_choice none drops the tools: plain text, no constraint
    r = await c.post("/v1/chat/completions", json={"model": "toolie", "tools": [WEATHER], "tool_choice": "none",
                                                   "messages": [{"role": "user", "content": "hi"}]})
    assert r.json()["choices"][0]["message"]["content"] == "Hello there."
    assert factory.made[0].requests[-1].json_schema is None


# ---- thinking --------------------------------------------------------------------------------


async def test_thinking_is_separated(make_client) -> None:  # type: ignore[no-untyped-def]
    c, _ = await make_client(scripted("I should greet.</think>\n\nHello!"))
    r = await c.post("/api/chat", json={"model": "thinker", "think": True, "stream": False,
                                        "messages": [{"role": "user", "content": "hi"}]})
    msg = r.json()["message"]
    assert msg["thinking"] == "I should greet." and msg["content"] == "Hello!"
    r = await c.post("/api/generate", json={"model": "thinker", "prompt": "hi"})  # default: on for thinking models
    chunks = [json.loads(x) for x in r.text.splitlines()]
    assert "".join(ch.get("thinking", "") for ch in chunks) == "I should greet."
    assert "".join(ch["response"] for ch in chunks) == "Hello!"
    r = await c.post("/v1/chat/completions", json={"model": "thinker", "reasoning_effort": "high",
                                                   "messages": [{"role": "user", "content": "hi"}]})
    assert r.json()["choices"][0]["message"] == {"role": "assistant", "content": "Hello!", "reasoning": "I should greet."}


async def test_think_false_and_models_that_cannot_think(make_client) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def respond(prompt: str, req: CompletionRequest) -> str:
        seen.append(prompt)
        return "Hello!"

    c, _ = await make_client(respond)
    r = await c.post("/api/chat", json={"model": "thinker", "think": False, "stream": False,
                                        "messages": [{"role": "user", "content": "hi"}]})
    assert r.json()["message"] == {"role": "assistant", "content": "Hello!"} and not seen[-1].endswith("<think>\n")
    r = await c.post("/api/chat", json={"model": "tiny", "think": True, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and r.json()["error"] == '"tiny" does not support thinking'
    r = await c.post("/api/generate", json={"model": "tiny", "think": "high", "prompt": "hi"})
    assert r.status_code == 400


# ---- embeddings ------------------------------------------------------------------------------


async def test_embed_batch_is_one_runner_call(make_client) -> None:  # type: ignore[no-untyped-def]
    c, factory = await make_client()
    r = await c.post("/api/embed", json={"model": "tiny", "input": ["a", "bb", "a"]})
    body = r.json()
    assert r.status_code == 200 and len(body["embeddings"]) == 3
    assert body["embeddings"][0] == body["embeddings"][2]
    for v in body["embeddings"]:
        assert abs(sum(x * x for x in v) - 1.0) < 1e-9
    assert body["prompt_eval_count"] == 4 and body["total_duration"] > 0
    assert len(factory.made[0].embed_batches) == 1
    r = await c.post("/api/embed", json={"model": "tiny", "input": "bb", "dimensions": 2})
    v = r.json()["embeddings"][0]
    assert len(v) == 2 and abs(sum(x * x for x in v) - 1.0) < 1e-9


async def test_embed_inputs_and_errors(make_client) -> None:  # type: ignore[no-untyped-def]
    c, _ = await make_client()
    assert (await c.post("/api/embed", json={"model": "tiny", "input": ""})).json() == {"model": "tiny", "embeddings": []}
    r = await c.post("/api/embed", json={"model": "tiny", "input": ["ok", 3]})
    assert r.status_code == 400 and r.json()["error"] == "invalid input type"
    r = await c.post("/api/embed", json={"model": "nope", "input": "x"})
    assert r.status_code == 404 and r.json()["error"] == 'model "nope" not found, try pulling it first'
    long = "x" * 600
    r = await c.post("/api/embed", json={"model": "tiny", "input": long, "truncate": False})
    assert r.status_code == 400 and r.json()["error"] == "the input length exceeds the context length"
    r = await c.post("/api/embed", json={"model": "tiny", "input": long})
    assert r.status_code == 200 and r.json()["prompt_eval_count"] == 512


async def test_legacy_embeddings_unnormalised_and_openai(make_client) -> None:  # type: ignore[no-untyped-def]
    c, _ = await make_client()
    r = await c.post("/api/embeddings", json={"model": "tiny", "prompt": "abc"})
    assert r.json()["embedding"] == [3.0, float(sum(map(ord, "abc")) % 97), 1.0]
    assert (await c.post("/api/embeddings", json={"model": "tiny", "prompt": ""})).json() == {"embedding": []}
    assert (await c.post("/api/embeddings", json={"model": "", "prompt": "x"})).status_code == 400
    r = await c.post("/v1/embeddings", json={"model": "tiny", "input": ["abc", "d"]})
    body = r.json()
    assert body["object"] == "list" and [d["index"] for d in body["data"]] == [0, 1]
    floats = body["data"][0]["embedding"]
    r = await c.post("/v1/embeddings", json={"model": "tiny", "input": ["abc"], "encoding_format": "base64"})
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(floats, rel=1e-6)


# ---- OpenAPI ---------------------------------------------------------------------------------


async def test_openapi_document_declares_bodies(make_client) -> None:  # type: ignore[no-untyped-def]
    c, _ = await make_client()
    doc = (await c.get("/openapi.json")).json()
    for path in ("/api/chat", "/api/generate", "/api/embed", "/v1/chat/completions", "/v1/messages"):
        ref = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]


