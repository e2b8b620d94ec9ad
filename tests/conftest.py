"""Shared fixtures: a temporary store with a tiny model, an engine on the scripted fake runner,
and an in-process HTTP client for the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from pollama.engine import Engine
from pollama.envconfig import Settings
from pollama.runner.fake import fake_factory
from pollama.server.app import create_app
from pollama.store.store import Store
from tests.factories import add_model, write_tiny_gguf


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "models")
    s.ensure()
    return s


@pytest.fixture
def tiny_gguf(tmp_path: Path) -> Path:
    return write_tiny_gguf(tmp_path / "tiny.gguf")


@pytest.fixture
def tiny_store(store: Store, tiny_gguf: Path) -> Store:
    add_model(store, "tiny", tiny_gguf, params={"stop": ["<|im_end|>"], "temperature": 0.5})
    return store


@pytest.fixture
def factory():  # type: ignore[no-untyped-def]
    return fake_factory()


@pytest.fixture
def settings(tiny_store: Store) -> Settings:
    return Settings(models=tiny_store.root, keep_alive=300.0)


@pytest.fixture
async def engine(settings: Settings, tiny_store: Store, factory) -> AsyncIterator[Engine]:  # type: ignore[no-untyped-def]
    e = Engine(settings, store=tiny_store, runner_factory=factory)
    yield e
    await e.close()


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:11434") as c:
        yield c
