"""pytest plugin (``pytest11`` entry point): fixtures for testing an LLM as a system component.

Options: ``--llm-url`` (default ``$POLLAMA_TEST_URL`` or ``http://127.0.0.1:11434``) and
``--llm-model`` (default ``$POLLAMA_TEST_MODEL`` or ``smollm2:135m``). Nothing here starts unless
a test asks for one of its fixtures.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llm", "LLM behaviour testing (pollama)")
    group.addoption("--llm-url", default=None, help="Ollama-compatible server to test (default $POLLAMA_TEST_URL or http://127.0.0.1:11434)")
    group.addoption("--llm-model", default=None, help="model to test (default $POLLAMA_TEST_MODEL or smollm2:135m)")


def _opt(config: pytest.Config, name: str, env: str, default: str) -> str:
    value = config.getoption(name, default=None)
    return str(value or os.environ.get(env) or default)


@pytest.fixture(scope="session")
def llm_url(pytestconfig: pytest.Config) -> str:
    return _opt(pytestconfig, "--llm-url", "POLLAMA_TEST_URL", "http://127.0.0.1:11434").rstrip("/")


@pytest.fixture(scope="session")
def llm_model(pytestconfig: pytest.Config) -> str:
    return _opt(pytestconfig, "--llm-model", "POLLAMA_TEST_MODEL", "smollm2:135m")


@pytest.fixture
def ollama_client(llm_url: str, llm_model: str) -> Callable[..., dict[str, Any]]:
    """The tutorial's shape: ``call(prompt, stream=False) -> dict`` against ``/api/generate``."""
    import httpx

    def call(prompt: str, stream: bool = False, **options: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"model": llm_model, "prompt": prompt, "stream": False}
        if options:
            body["options"] = options
        r = httpx.post(f"{llm_url}/api/generate", json=body, timeout=300)
        r.raise_for_status()
        return dict(r.json())

    return call
