"""Issue 5 with real parts: the bundled model, a real runner, a real ``pollama serve`` on loopback.

Structured outputs, embeddings, tool calls, thinking and logprobs on the real model, through the
native and compatibility APIs. Tools and thinking use Modelfile-style models: a manifest that puts
a tools-capable (or ``<think>``) TEMPLATE layer over the bundled GGUF, as ``ollama create`` would.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from pollama.store import manifest as mt
from pollama.store.manifest import Manifest
from pollama.store.store import Store
from pollama.types.names import ModelName
from tests.integration.conftest import MODEL

pytestmark = pytest.mark.integration

TEMPLATES = Path(__file__).parent.parent / "unit" / "data" / "templates"
THINK_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ if .Thinking }}<think>{{ .Thinking }}</think>\n{{ end }}{{ .Content }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n{{ if .Think }}<think>\n{{ end }}"
)
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city",
    "parameters": {"type": "object", "required": ["city"],
                   "properties": {"city": {"type": "string", "description": "The city"}}}}}
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["ok", "n"],
          "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 0, "maximum": 99}}}


def derive(models: Path, name: str, template: str) -> str:
    """A model made like ``FROM smollm2:135m`` + ``TEMPLATE …``: same weights, a new template layer."""
    store = Store(models)
    base, _ = store.read_manifest(ModelName.parse(MODEL))
    layers = [layer for layer in base.layers if layer.media_type != mt.MT_TEMPLATE]
    layers.append(store.write_blob_bytes(template.encode(), mt.MT_TEMPLATE))
    store.write_manifest(ModelName.parse(name), Manifest(config=base.config, layers=layers).to_bytes())
    return name


@pytest.fixture(scope="module")
def toolie(live: Any) -> str:
    return derive(live.models, "toolie:latest", (TEMPLATES / "qwen2.5.gotmpl").read_text())


@pytest.fixture(scope="module")
def thinker(live: Any) -> str:
    return derive(live.models, "thinker:latest", THINK_TEMPLATE)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


# ---- structured outputs ----------------------------------------------------------------------


def test_fifty_seeded_schema_samples_all_parse_and_validate(http: httpx.Client) -> None:
    def sample(seed: int) -> str:
        r = http.post("/api/generate", json={
            "model": MODEL, "prompt": "Is the sky blue? Answer with ok and a number.", "stream": False,
            "format": SCHEMA, "options": {"seed": seed, "temperature": 1.0, "num_predict": 32}})
        assert r.status_code == 200, r.text
        return str(r.json()["response"])

    with ThreadPoolExecutor(2) as pool:
        outputs = list(pool.map(sample, range(50)))
    for text in outputs:
        jsonschema.validate(json.loads(text), SCHEMA)
    assert len(set(outputs)) > 1, "different seeds should give different samples"


def test_format_json_and_unenforceable_schema(http: httpx.Client) -> None:
    r = http.post("/api/chat", json={"model": MODEL, "stream": False, "format": "json",
                                     "messages": [{"role": "user", "content": "Give me a JSON object about a cat."}],
                                     "options": {"seed": 3, "num_predict": 48}})
    assert r.status_code == 200
    body = r.json()
    if body["done_reason"] == "stop":
        assert isinstance(json.loads(body["message"]["content"]), (dict, list))
    r = http.post("/api/generate", json={"model": MODEL, "prompt": "x", "format": {"type": "object", "not": {}}})
    assert r.status_code == 400 and '"not"' in r.json()["error"]


# ---- embeddings -------------------------------------------------------------------------------


def test_embeddings_identity_similarity_and_normalisation(http: httpx.Client) -> None:
    texts = ["The cat sat on the mat.", "The cat sat on the mat.", "A cat was sitting on a mat.",
             "Quarterly revenue rose eight percent on strong bond sales."]
    r = http.post("/api/embed", json={"model": MODEL, "input": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    vecs = body["embeddings"]
    assert len(vecs) == 4 and len(vecs[0]) == 576
    assert vecs[0] == vecs[1]
    for v in vecs:
        assert abs(math.sqrt(sum(x * x for x in v)) - 1.0) < 1e-4
    assert cosine(vecs[0], vecs[2]) > cosine(vecs[0], vecs[3])
    assert body["prompt_eval_count"] >= 4 * 5
    legacy = http.post("/api/embeddings", json={"model": MODEL, "prompt": texts[0]}).json()["embedding"]
    assert abs(math.sqrt(sum(x * x for x in legacy)) - 1.0) > 1e-3  # not normalised
    assert cosine(legacy, vecs[0]) > 0.9999
    cut = http.post("/api/embed", json={"model": MODEL, "input": texts[0], "dimensions": 64}).json()["embeddings"][0]
    assert len(cut) == 64 and abs(sum(x * x for x in cut) - 1.0) < 1e-4


# ---- tools ------------------------------------------------------------------------------------


def test_required_tool_call_streams_as_a_real_call(http: httpx.Client, toolie: str) -> None:
    msgs = [{"role": "user", "content": "What is the weather in Paris?"}]
    with http.stream("POST", "/api/chat", json={"model": toolie, "messages": msgs, "tools": [WEATHER],
                                                  "tool_choice": "required", "options": {"seed": 1, "num_predict": 40}}) as r:
        assert r.status_code == 200
        chunks = [json.loads(line) for line in r.iter_lines() if line]
    calls = [(c["done"], tc) for c in chunks for tc in c["message"].get("tool_calls") or []]
    assert calls and all(done is False for done, _ in calls)
    call = calls[0][1]
    assert call["id"].startswith("call_") and len(call["id"]) == 13
    assert call["function"]["name"] == "get_weather" and call["function"]["index"] == 0
    jsonschema.validate(call["function"]["arguments"], WEATHER["function"]["parameters"])  # an object natively

    history = msgs + [{"role": "assistant", "content": "", "tool_calls": [call]},
                      {"role": "tool", "tool_name": "get_weather", "content": "Sunny, 24 C"}]
    r = http.post("/api/chat", json={"model": toolie, "messages": history, "tools": [WEATHER], "stream": False,
                                     "options": {"seed": 1, "num_predict": 12}})
    assert r.status_code == 200 and r.json()["done"] is True


def test_thinking_model_separates_reasoning(http: httpx.Client, thinker: str) -> None:
    msgs = [{"role": "user", "content": "What is 2+2?"}]
    on = http.post("/api/chat", json={"model": thinker, "messages": msgs, "stream": False, "think": True,
                                      "options": {"seed": 2, "num_predict": 12}}).json()
    assert on["message"].get("thinking"), on  # the prompt opens <think>: output is reasoning first
    off = http.post("/api/chat", json={"model": thinker, "messages": msgs, "stream": False, "think": False,
                                       "options": {"seed": 2, "num_predict": 12}}).json()
    assert "thinking" not in off["message"] and off["message"]["content"]
    r = http.post("/api/chat", json={"model": MODEL, "messages": msgs, "think": True})
    assert r.status_code == 400 and "does not support thinking" in r.json()["error"]


# ---- logprobs ---------------------------------------------------------------------------------


def test_logprobs_native_and_openai(http: httpx.Client) -> None:
    r = http.post("/api/generate", json={"model": MODEL, "prompt": "Hello", "stream": False, "logprobs": True,
                                         "top_logprobs": 3, "options": {"seed": 1, "num_predict": 4}})
    body = r.json()
    lps = body["logprobs"]
    assert len(lps) == body["eval_count"]
    assert "".join(lp["token"] for lp in lps) == body["response"]
    for lp in lps:
        assert lp["logprob"] <= 0 and isinstance(lp["bytes"], list) and len(lp["top_logprobs"]) == 3
        assert set(lp) == {"token", "logprob", "bytes", "top_logprobs"}
        assert lp["top_logprobs"][0]["logprob"] >= lp["top_logprobs"][-1]["logprob"]
    r = http.post("/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}],
                                                "logprobs": True, "top_logprobs": 2, "max_tokens": 3, "seed": 1})
    content = r.json()["choices"][0]["logprobs"]["content"]
    assert len(content) == 3 and all(len(c["top_logprobs"]) == 2 for c in content)
