"""/api/blobs and /api/create through the in-process app, and how the result renders prompts."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from gguf import GGUFReader, GGUFWriter
from gguf.quants import dequantize

from pollama.runner.fake import prompt_text
from pollama.store.modelfile import parse_modelfile
from pollama.store.store import Store
from pollama.types.names import ModelName
from tests.factories import split_gguf, write_tiny_gguf

LLAMA2 = "[INST] {{ if .System }}<<SYS>>{{ .System }}<</SYS>> {{ end }}{{ .Prompt }} [/INST]"
CHATML_GO = ("{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
             "<|im_start|>assistant\n")


def lines(r: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(x) for x in r.text.splitlines() if x.strip()]


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


async def upload(client: httpx.AsyncClient, data: bytes) -> str:
    d = digest_of(data)
    r = await client.post(f"/api/blobs/{d}", content=data)
    assert r.status_code in (200, 201)
    return d


def prompt_of(factory: Any) -> str:
    return prompt_text(factory.made[-1].requests[-1])


# ---- /api/blobs ------------------------------------------------------------------------------


async def test_blob_upload_head_and_mismatch(client: httpx.AsyncClient, tiny_store: Store) -> None:
    data = b"some bytes" * 1000
    d = digest_of(data)
    assert (await client.head(f"/api/blobs/{d}")).status_code == 404
    wrong = digest_of(b"other")
    r = await client.post(f"/api/blobs/{wrong}", content=data)
    assert r.status_code == 400
    assert r.json() == {"error": f'digest mismatch, expected "{wrong}", got "{d}"'}
    assert not tiny_store.has_blob(wrong) and not list(tiny_store.blobs.glob(".tmp-*"))
    r = await client.post(f"/api/blobs/{d}", content=data)
    assert r.status_code == 201 and r.content == b""
    assert tiny_store.blob_path(d).read_bytes() == data
    assert (await client.head(f"/api/blobs/{d}")).status_code == 200
    assert (await client.post(f"/api/blobs/{d}", content=b"not read")).status_code == 200
    dash = d.replace(":", "-")
    assert (await client.head(f"/api/blobs/{dash}")).status_code == 200


@pytest.mark.parametrize("bad", ["sha256:abc", "sha256:" + "g" * 64, "md5:" + "a" * 64, "sha256:" + "a" * 65,
                                 "sha256:..%2F..%2Fetc%2Fpasswd", "sha256-" + "a" * 63 + "%00"])
async def test_blob_digest_format_is_checked_before_any_file_access(client: httpx.AsyncClient, bad: str,
                                                                    tiny_store: Store) -> None:
    before = sorted(p.name for p in tiny_store.root.rglob("*"))
    assert (await client.head(f"/api/blobs/{bad}")).status_code in (400, 404)
    r = await client.post(f"/api/blobs/{bad}", content=b"x")
    assert r.status_code in (400, 404)  # 404: a path with "/" matches no route at all
    if r.status_code == 400:
        assert r.json() == {"error": "invalid digest format"}
    assert sorted(p.name for p in tiny_store.root.rglob("*")) == before


# ---- /api/create -----------------------------------------------------------------------------


async def test_create_from_uploaded_gguf_with_everything(client: httpx.AsyncClient, tmp_path: Path, factory: Any) -> None:
    gguf = write_tiny_gguf(tmp_path / "m.gguf").read_bytes()
    d = await upload(client, gguf)
    r = await client.post("/api/create", json={
        "model": "mine", "files": {"m.gguf": d}, "template": LLAMA2, "system": "Be terse.",
        "parameters": {"temperature": 0.2, "stop": ["[INST]"], "num_ctx": 1024},
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        "license": ["MIT", "Apache"]})
    assert r.status_code == 200
    out = lines(r)
    statuses = [x["status"] for x in out]
    assert statuses[0] == "parsing GGUF" and statuses[-2:] == ["writing manifest", "success"]
    assert f"using existing layer {d}" in statuses  # the uploaded GGUF
    assert any(s.startswith("creating new layer sha256:") for s in statuses)
    show = (await client.post("/api/show", json={"model": "mine"})).json()
    assert show["template"] == LLAMA2 and show["system"] == "Be terse." and show["license"] == "MIT\nApache"
    assert show["messages"] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert "temperature" in show["parameters"] and "num_ctx" in show["parameters"]
    # The Go TEMPLATE renders the prompt (legacy mode: one execution per turn, the model's
    # MESSAGE history first, as Ollama's generate does).
    await client.post("/api/generate", json={"model": "mine", "prompt": "why?", "stream": False})
    assert prompt_of(factory) == "[INST] <<SYS>>Be terse.<</SYS>> hi [/INST]hello[INST] why? [/INST]"
    assert factory.made[-1].requests[-1].stop == ["[INST]"]


async def test_prompt_template_order_go_then_jinja_then_raw(client: httpx.AsyncClient, tmp_path: Path,
                                                            factory: Any) -> None:
    with_jinja = await upload(client, write_tiny_gguf(tmp_path / "j.gguf").read_bytes())
    no_template = await upload(client, write_tiny_gguf(tmp_path / "n.gguf", chat_template=None).read_bytes())
    msgs = [{"role": "user", "content": "Q"}]
    for name, files, template in (("go", with_jinja, CHATML_GO.replace("im_", "IM_")), ("jinja", with_jinja, None),
                                  ("raw", no_template, None)):
        body: dict[str, Any] = {"model": name, "files": {"f.gguf": files}, "stream": False}
        if template:
            body["template"] = template
        assert (await client.post("/api/create", json=body)).json() == {"status": "success"}
        await client.post("/api/chat", json={"model": name, "messages": msgs, "stream": False})
        prompts = {"go": "<|IM_start|>user\nQ<|IM_end|>\n<|IM_start|>assistant\n",
                   "jinja": "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n", "raw": "Q"}
        assert prompt_of(factory) == prompts[name]


async def test_create_from_existing_model_overrides_and_merges(client: httpx.AsyncClient, tiny_store: Store) -> None:
    r = await client.post("/api/create", json={"model": "derived", "from": "tiny", "system": "New system",
                                               "parameters": {"top_k": 7}, "stream": False})
    assert r.json() == {"status": "success"}
    show = (await client.post("/api/show", json={"model": "derived"})).json()
    assert show["system"] == "New system"
    params = show["parameters"]
    assert "top_k" in params and "temperature" in params and '"<|im_end|>"' in params  # merged over tiny's
    assert show["details"]["parent_model"] == "tiny:latest"
    m = json.loads(tiny_store.manifest_path(tiny_store.resolve(__import__("pollama.types.names", fromlist=["x"]).ModelName.parse("derived"))).read_bytes())
    model_layer = next(layer for layer in m["layers"] if layer["mediaType"].endswith(".model"))
    assert model_layer["from"] == "tiny:latest"
    # An empty system removes it.
    await client.post("/api/create", json={"model": "derived", "from": "derived", "system": "", "stream": False})
    assert "system" not in (await client.post("/api/show", json={"model": "derived"})).json()


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"model": "x"}, 400, "neither 'from' or 'files' was specified"),
    ({"model": "../x", "from": "tiny"}, 400, "invalid model name"),
    ({"from": "tiny"}, 400, "model is required"),
    ({"model": "x", "from": "tiny", "quantize": "q3_K_S"}, 400,
     "unsupported quantization type q3_K_S - supported types are F32, F16, Q4_K_S, Q4_K_M, Q8_0"),
    ({"model": "x", "files": {"../m.gguf": "sha256:" + "a" * 64}}, 400, "file path must be relative"),
    ({"model": "x", "files": {"/etc/m.gguf": "sha256:" + "a" * 64}}, 400, "file path must be relative"),
    ({"model": "x", "files": {"m.gguf": ""}}, 400, "invalid digest format"),
    ({"model": "x", "files": {"m.gguf": "sha256:../../../etc/passwd"}}, 400, "invalid digest format"),
    ({"model": "x", "files": {"m.gguf": "sha256:" + "a" * 64}}, 404, f'blob "sha256:{"a" * 64}" not found'),
    ({"model": "x", "from": "tiny", "template": "{{ .Prompt "}, 400, "template error: template: :1: unclosed action"),
    ({"model": "x", "from": "tiny", "adapters": {"a": "sha256:" + "a" * 64, "b": "sha256:" + "b" * 64}}, 400,
     "only one adapter is currently supported"),
    ({"model": "x", "from": "tiny", "parameters": {"bogus": 1}}, 400, "unknown parameter 'bogus'"),
    ({"model": "x", "from": "tiny", "messages": [{"role": "wizard", "content": "x"}]}, 400,
     'message role must be one of "system", "user", or "assistant"'),
    ({"model": "x", "modelfile": "FROM /etc/passwd\n"}, 400, None),
])
async def test_create_refusals(client: httpx.AsyncClient, body: dict[str, Any], status: int, error: str | None) -> None:
    r = await client.post("/api/create", json=body)
    assert r.status_code == status, r.text
    if error is not None:
        assert r.json() == {"error": error}
    else:
        assert r.json()["error"]
    assert "x:latest" not in [m["name"] for m in (await client.get("/api/tags")).json()["models"]]


def float_model(path: Path, file_type: int = 1) -> Path:
    """A small F16 llama-shaped GGUF whose rows are whole 256-element blocks (so Q4_K applies)."""
    rng = np.random.default_rng(7)
    w = GGUFWriter(str(path), "llama")
    w.add_block_count(8)
    w.add_context_length(512)
    w.add_embedding_length(256)
    w.add_file_type(file_type)
    w.add_tensor("token_embd.weight", rng.standard_normal((6, 256)).astype(np.float16))
    for i in range(8):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(256, dtype=np.float32))
        w.add_tensor(f"blk.{i}.attn_v.weight", rng.standard_normal((2, 256)).astype(np.float16))
        w.add_tensor(f"blk.{i}.ffn_down.weight", rng.standard_normal((2, 512)).astype(np.float16))
    w.add_tensor("output_norm.weight", np.ones(256, dtype=np.float32))
    w.add_tensor("output.weight", rng.standard_normal((6, 256)).astype(np.float16))
    w.add_tensor("odd.weight", rng.standard_normal((2, 96)).astype(np.float16))  # rows of 96: no Q4_K
    w.add_tensor("empty.weight", np.zeros((0, 256), dtype=np.float16))  # nothing to quantize: copied
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


async def test_quantize_to_q4_k_m_with_ollamas_per_tensor_choices(client: httpx.AsyncClient, tiny_store: Store,
                                                                  tmp_path: Path) -> None:
    src = float_model(tmp_path / "f16.gguf")
    d = await upload(client, src.read_bytes())
    r = await client.post("/api/create", json={"model": "q", "files": {"f16.gguf": d}, "quantize": "q4_K_M"})
    out = lines(r)
    progress = [x for x in out if x["status"] == "quantizing F16 model to Q4_K_M"]
    assert progress and progress[-1]["completed"] == progress[-1]["total"] == len(src.read_bytes())
    assert progress[0]["digest"] == "0000000000000000000" and out[-1] == {"status": "success"}
    show = (await client.post("/api/show", json={"model": "q"})).json()
    assert show["details"]["quantization_level"] == "Q4_K_M"
    manifest, _ = tiny_store.read_manifest(ModelName.parse("q"))
    model = manifest.first("application/vnd.ollama.image.model")
    assert model is not None and model.digest != d and model.size < 0.6 * len(src.read_bytes())
    q, orig = GGUFReader(tiny_store.blob_path(model.digest)), GGUFReader(src)
    types = {t.name: t.tensor_type.name for t in q.tensors}
    # Q4_K_M: Q6_K for attn_v/ffn_down in the first and last eighth and every third layer between
    # (layers 0, 3, 6, 7 of 8), Q6_K for the output; norms stay F32; 96-wide rows fall back to Q5_0.
    assert [types[f"blk.{i}.attn_v.weight"] for i in range(8)] == ["Q6_K", "Q4_K", "Q4_K", "Q6_K", "Q4_K", "Q4_K",
                                                                   "Q6_K", "Q6_K"]
    assert [types[f"blk.{i}.ffn_down.weight"] for i in range(8)] == [types[f"blk.{i}.attn_v.weight"] for i in range(8)]
    assert types["output.weight"] == "Q6_K" and types["token_embd.weight"] == "Q4_K"
    assert types["output_norm.weight"] == types["blk.0.attn_norm.weight"] == "F32" and types["odd.weight"] == "Q5_0"
    assert types["empty.weight"] == "F16"
    # The blocks are llama.cpp's: gguf's own dequantizers read them back close to the source.
    for t, s in zip(q.tensors, orig.tensors):
        back = dequantize(t.data, t.tensor_type).reshape(-1)
        ref = np.asarray(s.data, dtype=np.float32).reshape(-1)
        if not ref.size:
            continue
        assert np.sqrt(np.mean((back - ref) ** 2)) < 0.12 * (np.std(ref) or 1), t.name


async def test_quantize_refusals_and_no_ops(client: httpx.AsyncClient, tiny_store: Store, tmp_path: Path) -> None:
    quantized = await upload(client, float_model(tmp_path / "q.gguf", file_type=15).read_bytes())
    r = await client.post("/api/create", json={"model": "x", "files": {"q.gguf": quantized}, "quantize": "q8_0"})
    assert lines(r)[-1] == {"error": "quantization is only supported for F16, BF16 and F32 models"}
    assert not tiny_store.has_model(ModelName.parse("x"))
    assert not list(tiny_store.blobs.glob(".tmp-*"))
    cut = await upload(client, float_model(tmp_path / "cut.gguf").read_bytes()[:-600])  # truncated tensor data
    r = await client.post("/api/create", json={"model": "x", "files": {"cut.gguf": cut}, "quantize": "q4_K_M"})
    assert re.fullmatch(r"quantizing to Q4_K_M failed: invalid GGUF file: sha256-[0-9a-f]{64} is truncated or "
                        r"tensor '[a-z_.]+' lies outside it", lines(r)[-1]["error"])
    assert not tiny_store.has_model(ModelName.parse("x")) and not list(tiny_store.blobs.glob(".tmp-*"))
    f16 = await upload(client, float_model(tmp_path / "f.gguf").read_bytes())
    r = await client.post("/api/create", json={"model": "same", "files": {"f.gguf": f16}, "quantize": "F16"})
    assert not any(x["status"].startswith("quantizing") for x in lines(r) if "status" in x)
    assert tiny_store.read_manifest(ModelName.parse("same"))[0].layers[0].digest == f16  # already F16: untouched


async def test_create_rejects_a_file_that_is_not_gguf(client: httpx.AsyncClient) -> None:
    d = await upload(client, b"#!/bin/sh\necho not a model\n")
    r = await client.post("/api/create", json={"model": "x", "files": {"run.sh": d}, "stream": False})
    assert r.status_code == 400 and r.json() == {"error": "supplied file was not in GGUF format"}


async def test_legacy_modelfile_field_with_a_model_name(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/create", json={"name": "legacy", "modelfile": "FROM tiny\nSYSTEM old style\n",
                                               "stream": False})
    assert r.json() == {"status": "success"}
    assert (await client.post("/api/show", json={"model": "legacy"})).json()["system"] == "old style"


async def test_show_modelfile_recreates_the_same_model(client: httpx.AsyncClient, tiny_store: Store, tmp_path: Path) -> None:
    d = await upload(client, write_tiny_gguf(tmp_path / "m.gguf").read_bytes())
    await client.post("/api/create", json={
        "model": "orig", "files": {"m.gguf": d}, "template": LLAMA2, "system": 'Say "hi"\nthen stop.',
        "parameters": {"temperature": 0.25, "stop": ["[INST]", "</s>"], "num_ctx": 512},
        "messages": [{"role": "user", "content": "a"}], "license": "MIT", "stream": False})
    text = (await client.post("/api/show", json={"model": "orig"})).json()["modelfile"]
    mf = parse_modelfile(text)
    path = Path(mf.from_[0])
    assert path.is_file()  # FROM names the blob, which `pollama create` hashes and uploads
    blob = await upload(client, path.read_bytes())
    req = mf.to_create_request(files={path.name: blob})
    r = await client.post("/api/create", json={"model": "copy", "stream": False, **req})
    assert r.json() == {"status": "success"}, r.text

    def layers(name: str) -> list[tuple[str, str]]:
        from pollama.types.names import ModelName

        m, _ = tiny_store.read_manifest(ModelName.parse(name))
        return sorted((layer.media_type, layer.digest) for layer in m.layers)

    assert layers("copy") == layers("orig")


# ---- split GGUFs ------------------------------------------------------------------------------


@pytest.fixture
def shards(tmp_path: Path) -> tuple[bytes, list[Path]]:
    original = write_tiny_gguf(tmp_path / "whole.gguf", tensors=7)
    d = tmp_path / "shards"
    d.mkdir()
    return original.read_bytes(), split_gguf(original, d, "tiny-Q8_0", 3)


async def test_create_merges_a_split_gguf_from_its_shards(client: httpx.AsyncClient, tiny_store: Store,
                                                          shards: tuple[bytes, list[Path]]) -> None:
    original, paths = shards
    files = {p.name: await upload(client, p.read_bytes()) for p in reversed(paths)}  # any order
    r = await client.post("/api/create", json={"model": "merged", "files": files})
    assert r.status_code == 200, r.text
    statuses = [x["status"] for x in lines(r)]
    assert statuses[:2] == ["parsing GGUF", "merging 3 GGUF shards"] and statuses[-1] == "success"
    manifest, _ = tiny_store.read_manifest(ModelName.parse("merged"))
    model = manifest.first("application/vnd.ollama.image.model")
    assert model is not None and model.digest == digest_of(original)
    assert tiny_store.blob_path(model.digest).read_bytes() == original
    assert not any(tiny_store.has_blob(d) for d in files.values())  # the shards are not kept
    show = (await client.post("/api/show", json={"model": "merged"})).json()
    assert not any(k.startswith("split.") for k in show["model_info"])


async def test_create_refuses_an_incomplete_or_mismatched_split(client: httpx.AsyncClient, tiny_store: Store,
                                                                shards: tuple[bytes, list[Path]]) -> None:
    _, paths = shards
    digests = [await upload(client, p.read_bytes()) for p in paths]
    r = await client.post("/api/create", json={"model": "half", "files": {paths[0].name: digests[0],
                                                                          paths[2].name: digests[2]}})
    assert r.status_code == 400
    assert r.json() == {"error": "split GGUF tiny-Q8_0 is incomplete: missing tiny-Q8_0-00002-of-00003.gguf"}
    r = await client.post("/api/create", json={"model": "huge", "files": {"tiny-Q8_0-00001-of-99999.gguf": digests[0]}})
    assert r.status_code == 400 and r.json() == {"error": "split GGUF tiny-Q8_0 is incomplete: missing "
                                                 "tiny-Q8_0-00002-of-99999.gguf, tiny-Q8_0-00003-of-99999.gguf, "
                                                 "tiny-Q8_0-00004-of-99999.gguf and 99995 more"}
    swapped = {paths[0].name: digests[0], paths[1].name: digests[2], paths[2].name: digests[1]}
    r = await client.post("/api/create", json={"model": "swapped", "files": swapped})
    # Found while merging, after the stream has started: the stream ends with the error.
    assert r.status_code == 200 and lines(r)[-1]["error"].startswith(
        "tiny-Q8_0-00002-of-00003.gguf: its metadata says shard 3 of 3 (split.no 2, split.count 3)")
    assert not tiny_store.has_model(ModelName.parse("half")) and not tiny_store.has_model(ModelName.parse("swapped"))
    assert all(tiny_store.has_blob(d) for d in digests)  # a refused create removes nothing uploaded


async def test_a_client_that_goes_away_stops_the_quantizer_and_leaves_nothing(tiny_store: Store,
                                                                              tmp_path: Path) -> None:
    from pollama.engine.create import _quantize
    from pollama.store.manifest import Layer

    src = float_model(tmp_path / "f16.gguf")
    layer = tiny_store.import_file(src, "application/vnd.ollama.image.model")
    got: list[Layer] = []
    steps = _quantize(tiny_store, layer, "F16", "Q4_K_M", got.append)
    first = await steps.__anext__()
    assert first["status"] == "quantizing F16 model to Q4_K_M" and first["completed"] == 0
    await steps.aclose()  # what the server does when the client disconnects
    assert got == [] and not list(tiny_store.blobs.glob(".tmp-*"))
    assert _quantizer_processes() == []


def _quantizer_processes() -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and b"pollama.store.quantize" in (p / "cmdline").read_bytes():
                out.append(int(p.name))
        except OSError:  # gone meanwhile, or not ours to read
            pass
    return out
