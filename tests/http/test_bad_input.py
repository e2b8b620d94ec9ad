"""Every bad input gets a clear 4xx with Ollama's message, and the server keeps serving."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

CASES: list[tuple[str, str, Any, int, str]] = [
    # (name, path, body, status, exact error message or prefix ending in '…')
    ("missing body", "/api/generate", b"", 400, "missing request body"),
    ("malformed json", "/api/generate", b"{not json", 400, "invalid JSON: …"),
    ("json not an object", "/api/chat", b"[1,2]", 400, "json: cannot unmarshal array into Go value of type api.ChatRequest"),
    ("missing model generate", "/api/generate", {"prompt": "x"}, 404, "model '' not found"),
    ("missing model chat", "/api/chat", {"messages": []}, 400, "model is required"),
    ("missing model show", "/api/show", {}, 400, "model is required"),
    ("unknown model", "/api/generate", {"model": "nope", "prompt": "x"}, 404, "model 'nope' not found"),
    ("unknown model chat", "/api/chat", {"model": "nope:1b", "messages": []}, 404, "model 'nope:1b' not found"),
    ("unknown model show", "/api/show", {"model": "nope"}, 404, "model 'nope:latest' not found"),
    ("invalid name", "/api/generate", {"model": "../../etc/passwd", "prompt": "x"}, 400, "invalid model name"),
    ("invalid name chars", "/api/chat", {"model": "a b", "messages": []}, 400, "invalid model name"),
    ("name too many parts", "/api/show", {"model": "a/b/c/d"}, 400, "invalid model name"),
    ("stream wrong type", "/api/generate", {"model": "tiny", "prompt": "x", "stream": "yes"}, 400,
     "json: cannot unmarshal string into Go struct field GenerateRequest.stream of type bool"),
    ("option wrong type", "/api/generate", {"model": "tiny", "prompt": "x", "options": {"num_ctx": "big"}}, 400,
     'option "num_ctx" must be of type integer'),
    ("option float wrong type", "/api/chat", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
     "options": {"temperature": "hot"}}, 400, 'option "temperature" must be of type float32'),
    ("stop wrong type", "/api/generate", {"model": "tiny", "prompt": "x", "options": {"stop": [1, 2]}}, 400,
     'option "stop" must be of an array of strings'),
    ("num_ctx beyond trained", "/api/generate", {"model": "tiny", "prompt": "x", "options": {"num_ctx": 100000}}, 400,
     "num_ctx 100000 exceeds the model's trained context length of 2048 tokens; use a value of at most 2048"),
    ("messages not a list", "/api/chat", {"model": "tiny", "messages": "hi"}, 400,
     "json: cannot unmarshal string into Go struct field ChatRequest.messages of type array"),
    ("message without role", "/api/chat", {"model": "tiny", "messages": [{"content": "x"}]}, 400, "invalid request: messages.0.role: Field required"),
    ("unknown role", "/api/chat", {"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]}, 400,
     "invalid role 'wizard' in message 0: must be one of system, user, assistant, tool"),
    ("raw with system", "/api/generate", {"model": "tiny", "prompt": "x", "raw": True, "system": "s"}, 400,
     "raw mode does not support template, system, or context"),
    ("bad format", "/api/generate", {"model": "tiny", "prompt": "x", "format": "xml"}, 400,
     "invalid format: 'xml'; expected \"json\" or a valid JSON Schema object"),
    ("bad think", "/api/generate", {"model": "tiny", "prompt": "x", "think": "hard"}, 400,
     'invalid think value: "hard" (must be "high", "medium", "low", "max", true, or false)'),
    ("think unsupported", "/api/chat", {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "think": True}, 400,
     '"tiny" does not support thinking'),
    ("tools unsupported", "/api/chat", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
     "tools": [{"type": "function", "function": {"name": "f"}}]}, 400, "registry.ollama.ai/library/tiny:latest does not support tools"),
    ("images unsupported", "/api/generate", {"model": "tiny", "prompt": "x", "images": ["aGk="]}, 400,
     "registry.ollama.ai/library/tiny:latest does not support images"),
    ("top_logprobs range", "/api/generate", {"model": "tiny", "prompt": "x", "logprobs": True, "top_logprobs": 21}, 400,
     "top_logprobs must be between 0 and 20"),
    ("keep_alive without unit", "/api/generate", {"model": "tiny", "keep_alive": "3600"}, 400,
     'time: missing unit in duration "3600"'),
    ("keep_alive wrong type", "/api/generate", {"model": "tiny", "keep_alive": [1]}, 400,
     "keep_alive must be a number of seconds or a duration string"),
    ("copy bad source", "/api/copy", {"source": "a b", "destination": "x"}, 400, 'source "a b" is invalid'),
    ("copy bad destination", "/api/copy", {"source": "tiny", "destination": "../x"}, 400, 'destination "../x" is invalid'),
    ("copy missing source", "/api/copy", {"source": "ghost", "destination": "x"}, 404, 'model "ghost" not found'),
    ("truncate false overflow", "/api/generate", {"model": "tiny", "prompt": "y" * 3000, "truncate": False}, 400,
     "the prompt is longer than the context length currently available to the model; …"),
]


@pytest.mark.parametrize("name,path,body,status,message", CASES, ids=[c[0] for c in CASES])
async def test_bad_input(client: httpx.AsyncClient, name: str, path: str, body: Any, status: int, message: str) -> None:
    if isinstance(body, bytes):
        r = await client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        r = await client.post(path, json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    if message.endswith("…"):
        assert err.startswith(message[:-1]), err
    else:
        assert err == message
    # The server keeps serving.
    ok = await client.post("/api/generate", json={"model": "tiny", "prompt": "still there?", "stream": False,
                                                   "options": {"num_predict": 2}})
    assert ok.status_code == 200 and ok.json()["done"] is True


async def test_delete_errors(client: httpx.AsyncClient) -> None:
    r = await client.request("DELETE", "/api/delete", json={"model": "ghost"})
    assert r.status_code == 404 and r.json()["error"] == "model 'ghost' not found"
    r = await client.request("DELETE", "/api/delete", json={"model": "a b"})
    assert r.status_code == 400 and r.json()["error"] == 'name "a b" is invalid'


async def test_body_over_the_limit_is_refused_before_it_is_read(client: httpx.AsyncClient) -> None:
    big = b'{"model":"tiny","prompt":"' + b"x" * (33 * 1024 * 1024) + b'"}'
    r = await client.post("/api/generate", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"].startswith("request body too large")
