"""The native API through the in-process app, with the scripted fake runner."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from pollama.runner.fake import prompt_text
from pollama.runner.base import CompletionRequest


def lines(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(x) for x in r.text.splitlines()]


async def test_root_and_version(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 200 and r.text == "Ollama is running"
    assert (await client.head("/")).status_code == 200
    v = (await client.get("/api/version")).json()
    assert set(v) == {"version"} and v["version"].count(".") == 2


async def test_tags_lists_models_with_ollama_shape(client: httpx.AsyncClient) -> None:
    models = (await client.get("/api/tags")).json()["models"]
    assert [m["name"] for m in models] == ["tiny:latest"]
    m = models[0]
    assert m["model"] == "tiny:latest" and len(m["digest"]) == 64 and m["size"] > 0
    assert set(m["details"]) == {"parent_model", "format", "family", "families", "parameter_size", "quantization_level"}
    assert "T" in m["modified_at"] and m["modified_at"][-6] in "+-"


async def test_generate_streams_ndjson_then_final_metrics(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/generate", json={"model": "tiny", "prompt": "hello"})
    assert r.status_code == 200
    chunks = lines(r)
    assert all(c["done"] is False for c in chunks[:-1]) and len(chunks) > 2
    assert all(set(c) == {"model", "created_at", "response", "done"} for c in chunks[:-1])
    final = chunks[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["eval_count"] == len("".join(c["response"] for c in chunks))
    assert final["prompt_eval_count"] > 0 and final["total_duration"] >= final["load_duration"] > 0
    assert final["created_at"].endswith("Z") and len(final["created_at"].split(".")[1]) == 10
    assert isinstance(final["context"], list) and len(final["context"]) == final["prompt_eval_count"] + final["eval_count"]


async def test_generate_non_streaming_folds_the_response(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/generate", json={"model": "tiny", "prompt": "hello", "stream": False})
    body = r.json()
    assert r.headers["content-type"].startswith("application/json")
    assert body["done"] is True and body["response"] == "The quick brown fox jumps over the lazy dog."


async def test_generate_renders_model_template_and_system(client: httpx.AsyncClient, factory) -> None:  # type: ignore[no-untyped-def]
    await client.post("/api/generate", json={"model": "tiny", "prompt": "hi", "system": "Be brief.", "stream": False})
    req: CompletionRequest = factory.made[-1].requests[-1]
    prompt = prompt_text(req)
    assert prompt == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert req.stop == ["<|im_end|>"]  # from the model's params layer
    assert req.sampling["temperature"] == 0.5 and req.sampling["top_k"] == 40  # params over defaults


async def test_raw_prompt_is_sent_verbatim_without_context(client: httpx.AsyncClient, factory) -> None:  # type: ignore[no-untyped-def]
    r = await client.post("/api/generate", json={"model": "tiny", "prompt": "RAW", "raw": True, "stream": False})
    assert "context" not in r.json()
    assert prompt_text(factory.made[-1].requests[-1]) == "RAW"


async def test_options_are_merged_and_passed_to_the_runner(client: httpx.AsyncClient, factory) -> None:  # type: ignore[no-untyped-def]
    opts = {"temperature": 0, "seed": 42, "top_k": 5, "top_p": 0.5, "stop": ["x"], "num_predict": 7,
            "mirostat": 2, "tfs_z": 1.0, "not_an_option": True}
    r = await client.post("/api/generate", json={"model": "tiny", "prompt": "p", "options": opts, "stream": False})
    assert r.status_code == 200
    req = factory.made[-1].requests[-1]
    assert req.sampling["temperature"] == 0 and req.sampling["seed"] == 42 and req.sampling["top_k"] == 5
    assert req.stop == ["x"] and req.n_predict == 7


async def test_num_predict_caps_eval_count_with_length_reason(client: httpx.AsyncClient) -> None:
    body = (await client.post("/api/generate", json={"model": "tiny", "prompt": "hello", "stream": False,
                                                      "options": {"num_predict": 3}})).json()
    assert body["eval_count"] == 3 and len(body["response"]) == 3 and body["done_reason"] == "length"


async def test_chat_streams_messages(client: httpx.AsyncClient, factory) -> None:  # type: ignore[no-untyped-def]
    r = await client.post("/api/chat", json={"model": "tiny", "messages": [
        {"role": "system", "content": "S"}, {"role": "USER", "content": "U"}]})
    chunks = lines(r)
    assert all(c["message"]["role"] == "assistant" for c in chunks)
    assert chunks[-1]["done"] and chunks[-1]["done_reason"] == "stop" and "context" not in chunks[-1]
    prompt = prompt_text(factory.made[-1].requests[-1])
    assert prompt.startswith("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU")


async def test_chat_non_streaming(client: httpx.AsyncClient) -> None:
    body = (await client.post("/api/chat", json={"model": "tiny", "stream": False,
                                                  "messages": [{"role": "user", "content": "U"}]})).json()
    assert body["message"]["role"] == "assistant" and body["message"]["content"] == "The quick brown fox jumps over the lazy dog."
    assert body["done_reason"] == "stop" and body["eval_count"] == len(body["message"]["content"])


async def test_empty_prompt_loads_and_keep_alive_zero_unloads(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/generate", json={"model": "tiny"})
    assert r.json()["done_reason"] == "load" and r.json()["response"] == ""
    ps = (await client.get("/api/ps")).json()["models"]
    assert [m["name"] for m in ps] == ["tiny:latest"] and ps[0]["context_length"] == 2048  # the default 4096, capped at the trained length
    r = await client.post("/api/chat", json={"model": "tiny", "messages": [], "keep_alive": 0})
    assert r.json()["done_reason"] == "unload" and r.json()["message"] == {"role": "assistant", "content": ""}
    assert (await client.get("/api/ps")).json()["models"] == []


async def test_keep_alive_zero_unloads_after_the_request(client: httpx.AsyncClient) -> None:
    await client.post("/api/generate", json={"model": "tiny", "prompt": "x", "keep_alive": 0, "stream": False})
    assert (await client.get("/api/ps")).json()["models"] == []


async def test_keep_alive_negative_is_forever(client: httpx.AsyncClient) -> None:
    await client.post("/api/generate", json={"model": "tiny", "keep_alive": -1})
    ps = (await client.get("/api/ps")).json()["models"]
    assert int(ps[0]["expires_at"][:4]) > 2100


async def test_show(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/show", json={"model": "tiny"})
    body = r.json()
    assert r.status_code == 200
    assert body["capabilities"] == ["completion"]
    assert body["model_info"]["general.architecture"] == "llama"
    assert "tokenizer.chat_template" not in body["model_info"]
    assert body["model_info"]["tokenizer.ggml.tokens"] == []  # arrays > 5 hidden unless verbose
    assert body["parameters"].splitlines()[0] == 'stop                           "<|im_end|>"'
    assert body["modelfile"].startswith('# Modelfile generated by "ollama show"')
    assert body["template"].startswith("{% for message in messages %}")
    verbose = (await client.post("/api/show", json={"name": "tiny", "verbose": True})).json()
    assert len(verbose["model_info"]["tokenizer.ggml.tokens"]) == 6
    assert verbose["tensors"][0] == {"name": "token_embd.weight", "type": "F16", "shape": [8, 5]}


async def test_copy_and_delete(client: httpx.AsyncClient, tiny_store) -> None:  # type: ignore[no-untyped-def]
    assert (await client.post("/api/copy", json={"source": "tiny", "destination": "llama3.2:3b"})).status_code == 200
    names = [m["name"] for m in (await client.get("/api/tags")).json()["models"]]
    assert sorted(names) == ["llama3.2:3b", "tiny:latest"]
    blobs_before = set(p.name for p in tiny_store.blobs.iterdir())
    r = await client.request("DELETE", "/api/delete", json={"model": "llama3.2:3b"})
    assert r.status_code == 200 and r.content == b""
    assert set(p.name for p in tiny_store.blobs.iterdir()) == blobs_before  # still used by tiny
    await client.request("DELETE", "/api/delete", json={"model": "tiny"})
    assert list(tiny_store.blobs.iterdir()) == []
    assert (await client.get("/api/tags")).json() == {"models": []}


async def test_lookup_is_case_insensitive(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/generate", json={"model": "TINY:Latest", "prompt": "x", "stream": False})
    assert r.status_code == 200 and r.json()["model"] == "TINY:Latest"


async def test_runner_crash_mid_stream_ends_with_error_line_and_next_request_recovers(client: httpx.AsyncClient, factory) -> None:  # type: ignore[no-untyped-def]
    await client.post("/api/generate", json={"model": "tiny"})
    factory.made[-1].crash_after = 3
    chunks = lines(await client.post("/api/generate", json={"model": "tiny", "prompt": "x"}))
    assert chunks[-1] == {"error": "llama runner process no longer running: -9"}
    r = await client.post("/api/generate", json={"model": "tiny", "prompt": "x", "stream": False})
    assert r.status_code == 200 and r.json()["done"] is True
    assert len(factory.made) == 2


async def test_runner_that_fails_to_start_gives_500(settings, tiny_store) -> None:  # type: ignore[no-untyped-def]
    from pollama.engine import Engine
    from pollama.runner.fake import fake_factory
    from pollama.server.app import create_app

    eng = Engine(settings, store=tiny_store, runner_factory=fake_factory(fail_start="llama runner process has terminated: exit status 1"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(eng)), base_url="http://127.0.0.1") as c:
        r = await c.post("/api/generate", json={"model": "tiny", "prompt": "x"})
        assert r.status_code == 500 and r.json() == {"error": "llama runner process has terminated: exit status 1"}
    await eng.close()


async def test_pull_unknown_model_without_registry_reports_error(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/pull", json={"model": "nosuchmodel-xyz", "stream": False})
    assert r.status_code in (200, 500)
    assert "error" in r.json()


@pytest.mark.parametrize("path", ["/api/nothing", "/v2/whatever"])
async def test_unknown_route_is_plain_404(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 404 and r.text == "404 page not found"


async def test_wrong_method_is_plain_405(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/generate")
    assert r.status_code == 405 and r.text == "405 method not allowed"


async def test_foreign_host_header_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/tags", headers={"Host": "evil.example.com"})
    assert r.status_code == 403
    assert (await client.get("/api/tags", headers={"Host": "localhost:11434"})).status_code == 200


async def test_cors_preflight_from_localhost_origin(client: httpx.AsyncClient) -> None:
    r = await client.options("/api/chat", headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://localhost:3000"
    r = await client.options("/api/chat", headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers
