"""Option table, coercion of JSON values, Modelfile text values and the three-layer merge (§4)."""

from __future__ import annotations

from typing import Any

import pytest

from pollama.errors import InvalidOption
from pollama.types.options import (
    LEGACY_OPTIONS,
    OPTIONS,
    RUNNER_OPTIONS,
    coerce_option,
    default_options,
    merge_options,
    parse_option_text,
    runner_options_differ,
)


def test_table_has_every_option_with_ollama_types() -> None:
    types = {name: spec.type for name, spec in OPTIONS.items()}
    assert types == {
        "num_ctx": "integer", "num_batch": "integer", "num_gpu": "integer",
        "main_gpu": "integer", "use_mmap": "boolean", "num_thread": "integer",
        "draft_num_predict": "integer", "num_keep": "integer", "seed": "integer",
        "num_predict": "integer", "top_k": "integer", "top_p": "float32", "min_p": "float32",
        "typical_p": "float32", "repeat_last_n": "integer", "temperature": "float32",
        "repeat_penalty": "float32", "presence_penalty": "float32",
        "frequency_penalty": "float32", "stop": "array",
    }


def test_runner_options() -> None:
    assert RUNNER_OPTIONS == {"num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap",
                              "num_thread", "draft_num_predict"}


def test_defaults() -> None:
    d = default_options()
    assert d["temperature"] == 0.8 and d["top_k"] == 40 and d["top_p"] == 0.9
    assert d["num_predict"] == -1 and d["seed"] == -1 and d["num_keep"] == 4
    assert d["repeat_penalty"] == 1.0 and d["repeat_last_n"] == 64 and d["num_batch"] == 512
    assert "stop" not in d and "use_mmap" not in d and "main_gpu" not in d
    d["top_k"] = 1
    assert default_options()["top_k"] == 40  # a fresh dict each time


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("num_ctx", 2048, 2048),
        ("num_ctx", 2048.9, 2048),  # JSON floats for integers are truncated
        ("seed", -3.5, -3),
        ("temperature", 1, 1.0),
        ("temperature", 0.25, 0.25),
        ("use_mmap", False, False),
        ("stop", ["a", "b"], ["a", "b"]),
        ("stop", [], []),
        ("top_k", None, None),
    ],
)
def test_coerce_accepts(name: str, value: Any, expected: Any) -> None:
    got = coerce_option(name, value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("num_ctx", "4096", 'option "num_ctx" must be of type integer'),
        ("num_ctx", True, 'option "num_ctx" must be of type integer'),
        ("num_ctx", float("inf"), 'option "num_ctx" must be of type integer'),
        ("temperature", "hot", 'option "temperature" must be of type float32'),
        ("temperature", False, 'option "temperature" must be of type float32'),
        ("use_mmap", 1, 'option "use_mmap" must be of type boolean'),
        ("use_mmap", "true", 'option "use_mmap" must be of type boolean'),
        ("stop", "</s>", 'option "stop" must be of type array'),
        ("stop", ["ok", 3], 'option "stop" must be of an array of strings'),
    ],
)
def test_coerce_rejects_with_ollama_message(name: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidOption) as info:
        coerce_option(name, value)
    assert info.value.message == message
    assert info.value.key == name


def test_merge_layers_in_order_and_reports_ignored() -> None:
    merged, ignored = merge_options(
        default_options(),
        {"temperature": 0.1, "stop": ["<|eot_id|>"], "num_ctx": 8192},
        {"temperature": 0.5, "num_ctx": None, "top_k": 7.9, "mirostat": 2, "bogus": 1},
    )
    assert merged["temperature"] == 0.5  # request beats model
    assert merged["num_ctx"] == 8192  # None is skipped, the model's value stays
    assert merged["top_k"] == 7
    assert merged["stop"] == ["<|eot_id|>"]
    assert merged["top_p"] == 0.9  # default kept
    assert ignored == ["mirostat", "bogus"]
    assert "mirostat" not in merged and "bogus" not in merged


def test_merge_raises_on_wrong_type() -> None:
    with pytest.raises(InvalidOption, match='option "num_predict" must be of type integer'):
        merge_options({}, None, {"num_predict": "10"})


def test_merge_does_not_mutate_inputs() -> None:
    defaults = {"top_k": 40}
    merge_options(defaults, {"top_k": 1}, None)
    assert defaults == {"top_k": 40}


def test_runner_options_differ() -> None:
    a = {"num_ctx": 4096, "temperature": 0.1}
    assert not runner_options_differ(a, {"num_ctx": 4096, "temperature": 0.9})
    assert runner_options_differ(a, {"num_ctx": 8192, "temperature": 0.1})
    assert runner_options_differ({"use_mmap": None}, {"use_mmap": False})


def test_legacy_options_listed() -> None:
    assert {"mirostat", "mirostat_tau", "mirostat_eta", "tfs_z", "penalize_newline", "numa",
            "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock",
            "embedding_only"} == LEGACY_OPTIONS
    assert not LEGACY_OPTIONS & OPTIONS.keys()


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("num_ctx", "8192", 8192),
        ("seed", "-1", -1),
        ("num_predict", "+5", 5),
        ("temperature", "0.7", 0.7),
        ("temperature", "1", 1.0),
        ("top_p", ".5", 0.5),
        ("min_p", "1e-3", 0.001),
        ("use_mmap", "true", True),
        ("use_mmap", "F", False),
        ("use_mmap", "0", False),
        ("stop", "<|im_end|>", ["<|im_end|>"]),
    ],
)
def test_parse_option_text(name: str, text: str, expected: Any) -> None:
    got = parse_option_text(name, text)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("num_ctx", "abc", "invalid int value [abc] for parameter 'num_ctx' (expected integer)"),
        ("num_ctx", "4.5", "invalid int value [4.5] for parameter 'num_ctx' (expected integer)"),
        ("num_ctx", "1_000", "invalid int value [1_000] for parameter 'num_ctx' (expected integer)"),
        ("seed", "99999999999999999999",
         "invalid int value [99999999999999999999] for parameter 'seed' (expected integer)"),
        ("temperature", "warm",
         "invalid float value [warm] for parameter 'temperature' (expected float32)"),
        ("temperature", "nan",
         "invalid float value [nan] for parameter 'temperature' (expected float32)"),
        ("temperature", "1e39",
         "invalid float value [1e39] for parameter 'temperature' (expected float32)"),
        ("use_mmap", "yes", "invalid bool value [yes] for parameter 'use_mmap' (expected boolean)"),
    ],
)
def test_parse_option_text_errors(name: str, text: str, message: str) -> None:
    with pytest.raises(InvalidOption) as info:
        parse_option_text(name, text)
    assert info.value.message == message
