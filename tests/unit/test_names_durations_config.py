"""Model names, durations and the environment table: the parsers every request goes through."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pollama import envconfig
from pollama.errors import InvalidModelName, InvalidRequest
from pollama.types.duration import format_go_duration, parse_env_duration, parse_go_duration, parse_keep_alive
from pollama.types.names import ModelName


@pytest.mark.parametrize("text,parts,display", [
    ("llama3.2", ("registry.ollama.ai", "library", "llama3.2", "latest"), "llama3.2:latest"),
    ("llama3.2:3b", ("registry.ollama.ai", "library", "llama3.2", "3b"), "llama3.2:3b"),
    ("me/model:v1", ("registry.ollama.ai", "me", "model", "v1"), "me/model:v1"),
    ("localhost:5000/ns/m:t", ("localhost:5000", "ns", "m", "t"), "localhost:5000/ns/m:t"),
    ("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", ("hf.co", "bartowski", "Llama-3.2-1B-Instruct-GGUF", "Q4_K_M"),
     "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"),
    ("http://127.0.0.1:5000/library/x", ("127.0.0.1:5000", "library", "x", "latest"), "127.0.0.1:5000/library/x:latest"),
    ("  padded  ", ("registry.ollama.ai", "library", "padded", "latest"), "padded:latest"),
])
def test_names_parse(text: str, parts: tuple[str, ...], display: str) -> None:
    n = ModelName.parse(text)
    assert n.path_parts == parts and n.display == display


@pytest.mark.parametrize("text", [
    "", "../etc/passwd", "a/../../b", "x:..", "a b", "a/b/c/d", "m:", "/m", "ns/", "m@sha256:abc",
    "ftp://host/m", "..", "x" * 81, "ns/" + "y" * 81, "-lead", "m:.hidden",
])
def test_invalid_names_are_refused(text: str) -> None:
    with pytest.raises(InvalidModelName):
        ModelName.parse(text)


def test_name_components_can_never_escape_a_directory() -> None:
    for text in ["a:b", "host.com/a/b:c", "hf.co/u/r:Q4"]:
        for part in ModelName.parse(text).path_parts:
            assert "/" not in part and part not in ("..", ".") and "\\" not in part


@pytest.mark.parametrize("text,seconds", [("5m", 300), ("1h30m", 5400), ("1.5s", 1.5), ("-1m", -60), ("0", 0),
                                          ("300ms", 0.3), ("2h", 7200)])
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("value,expected", [(10, 10.0), (0, 0.0), (-1, math.inf), ("-5m", math.inf), ("1m", 60.0),
                                            (None, None), (2.5, 2.5)])
def test_keep_alive(value: object, expected: float | None) -> None:
    assert parse_keep_alive(value) == expected


@pytest.mark.parametrize("value", ["3600", "5x", "", [1], {"a": 1}, True, float("nan")])
def test_bad_keep_alive(value: object) -> None:
    with pytest.raises(InvalidRequest):
        parse_keep_alive(value)


def test_format_go_duration() -> None:
    assert [format_go_duration(s) for s in (300, 5400, 1.5, math.inf, 0)] == ["5m0s", "1h30m0s", "1.5s", "-1", "0s"]
    assert parse_env_duration("3600") == 3600 and parse_env_duration("10m") == 600 and parse_env_duration("-1") == math.inf


def test_settings_from_environment() -> None:
    s = envconfig.load({"OLLAMA_HOST": "0.0.0.0:8080", "OLLAMA_MODELS": "/tmp/x", "OLLAMA_KEEP_ALIVE": "10m",
                        "OLLAMA_NUM_PARALLEL": "4", "OLLAMA_MAX_QUEUE": "7", "OLLAMA_ORIGINS": "a://b, c://*",
                        "OLLAMA_DEBUG": "1", "OLLAMA_NOPRUNE": "nonsense", "OLLAMA_CONTEXT_LENGTH": "8192"})
    assert (s.host.host, s.host.port, s.host.url) == ("0.0.0.0", 8080, "http://127.0.0.1:8080")
    assert s.models == Path("/tmp/x") and s.keep_alive == 600 and s.num_parallel == 4 and s.max_queue == 7
    assert s.origins == ("a://b", "c://*") and s.debug == 1 and s.noprune is True and s.default_num_ctx == 8192
    assert not s.host.is_loopback


def test_settings_defaults() -> None:
    s = envconfig.load({})
    assert s.host.url == "http://127.0.0.1:11434" and s.host.is_loopback
    assert s.keep_alive == 300 and s.num_parallel == 1 and s.max_queue == 512 and s.loaded_model_limit == 3
    assert s.default_num_ctx == 4096 and s.models == Path.home() / ".ollama" / "models"


def test_help_table_lists_every_variable() -> None:
    text = envconfig.help_table()
    assert text.startswith("Environment Variables:")
    for var in envconfig.VARS:
        assert var.name in text
    assert any(line.startswith("      OLLAMA_HOST") and line[6 + 27] == " " for line in text.splitlines())


def test_readme_documents_every_variable() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [v.name for v in envconfig.VARS if f"`{v.name}`" not in readme]
    assert missing == []
