"""The official clients against a real ``pollama serve``: ``ollama``, ``openai`` and ``langchain-ollama``.

No client-side workarounds: each library is used as its documentation shows, pointed at the live
server. Generation is kept to a few tokens; the assertions are on what the libraries parse.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import ollama
import openai
import pytest
from langchain_ollama import ChatOllama, OllamaEmbeddings
from pydantic import BaseModel

from pollama.store.store import Store
from pollama.types.names import ModelName
from tests.integration.conftest import MODEL
from tests.integration.test_compat_real import WEATHER, derive, TEMPLATES

pytestmark = pytest.mark.integration

SHORT = {"seed": 7, "num_predict": 8}


class Pet(BaseModel):
    name: str
    age: int


@pytest.fixture(scope="module")
def toolie(live: Any) -> str:
    return derive(live.models, "toolie:latest", (TEMPLATES / "qwen2.5.gotmpl").read_text())


@pytest.fixture(scope="module")
def oc(live: Any) -> Iterator[ollama.Client]:
    client = ollama.Client(host=live.url, timeout=300)
    yield client
    client._client.close()


@pytest.fixture(scope="module")
def ai(live: Any) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=live.url + "/v1", api_key="ollama", timeout=300, max_retries=0) as client:
        yield client


# ---- ollama ---------------------------------------------------------------------------------------


def test_ollama_generate_and_chat(oc: ollama.Client) -> None:
    r = oc.generate(model=MODEL, prompt="Say hi.", options=SHORT)
    assert r.done and r.response and r.eval_count and r.eval_count <= 8
    parts = list(oc.generate(model=MODEL, prompt="Say hi.", options=SHORT, stream=True))
    assert parts[-1].done and "".join(p.response for p in parts) == r.response  # same seed, same text
    c = oc.chat(model=MODEL, messages=[{"role": "user", "content": "Hello"}], options=SHORT)
    assert c.message.role == "assistant" and c.message.content
    parts = list(oc.chat(model=MODEL, messages=[{"role": "user", "content": "Hello"}], options=SHORT, stream=True))
    assert parts[-1].done and "".join(p.message.content or "" for p in parts) == c.message.content


def test_ollama_format_tools_and_embed(oc: ollama.Client, toolie: str) -> None:
    r = oc.chat(model=MODEL, messages=[{"role": "user", "content": "A pet as JSON."}],
                format=Pet.model_json_schema(), options={"seed": 1, "num_predict": 40})
    Pet.model_validate_json(r.message.content or "")
    # tools: the request (with a tool-call and tool-result history) round-trips through the client
    history = [{"role": "user", "content": "Weather in Paris?"},
               {"role": "assistant", "content": "", "tool_calls": [
                   {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
               {"role": "tool", "content": "Sunny", "tool_name": "get_weather"}]
    r = oc.chat(model=toolie, messages=history, tools=[WEATHER], options=SHORT)
    assert r.done and r.message.role == "assistant"
    for call in r.message.tool_calls or []:
        assert isinstance(call.function.arguments, dict)
    with pytest.raises(ollama.ResponseError) as e:
        oc.chat(model=MODEL, messages=[{"role": "user", "content": "x"}], tools=[WEATHER])
    assert e.value.status_code == 400 and "does not support tools" in e.value.error
    emb = oc.embed(model=MODEL, input=["hello", "hello", "world"])
    assert len(emb.embeddings) == 3 and emb.embeddings[0] == emb.embeddings[1]
    assert len(oc.embeddings(model=MODEL, prompt="hello").embedding) == len(emb.embeddings[0])


def test_ollama_model_management(oc: ollama.Client) -> None:
    names = [m.model for m in oc.list().models]
    assert MODEL in names
    info = oc.show(MODEL)
    assert "completion" in (info.capabilities or []) and info.details.family
    assert oc.generate(model=MODEL).done_reason == "load"  # an empty prompt loads the model
    assert any(m.model == MODEL for m in oc.ps().models)
    oc.copy(MODEL, "pet-copy:1")
    assert "pet-copy:1" in [m.model for m in oc.list().models]
    oc.delete("pet-copy:1")
    assert "pet-copy:1" not in [m.model for m in oc.list().models]
    statuses = [p.status for p in oc.pull(MODEL, stream=True)]
    assert statuses[-1] == "success"
    with pytest.raises(ollama.ResponseError) as e:
        oc.show("no-such-model")
    assert e.value.status_code == 404


def test_ollama_create_from_a_model_and_from_an_uploaded_gguf(oc: ollama.Client, live: Any, tmp_path: Path) -> None:
    statuses = [p.status for p in oc.create(model="pet-terse:1", from_=MODEL, system="Answer in one word.",
                                            parameters={"num_predict": 4}, stream=True)]
    assert statuses[-2:] == ["writing manifest", "success"]
    info = oc.show("pet-terse:1")
    assert "SYSTEM Answer in one word." in (info.modelfile or "") and "num_predict" in (info.parameters or "")
    assert oc.generate(model="pet-terse:1", prompt="Colour of the sky?").eval_count <= 4
    # The client's documented way to create from a file: upload it as a blob, name it in files.
    store = Store(live.models)
    weights = store.read_manifest(ModelName.parse(MODEL))[0].first("application/vnd.ollama.image.model")
    assert weights is not None
    digest = oc.create_blob(store.blob_path(weights.digest))
    assert digest == weights.digest
    assert oc.create(model="pet-file:1", files={"model.gguf": digest}).status == "success"
    assert oc.show("pet-file:1").details.family == "llama"
    for name in ("pet-terse:1", "pet-file:1"):
        oc.delete(name)
    with pytest.raises(ollama.ResponseError) as e:
        oc.create(model="pet-bad:1", files={"model.gguf": "sha256:" + "0" * 64})
    assert e.value.status_code == 404 and e.value.error == f'blob "sha256:{"0" * 64}" not found'


# ---- openai ---------------------------------------------------------------------------------------


def test_openai_chat_stream_completions(ai: openai.OpenAI) -> None:
    msgs: Any = [{"role": "user", "content": "Say hello."}]
    r = ai.chat.completions.create(model=MODEL, messages=msgs, max_tokens=8, seed=3)
    assert r.choices[0].message.content and r.usage and r.usage.completion_tokens <= 8
    chunks = list(ai.chat.completions.create(model=MODEL, messages=msgs, max_tokens=8, seed=3, stream=True,
                                             stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == r.choices[0].message.content
    assert chunks[-1].usage and chunks[-1].usage.completion_tokens == r.usage.completion_tokens
    comp = ai.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=6, seed=1)
    assert comp.choices[0].text and comp.choices[0].finish_reason in ("stop", "length")


def test_openai_models_embeddings_errors(ai: openai.OpenAI) -> None:
    assert MODEL in [m.id for m in ai.models.list()]
    assert ai.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        ai.models.retrieve("nope:latest")
    e = ai.embeddings.create(model=MODEL, input=["a cat", "a cat"])
    assert len(e.data) == 2 and e.data[0].embedding == e.data[1].embedding
    b = ai.embeddings.create(model=MODEL, input="a cat", encoding_format="base64")
    raw = base64.b64decode(str(b.data[0].embedding))  # little-endian float32, as OpenAI sends it
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(e.data[0].embedding, abs=1e-6)
    with pytest.raises(openai.BadRequestError) as err:
        ai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                   response_format={"type": "json_schema", "json_schema": {
                                       "name": "bad", "schema": {"type": "object", "properties": {"a": {"$ref": "#/nope"}}}}})
    assert "invalid JSON schema" in str(err.value)


def test_openai_response_format_and_tools(ai: openai.OpenAI, toolie: str) -> None:
    r = ai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "A pet."}], seed=4, max_tokens=40,
                                   response_format={"type": "json_schema", "json_schema": {"name": "pet", "schema": Pet.model_json_schema()}})
    Pet.model_validate_json(r.choices[0].message.content or "")
    r = ai.chat.completions.create(model=toolie, messages=[{"role": "user", "content": "Weather in Rome?"}], tools=[WEATHER],  # type: ignore[list-item]
                                   tool_choice="required", seed=4, max_tokens=40)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and call.function.name == "get_weather"  # type: ignore[union-attr]
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])  # type: ignore[union-attr]


# ---- langchain ------------------------------------------------------------------------------------


def _close(*objs: Any) -> None:
    """LangChain never closes the ollama clients it holds; close them so no socket leaks."""
    for obj in objs:
        for name in ("_client", "_async_client"):
            inner = getattr(getattr(obj, name, None), "_client", None)
            if inner is not None and hasattr(inner, "close"):
                inner.close()


def test_langchain_invoke_stream_structured(live: Any) -> None:
    llm = ChatOllama(model=MODEL, base_url=live.url, num_predict=8, seed=5, temperature=0.8)
    schema_llm = ChatOllama(model=MODEL, base_url=live.url, num_predict=40, seed=5)
    emb = OllamaEmbeddings(model=MODEL, base_url=live.url)
    try:
        msg = llm.invoke("Say hi.")
        assert isinstance(msg.content, str) and msg.content
        pieces = [c.content for c in llm.stream("Say hi.")]
        assert "".join(str(p) for p in pieces) == msg.content
        pet = schema_llm.with_structured_output(Pet).invoke("Describe a pet.")
        assert isinstance(pet, Pet)
        assert len(emb.embed_query("hello")) == 576
    finally:
        _close(llm, schema_llm, emb)
