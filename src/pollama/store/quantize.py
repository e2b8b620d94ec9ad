"""Quantizing an F32/F16/BF16 GGUF model (``pollama create --quantize``, ``/api/create``'s
``quantize``), with llama.cpp's own quantizers.

The bytes come from ggml's ``ggml_quantize_chunk`` — the function llama.cpp's ``llama-quantize``
calls — reached with :mod:`ctypes` in the engine library the ``xllamacpp`` wheel already ships,
so a Q4_K block is exactly the block llama.cpp would write. Which tensors are quantized, and to
what, follows Ollama's rules (its port of llama.cpp's ``llama_tensor_get_type``):

* only 2-D (and 3-D expert) ``*weight`` tensors; never norms, the expert router
  (``ffn_gate_inp``), position/token-type embeddings, vision (``v.``/``mm.``) or SSM/RWKV small
  tensors;
* ``output.weight`` (and ``token_embd.weight`` when the model has no separate output) gets
  Q6_K, or Q8_0 when its rows do not split into 256-element blocks (or the target is Q8_0);
* ``Q4_K_M`` gives Q6_K to ``attn_v`` and ``ffn_down`` in the first and last eighth of the layers
  and every third layer between; ``Q4_K_S`` gives Q5_K to the first four ``attn_v`` and the first
  eighth of ``ffn_down``; ``attn_qkv`` is Q5_K under ``Q4_K_M``; 8-expert models keep ``attn_v``
  and ``attn_k`` at Q8_0;
* a tensor whose rows are not whole blocks falls back (Q4_K→Q5_0, Q5_K→Q5_1, Q6_K→Q8_0, else F16).

Targets are Ollama's: ``F32``, ``F16``, ``BF16``, ``Q8_0``, ``Q4_K_S``, ``Q4_K_M`` (``Q4_K``
means ``Q4_K_M``); the source must be an F32, F16 or BF16 model, as in Ollama. Everything is
streamed a tensor at a time (rows in chunks, on every core), so memory stays bounded by the
largest chunk, not the model.

Run as ``python -m pollama.store.quantize SRC DST TYPE``: the server runs it as a child process,
so a failure inside the C library cannot take the server down; it prints one JSON line of
progress per chunk (``{"completed": …, "total": …}``) and exits non-zero with the error on stderr.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pollama.errors import GGUFError, InvalidRequest
from pollama.store.gguf import GGUFInfo, TensorEntry
from pollama.store.gguf_write import copy_data, header, kv_u32

# ggml tensor types
F32, F16, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, BF16 = 0, 1, 6, 7, 8, 12, 13, 14, 30
BLOCK = {F32: 1, F16: 1, BF16: 1, Q5_0: 32, Q5_1: 32, Q8_0: 32, Q4_K: 256, Q5_K: 256, Q6_K: 256}
FLOAT_TYPES = (F32, F16, BF16)

# target → (llama file type written to general.file_type, default tensor type)
TARGETS: dict[str, tuple[int, int]] = {
    "F32": (0, F32), "F16": (1, F16), "BF16": (32, BF16), "Q8_0": (7, Q8_0),
    "Q4_K_S": (14, Q4_K), "Q4_K_M": (15, Q4_K),
}
SUPPORTED = ("F32", "F16", "Q4_K_S", "Q4_K_M", "Q8_0")  # as Ollama lists them (BF16 accepted too)
SOURCE_FILE_TYPES = ("F32", "F16", "BF16")
CHUNK_ELEMENTS = 1 << 22  # rows per quantize call: ~16 MiB of float32


def parse_target(name: str) -> str:
    """The canonical target for a requested type, or Ollama's error for an unsupported one.

    >>> parse_target("q4_k_m"), parse_target("Q4_K"), parse_target("f16")
    ('Q4_K_M', 'Q4_K_M', 'F16')
    """
    t = name.strip().upper()
    t = "Q4_K_M" if t == "Q4_K" else t
    if t not in TARGETS:
        raise InvalidRequest(f"unsupported quantization type {name} - supported types are {', '.join(SUPPORTED)}")
    return t


def check_source(info: GGUFInfo) -> None:
    """Only unquantized models can be quantized (Ollama's rule and message)."""
    if info.file_type not in SOURCE_FILE_TYPES:
        raise InvalidRequest("quantization is only supported for F16, BF16 and F32 models")


@dataclass
class _State:
    n_attn_v: int = 0
    n_ffn_down: int = 0
    i_attn_v: int = 0
    i_ffn_down: int = 0
    has_output: bool = False
    n_experts: int = 1


def _more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _quantizable(t: TensorEntry) -> bool:
    name = t.name
    if not name.endswith("weight") or len(t.shape) < 2 or 0 in t.shape:
        return False  # (an empty tensor has nothing to quantize: copied as it is)
    if ("v." in name and "_v." not in name) or "mm." in name:
        return False  # vision tower and projector
    skip = ("_norm.weight", "ffn_gate_inp.weight", "ssm_conv1d.weight", "time_mix_first.weight",
            "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
            "time_mix_lerp_fused.weight", "attn_rel_b.weight", "per_layer_token_embd.weight")
    return not any(s in name for s in skip) and name not in ("position_embd.weight", "token_types.weight")


def _fallback(new: int, cols: int) -> int:
    if BLOCK.get(new, 1) > 1 and cols % BLOCK[new]:
        new = {Q4_K: Q5_0, Q5_K: Q5_1, Q6_K: Q8_0}.get(new, new)
        if cols % BLOCK.get(new, 1):
            new = F16
    return new


def _tensor_type(st: _State, default: int, target: str, t: TensorEntry) -> int:
    name, cols, new = t.name, t.shape[0], default
    if name == "output.weight" or (not st.has_output and name == "token_embd.weight"):
        new = Q8_0 if cols % BLOCK[new] or new == Q8_0 else Q6_K
    elif "attn_v.weight" in name:
        if target == "Q4_K_M" and _more_bits(st.i_attn_v, st.n_attn_v):
            new = Q6_K
        elif target == "Q4_K_S" and st.i_attn_v < 4:
            new = Q5_K
        if st.n_experts == 8:
            new = Q8_0
        st.i_attn_v += 1
    elif "attn_k.weight" in name:
        if st.n_experts == 8:
            new = Q8_0
    elif "ffn_down" in name:
        if target == "Q4_K_M" and _more_bits(st.i_ffn_down, st.n_ffn_down):
            new = Q6_K
        elif target == "Q4_K_S" and st.i_ffn_down < st.n_ffn_down // 8:
            new = Q5_K
        st.i_ffn_down += 1
    elif "attn_output.weight" in name:
        if st.n_experts == 8 and target in ("Q4_K_S", "Q4_K_M"):
            new = Q5_K
    elif "attn_qkv.weight" in name and target == "Q4_K_M":
        new = Q5_K
    return _fallback(new, cols)


def plan(info: GGUFInfo, entries: Sequence[TensorEntry], target: str) -> list[int]:
    """The ggml type each tensor gets under ``target`` (a tensor not quantized keeps its own)."""
    default = TARGETS[target][1]
    layers = {t.name.split(".")[1] for t in entries if t.name.startswith("blk.") and t.name.count(".") >= 2}
    experts = info.arch_key("expert_count")
    st = _State(
        n_attn_v=sum(1 for t in entries if any(k in t.name for k in ("attn_v.weight", "attn_qkv.weight",
                                                                    "attn_kv_b.weight"))),
        n_ffn_down=len(layers),
        has_output=any(t.name == "output.weight" for t in entries),
        n_experts=max(1, experts if isinstance(experts, int) else 1),
    )
    out = []
    for t in entries:
        if not _quantizable(t) or t.ggml_type not in FLOAT_TYPES:
            out.append(t.ggml_type)
        elif default in FLOAT_TYPES:  # a float conversion: no per-tensor choices (as llama.cpp)
            out.append(default)
        else:
            out.append(_tensor_type(st, default, target, t))
    return out


class _GGML:
    """ggml's quantizer, from the engine library of the ``xllamacpp`` wheel."""

    def __init__(self) -> None:
        spec = importlib.util.find_spec("xllamacpp")
        found = glob.glob(os.path.join(list(spec.submodule_search_locations or [])[0], "xllamacpp*.so")) if spec else []
        if not found:
            raise GGUFError("cannot quantize: the xllamacpp engine library is not installed")
        lib = ctypes.CDLL(found[0])
        self.quantize_chunk = lib.ggml_quantize_chunk
        self.quantize_chunk.restype = ctypes.c_size_t
        self.quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
        self.row_size = lib.ggml_row_size
        self.row_size.restype = ctypes.c_size_t
        self.row_size.argtypes = [ctypes.c_int, ctypes.c_int64]


def _as_float32(raw: Any, ggml_type: int) -> Any:
    import numpy as np

    if ggml_type == F32:
        return np.frombuffer(raw, dtype="<f4")
    if ggml_type == F16:
        return np.frombuffer(raw, dtype="<f2").astype(np.float32)
    return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)  # BF16


def quantize_file(src: Path, write: Callable[[bytes], object], target: str,
                  progress: Callable[[int, int], None] | None = None, threads: int | None = None) -> int:
    """Write ``src`` quantized to ``target``; return the bytes written. ``progress(done, total)``
    counts source tensor bytes."""
    import numpy as np

    from pollama.store.gguf_split import read_shard  # its checks: every tensor inside the file

    target = parse_target(target)
    shard = read_shard(src)
    check_source(shard.info)
    types = plan(shard.info, shard.layout.entries, target)
    ggml = _GGML()
    kvs = []
    with open(src, "rb") as f:
        for key, start, end in shard.layout.kv_spans:
            if key != "general.file_type":
                f.seek(start)
                kvs.append(f.read(end - start))
    kvs.append(kv_u32("general.file_type", TARGETS[target][0]))
    sizes = []
    for t, new in zip(shard.layout.entries, types):
        rows = 1
        for d in t.shape[1:]:
            rows *= d
        sizes.append(int(ggml.row_size(new, t.shape[0])) * rows)
    align = shard.alignment
    head = header(kvs, [(t.name, t.shape, new, n) for t, new, n in zip(shard.layout.entries, types, sizes)], align)
    write(head)
    written = len(head)
    total = sum(shard.nbytes)
    done = 0
    workers = max(1, threads or os.cpu_count() or 1)
    with open(src, "rb") as f, ThreadPoolExecutor(workers) as pool:
        for t, old_n, new, new_n in zip(shard.layout.entries, shard.nbytes, types, sizes):
            if new == t.ggml_type:
                written += copy_data(f, shard.data_start + t.offset, old_n, align, write)
            else:
                cols = t.shape[0]
                rows = old_n // (cols * {F32: 4, F16: 2, BF16: 2}[t.ggml_type])
                step = max(1, CHUNK_ELEMENTS // cols)
                row_bytes = int(ggml.row_size(new, cols))
                f.seek(shard.data_start + t.offset)
                for first in range(0, rows, step):
                    n_rows = min(step, rows - first)
                    raw = f.read(n_rows * old_n // rows)
                    x = np.ascontiguousarray(_as_float32(raw, t.ggml_type))
                    out = np.empty(n_rows * row_bytes, dtype=np.uint8)
                    part = max(1, -(-n_rows // workers))

                    def one(r0: int, x: Any = x, out: Any = out, n_rows: int = n_rows, part: int = part) -> int:
                        k = min(part, n_rows - r0)
                        return int(ggml.quantize_chunk(new, x.ctypes.data + r0 * cols * 4,
                                                       out.ctypes.data + r0 * row_bytes, 0, k, cols, None))

                    got = sum(pool.map(one, range(0, n_rows, part)))
                    if got != len(out):
                        raise GGUFError(f"quantizing {t.name}: {got} bytes produced, {len(out)} expected")
                    write(out.tobytes())
                    if progress is not None:
                        progress(done + (first + n_rows) * old_n // rows, total)
                extra = -new_n % align
                write(b"\0" * extra)
                written += new_n + extra
            done += old_n
            if progress is not None:
                progress(done, total)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m pollama.store.quantize SRC DST TYPE", file=sys.stderr)
        return 2
    src, dst, target = Path(argv[0]), Path(argv[1]), argv[2]
    last = [-1.0]

    def report(done: int, total: int) -> None:
        if done == total or done - last[0] >= total / 200:
            last[0] = done
            print(json.dumps({"completed": done, "total": total}), flush=True)

    try:
        with open(dst, "wb") as out:
            quantize_file(src, out.write, target, report)
    except (GGUFError, InvalidRequest, OSError) as e:
        print(getattr(e, "message", None) or str(e), file=sys.stderr)
        return 1
    except Exception as e:  # a bug, or a file our checks let through: one clear last line
        print(f"unexpected {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
