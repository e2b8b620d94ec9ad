"""Model options: the one table of names, types and defaults, and their coercion (reference §4).

Options come from three places, later ones winning: server defaults, the model's Modelfile
PARAMETERs, the request's ``options``. Request values arrive as JSON (Python ``int``/``float``/
``bool``/``str``/``list``); Modelfile values arrive as text. Runner options (``num_ctx``,
``num_batch``, ``num_gpu``, ``main_gpu``, ``use_mmap``, ``num_thread``, ``draft_num_predict``)
need a reload of the model when they change.

>>> coerce_option("num_ctx", 8192.7)
8192
>>> coerce_option("temperature", 1)
1.0
>>> coerce_option("num_ctx", "big")
Traceback (most recent call last):
...
pollama.errors.InvalidOption: option "num_ctx" must be of type integer
>>> merge_options({"top_k": 40}, {"top_k": 20, "stop": ["</s>"]}, {"top_k": None, "mirostat": 1})
({'top_k': 20, 'stop': ['</s>']}, ['mirostat'])
>>> parse_option_text("stop", "<|im_end|>"), parse_option_text("use_mmap", "false")
(['<|im_end|>'], False)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pollama.errors import InvalidOption

__all__ = [
    "LEGACY_OPTIONS",
    "OPTIONS",
    "RUNNER_OPTIONS",
    "OptionSpec",
    "OptionType",
    "coerce_option",
    "default_options",
    "is_legacy_option",
    "merge_options",
    "parse_option_text",
    "runner_options_differ",
]

OptionType = Literal["integer", "float32", "boolean", "string", "array"]


@dataclass(frozen=True)
class OptionSpec:
    """One option: its Ollama type name, its default (None: unset) and whether it is a runner one."""

    name: str
    type: OptionType
    default: Any = None
    runner: bool = False


def _spec(name: str, type_: OptionType, default: Any = None, runner: bool = False) -> OptionSpec:
    return OptionSpec(name, type_, default, runner)


OPTIONS: dict[str, OptionSpec] = {
    s.name: s
    for s in (
        # runner options: changing one reloads the model
        _spec("num_ctx", "integer", 4096, runner=True),
        _spec("num_batch", "integer", 512, runner=True),
        _spec("num_gpu", "integer", -1, runner=True),
        _spec("main_gpu", "integer", None, runner=True),
        _spec("use_mmap", "boolean", None, runner=True),
        _spec("num_thread", "integer", 0, runner=True),
        _spec("draft_num_predict", "integer", 4, runner=True),
        # per-request sampling and prediction options
        _spec("num_keep", "integer", 4),
        _spec("seed", "integer", -1),
        _spec("num_predict", "integer", -1),
        _spec("top_k", "integer", 40),
        _spec("top_p", "float32", 0.9),
        _spec("min_p", "float32", 0.0),
        _spec("typical_p", "float32", 1.0),
        _spec("repeat_last_n", "integer", 64),
        _spec("temperature", "float32", 0.8),
        _spec("repeat_penalty", "float32", 1.0),
        _spec("presence_penalty", "float32", 0.0),
        _spec("frequency_penalty", "float32", 0.0),
        _spec("stop", "array", None),
    )
}
"""Every option Ollama knows, by name (defaults as at HEAD; num_ctx's is the small-VRAM tier)."""

RUNNER_OPTIONS = frozenset(name for name, spec in OPTIONS.items() if spec.runner)

LEGACY_OPTIONS = frozenset(
    {"mirostat", "mirostat_tau", "mirostat_eta", "tfs_z", "penalize_newline", "numa", "low_vram",
     "f16_kv", "logits_all", "vocab_only", "use_mlock", "embedding_only"}
)
"""Options removed in Ollama 0.7.0 that clients still send: accepted and ignored."""


def is_legacy_option(name: str) -> bool:
    """Whether ``name`` is a removed option that is accepted and ignored."""
    return name in LEGACY_OPTIONS


def default_options() -> dict[str, Any]:
    """The server defaults for every option that has one (a fresh dict)."""
    return {name: spec.default for name, spec in OPTIONS.items() if spec.default is not None}


def _type_error(name: str, type_: str) -> InvalidOption:
    return InvalidOption(name, f'option "{name}" must be of type {type_}')


def _coerce_integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(name, "integer")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _type_error(name, "integer")
        return int(value)  # JSON floats for integer options are truncated, as in Go
    return value


def _coerce_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(name, "float32")
    return float(value)


def _coerce_array(name: str, value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise _type_error(name, "array")
    if not all(isinstance(v, str) for v in value):
        raise InvalidOption(name, f'option "{name}" must be of an array of strings')
    return list(value)


def coerce_option(name: str, value: Any) -> Any:
    """Check and convert one known option's JSON value; raise :class:`InvalidOption` if mistyped.

    ``None`` stays ``None`` (callers skip it). Unknown names raise ``KeyError``; use
    :func:`merge_options` to get Ollama's log-and-ignore behaviour.
    """
    spec = OPTIONS[name]
    if value is None:
        return None
    if spec.type == "integer":
        return _coerce_integer(name, value)
    if spec.type == "float32":
        return _coerce_float(name, value)
    if spec.type == "boolean":
        if not isinstance(value, bool):
            raise _type_error(name, "boolean")
        return value
    if spec.type == "string":
        if not isinstance(value, str):
            raise _type_error(name, "string")
        return value
    return _coerce_array(name, value)


def merge_options(
    defaults: Mapping[str, Any],
    model_params: Mapping[str, Any] | None,
    request_options: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], list[str]]:
    """Layer defaults, then model params, then request options; later sources win.

    Returns the merged options and the keys that were ignored (unknown or legacy), which the
    caller logs as ``invalid option provided``. ``None`` values are skipped; a mistyped value
    raises :class:`InvalidOption`.
    """
    merged = dict(defaults)
    ignored: list[str] = []
    for source in (model_params or {}, request_options or {}):
        for key, value in source.items():
            if key not in OPTIONS:
                ignored.append(key)
                continue
            coerced = coerce_option(key, value)
            if coerced is not None:
                merged[key] = coerced
    return merged, ignored


def runner_options_differ(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two option sets differ in any runner option (so the model must be reloaded)."""
    return any(a.get(name) != b.get(name) for name in RUNNER_OPTIONS)


# --- text values (Modelfile PARAMETER lines) ----------------------------------------------------

_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BOOL_TEXT = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
              "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
_FLOAT32_MAX = 3.4028234663852886e38
_TYPE_WORDS = {"integer": "int", "float32": "float", "boolean": "bool"}


def _text_error(name: str, type_: OptionType, text: str) -> InvalidOption:
    word = _TYPE_WORDS.get(type_, type_)
    return InvalidOption(
        name, f"invalid {word} value [{text}] for parameter '{name}' (expected {type_})"
    )


def parse_option_text(name: str, text: str) -> Any:
    """Parse a Modelfile PARAMETER value for a known option, the way Go's ``FormatParams`` does.

    Integers are base-10 64-bit, floats are finite decimals that fit a float32, booleans take
    Go's ``ParseBool`` spellings, and ``stop`` becomes a one-element list (the caller accumulates repeats).
    Raises ``KeyError`` for unknown names and :class:`InvalidOption` for malformed values.
    """
    spec = OPTIONS[name]
    if spec.type == "integer":
        if not _INT_TEXT.fullmatch(text) or not -(2**63) <= int(text) < 2**63:
            raise _text_error(name, spec.type, text)
        return int(text)
    if spec.type == "float32":
        if not _FLOAT_TEXT.fullmatch(text):
            raise _text_error(name, spec.type, text)
        value = float(text)
        if abs(value) > _FLOAT32_MAX:  # out of float32 range; NaN and Inf are not accepted
            raise _text_error(name, spec.type, text)
        return value
    if spec.type == "boolean":
        if text not in _BOOL_TEXT:
            raise _text_error(name, spec.type, text)
        return _BOOL_TEXT[text]
    if spec.type == "array":
        return [text]
    return text
