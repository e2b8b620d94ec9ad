"""Fixtures: a real registry (Debian's docker-registry, CNCF distribution 2.8) on loopback, and
a store holding the bundled SmolLM2 model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pollama.store.bundled import BUNDLED, import_bundled
from pollama.store.store import Store
from pollama.testing.distribution import LocalRegistry
from pollama.types.names import ModelName

BUNDLED_NAME = "smollm2:135m"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """A fresh registry process with its own storage, per test module."""
    with LocalRegistry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def bundled_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A store with the bundled smollm2:135m (about 98 MB), imported once per session."""
    store = Store(tmp_path_factory.mktemp("bundled") / "models")
    for _ in import_bundled(store, ModelName.parse(BUNDLED_NAME), BUNDLED[BUNDLED_NAME]):
        pass
    return store


@pytest.fixture
def empty_store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "pulled")
    s.ensure()
    return s


@pytest.fixture(autouse=True)
def home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of the test's own: token requests sign with ``$HOME/.ollama/id_ed25519`` and make
    it when missing, which must not touch the real home of whoever runs the tests."""
    path = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(path))
    return path
