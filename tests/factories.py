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
                    extra: dict[str, Any] | None = None, tensors: int = 1, block: str = "blk") -> Path:
    """A small valid GGUF; ``tensors`` > 1 adds random ``<block>.N.weight`` tensors of assorted
    types and sizes (so a file can be split, and a wrong byte would show)."""
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
    rng = np.random.default_rng(len(str(path)))
    for i in range(tensors - 1):
        dtype = (np.float32, np.float16)[i % 2]
        w.add_tensor(f"{block}.{i}.weight", rng.standard_normal((i % 3 + 1, 7 + i)).astype(dtype))
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


def _copy_metadata(reader: Any, writer: GGUFWriter, skip: tuple[str, ...] = ()) -> None:
    """Every key/value of ``reader`` into ``writer`` (the writer adds the architecture itself)."""
    from gguf import GGUFValueType

    for f in reader.fields.values():
        if f.name.startswith("GGUF.") or f.name in ("general.architecture", "general.alignment", *skip):
            continue
        vtype = f.types[0]
        writer.add_key_value(f.name, f.contents(), vtype, sub_type=f.types[-1] if vtype == GGUFValueType.ARRAY else None)


def _write_out(writer: GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def split_gguf(src: Path, out_dir: Path, prefix: str, shards: int) -> list[Path]:
    """Cut ``src`` into ``shards`` files the way llama.cpp's tools do, with the ``gguf`` package's
    own split writer (``<prefix>-00001-of-0000N.gguf`` …, ``split.*`` keys) — an independent
    producer for the tests of pollama's merge."""
    from gguf import GGUFReader

    reader = GGUFReader(src)
    per = -(-len(reader.tensors) // shards)
    writer = GGUFWriter(out_dir / f"{prefix}.gguf", str(reader.get_field("general.architecture").contents()),
                        split_max_tensors=per)
    _copy_metadata(reader, writer)
    for t in reader.tensors:
        writer.add_tensor(t.name, t.data, raw_shape=t.data.shape, raw_dtype=t.tensor_type)
    _write_out(writer)
    out = sorted(out_dir.glob(f"{prefix}-*-of-*.gguf"))
    assert len(out) == shards, out
    return out


def dequantized_gguf(src: Path, dst: Path) -> Path:
    """``src`` with every tensor expanded to F16 (1-D tensors to F32), with the ``gguf`` package's
    own dequantizers — an F16 model to quantize, where only quantized ones are bundled."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(src)
    writer = GGUFWriter(dst, str(reader.get_field("general.architecture").contents()))
    _copy_metadata(reader, writer, skip=("general.file_type",))
    writer.add_file_type(1)  # F16
    for t in reader.tensors:
        data = dequantize(t.data, t.tensor_type)
        writer.add_tensor(t.name, data.astype(np.float32 if data.ndim == 1 else np.float16))
    _write_out(writer)
    return dst
