"""The model lifecycle through a real ``pollama serve`` and a real registry on loopback:
a pull killed with ``kill -9`` mid-blob resumes after a restart, and push → rm → pull round-trips
to a model that really runs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pollama.store.registry import push_model
from pollama.store.store import Store
from pollama.testing.distribution import LocalRegistry
from pollama.types.names import ModelName
from tests.integration.conftest import MODEL, free_port, start_server, stop_server
from tests.registry.servers import CountingProxy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with LocalRegistry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="module")
def published(models_dir: Path, registry: LocalRegistry) -> ModelName:
    """The bundled model pushed to ``<registry>/test/smollm2:135m``."""
    store = Store(models_dir)
    target = ModelName.parse(f"{registry.host}/test/smollm2:135m")
    store.copy(ModelName.parse(MODEL), target)

    async def push() -> None:
        async for _ in push_model(store, target, insecure=True):
            pass

    asyncio.run(push())
    store.delete(target, prune=False)
    return target


def test_pull_killed_with_sigkill_resumes_after_restart(published: ModelName, registry: LocalRegistry,
                                                        models_dir: Path, tmp_path: Path) -> None:
    manifest, _ = Store(models_dir).read_manifest(ModelName.parse(MODEL))
    big = max(manifest.layers, key=lambda layer: layer.size)
    proxy = CountingProxy(registry.port, rate=25e6)  # slow enough to be killed mid-blob
    name = f"{proxy.host}/test/smollm2:135m"
    models = tmp_path / "models"
    server = start_server(models, free_port(), tmp_path / "serve1.log")
    try:
        with httpx.Client(base_url=server.url, timeout=60) as c, \
                c.stream("POST", "/api/pull", json={"model": name, "insecure": True}) as r:
            for line in r.iter_lines():
                p = json.loads(line)
                assert "error" not in p, p
                if p.get("digest") == big.digest and p.get("completed", 0) >= big.size // 3:
                    server.proc.kill()  # kill -9, mid-blob
                    break
        server.proc.wait(10)
    finally:
        stop_server(server)
    partial = models / "blobs" / f"sha256-{big.digest[7:]}-partial"
    assert partial.exists() and Path(f"{partial}-0").exists()
    saved = json.loads(Path(f"{partial}-0").read_text())
    assert saved["Completed"] > 0

    proxy.rate = None
    proxy.sent = 0
    server = start_server(models, free_port(), tmp_path / "serve2.log")
    try:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            r = c.post("/api/pull", json={"model": name, "insecure": True, "stream": False})
            assert r.json() == {"status": "success"}
    finally:
        stop_server(server)
        proxy.close()
    assert 0 < proxy.sent < big.size, f"{proxy.sent} bytes crossed the wire for a {big.size}-byte blob"
    assert (models / "blobs" / f"sha256-{big.digest[7:]}").read_bytes() == \
        (models_dir / "blobs" / f"sha256-{big.digest[7:]}").read_bytes()
    assert not list((models / "blobs").glob("*partial*"))


def test_push_rm_pull_round_trip_runs(published: ModelName, registry: LocalRegistry, models_dir: Path,
                                      tmp_path: Path) -> None:
    models = tmp_path / "models"
    server = start_server(models, free_port(), tmp_path / "serve.log")
    try:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            assert c.post("/api/pull", json={"model": str(published), "insecure": True,
                                             "stream": False}).json() == {"status": "success"}
            mine = f"{registry.host}/me/roundtrip:v1"
            assert c.post("/api/copy", json={"source": str(published), "destination": mine}).status_code == 200
            pushed = [json.loads(x) for x in c.post("/api/push", json={"model": mine, "insecure": True}).text.splitlines()]
            assert pushed[0] == {"status": "retrieving manifest"} and pushed[-1] == {"status": "success"}
            before = (models / "manifests" / registry.host / "me" / "roundtrip" / "v1").read_bytes()
            for m in (mine, str(published)):
                assert c.request("DELETE", "/api/delete", json={"model": m}).status_code == 200
            assert not [p for p in (models / "blobs").iterdir()]  # everything pruned
            assert c.post("/api/pull", json={"model": mine, "insecure": True,
                                             "stream": False}).json() == {"status": "success"}
            assert (models / "manifests" / registry.host / "me" / "roundtrip" / "v1").read_bytes() == before
            t = time.monotonic()
            r = c.post("/api/generate", json={"model": mine, "prompt": "Hello", "stream": False,
                                              "options": {"num_predict": 4, "seed": 1}, "keep_alive": 0})
            body = r.json()
            assert r.status_code == 200 and body["done"] and 0 < body["eval_count"] <= 4, body
            assert time.monotonic() - t < 60
    finally:
        stop_server(server)
