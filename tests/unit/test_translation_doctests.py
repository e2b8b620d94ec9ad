"""Run the doctests of the translation modules (pytest does not collect doctests here)."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from pollama.anthropic import translate as anthropic_translate
from pollama.openai import responses, schema, translate, wire


@pytest.mark.parametrize("module", [wire, schema, translate, responses, anthropic_translate])
def test_doctests(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.failed == 0
