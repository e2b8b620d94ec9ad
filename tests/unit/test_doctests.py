"""Run the doctest examples in the modules' docstrings (grammars and examples stay true)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "pollama.templates.govalues",
    "pollama.templates.gotemplate",
    "pollama.templates.ollama",
    "pollama.types.options",
    "pollama.store.modelfile",
    "pollama.store.registry.client",
    "pollama.store.registry.download",
    "pollama.store.registry.hf",
    "pollama.store.gguf_split",
    "pollama.store.gguf_write",
    "pollama.store.quantize",
    "pollama.testing.ledger",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
