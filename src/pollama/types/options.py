"""Model options (reference §4): the table of names, types and defaults, and the merge rule."""

from __future__ import annotations

import logging
from typing import Any

from pollama.errors import InvalidOption

log = logging.getLogger("pollama.options")

# name → (type, default). Types are Ollama's words in its error messages.
OPTIONS: dict[str, tuple[str, Any]] = {
    "num_ctx": ("integer", None), "num_batch": ("integer", 512), "num_gpu": ("integer", -1),
    "main_gpu": ("integer", 0), "use_mmap": ("boolean", None), "num_thread": ("integer", 0),
    "num_keep": ("integer", 4), "seed": ("integer", -1), "num_predict": ("integer", -1),
    "top_k": ("integer", 40), "top_p": ("float32", 0.9), "min_p": ("float32", 0.0),
    "typical_p": ("float32", 1.0), "repeat_last_n": ("integer", 64), "temperature": ("float32", 0.8),
    "repeat_penalty": ("float32", 1.0), "presence_penalty": ("float32", 0.0),
    "frequency_penalty": ("float32", 0.0), "stop": ("array", None), "draft_num_predict": ("integer", 0),
}
RUNNER_OPTIONS = frozenset({"num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread", "draft_num_predict"})
LEGACY_OPTIONS = frozenset({
    "mirostat", "mirostat_tau", "mirostat_eta", "tfs_z", "penalize_newline", "numa", "low_vram",
    "f16_kv", "logits_all", "vocab_only", "use_mlock", "embedding_only",
})


def coerce_option(key: str, value: Any) -> Any:
    """Check and convert one option value; raise :class:`InvalidOption` with Ollama's message."""
    kind, _ = OPTIONS[key]
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidOption(key, f'option "{key}" must be of type integer')
        return int(value)
    if kind == "float32":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidOption(key, f'option "{key}" must be of type float32')
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise InvalidOption(key, f'option "{key}" must be of type boolean')
        return value
    if kind == "array":
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidOption(key, f'option "{key}" must be of an array of strings')
        return list(value)
    return value


def merge_options(*layers: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """Defaults, then model params, then request options; later wins. Returns (options, ignored)."""
    merged = {k: d for k, (_, d) in OPTIONS.items() if d is not None}
    ignored: list[str] = []
    for layer in layers:
        for key, value in (layer or {}).items():
            if value is None:
                continue
            if key not in OPTIONS:
                if key not in LEGACY_OPTIONS:
                    log.warning("invalid option provided: %s", key)
                ignored.append(key)
                continue
            merged[key] = coerce_option(key, value)
    return merged, ignored
