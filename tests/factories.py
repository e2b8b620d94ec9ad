"""Builders for test fixtures: tiny GGUF files (written with the ``gguf`` package) and models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFWriter

from pollama.store import manifest as mt
from pollama.store.manifest import Manifest
from pollama.store.store import Store
from pollama.types.names import ModelName

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def write_tiny_gguf(path: Path, *, arch: str = "llama", ctx: int = 2048, chat_template: str | None = CHATML,
                    extra: dict[str, Any] | None = None) -> Path:
    w = GGUFWriter(str(path), arch)
    w.add_context_length(ctx)
    w.add_embedding_length(8)
    w.add_block_count(2)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_file_type(1)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "c"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    for k, v in (extra or {}).items():
        if isinstance(v, int):
            w.add_uint32(k, v)
        else:
            w.add_string(k, str(v))
    w.add_tensor("token_embd.weight", np.zeros((5, 8), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def add_model(store: Store, name: str, gguf: Path, *, template: str | None = None, system: str | None = None,
              params: dict[str, Any] | None = None, messages: list[dict[str, str]] | None = None) -> ModelName:
    layers = [store.import_file(gguf, mt.MT_MODEL)]
    if template is not None:
        layers.append(store.write_blob_bytes(template.encode(), mt.MT_TEMPLATE))
    if system is not None:
        layers.append(store.write_blob_bytes(system.encode(), mt.MT_SYSTEM))
    if params:
        layers.append(store.write_blob_json(params, mt.MT_PARAMS))
    if messages:
        layers.append(store.write_blob_json(messages, mt.MT_MESSAGES))
    cfg = store.write_blob_json({"model_format": "gguf", "model_family": "llama", "model_families": ["llama"],
                                 "model_type": "40", "file_type": "F16"}, mt.CONFIG_MEDIA_TYPE)
    n = ModelName.parse(name)
    store.write_manifest(n, Manifest(config=cfg, layers=layers).to_bytes())
    return n


def manifest_json(store: Store, name: str) -> dict[str, Any]:
    return json.loads(store.manifest_path(ModelName.parse(name)).read_bytes())
