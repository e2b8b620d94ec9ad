"""Memory arithmetic for the scheduler: what a model needs, what the machine has (pure)."""

from __future__ import annotations

from pathlib import Path

from pollama.store.gguf import GGUFInfo

KV_BYTES_PER_VALUE = 2  # f16 K and V caches
RUNNER_OVERHEAD = 150 << 20  # the Python process hosting llama.cpp, its buffers and graph


def estimate_model_memory(info: GGUFInfo, weights_bytes: int, num_ctx: int, num_parallel: int) -> int:
    """Weights + KV cache for ``num_ctx × num_parallel`` tokens + a fixed runner overhead."""
    layers = int(info.arch_key("block_count") or 0)
    heads = int(info.arch_key("attention.head_count") or 0) or 1
    heads_kv = info.arch_key("attention.head_count_kv")
    heads_kv = int(heads_kv if isinstance(heads_kv, int) else heads)
    key_len = info.arch_key("attention.key_length")
    head_dim = int(key_len) if isinstance(key_len, int) else (info.embedding_length // heads if heads else 0)
    kv = 2 * layers * num_ctx * num_parallel * heads_kv * head_dim * KV_BYTES_PER_VALUE
    return weights_bytes + kv + RUNNER_OVERHEAD


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int:
    """``MemAvailable`` in bytes (0 when unknown, which the scheduler treats as 'no limit')."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
