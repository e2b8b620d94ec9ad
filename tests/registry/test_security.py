"""Hostile registries and names: credentials stay home, replies are bounded, nothing escapes
the models directory (the classes behind Ollama's CVEs)."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pollama.errors import InvalidModelName, InvalidRequest, RegistryError
from pollama.store.registry import pull_model
from pollama.store.store import Store
from pollama.types.names import ModelName
from tests.registry.fakes import FakeRegistry, Recorder, digest, gzip_bomb
from tests.registry.servers import ServedApp

MODEL = "application/vnd.ollama.image.model"


async def collect(gen: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p async for p in gen]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "models")
    s.ensure()
    return s


async def test_token_realm_on_another_host_is_refused_before_contact(store: Store) -> None:
    realm = Recorder()
    with ServedApp(realm.app(), host="127.0.0.2") as other:
        reg = FakeRegistry(realm=f"{other.url}/token")
        reg.add_model("ns/m:latest", [(MODEL, b"weights")])
        with ServedApp(reg.app()) as srv:
            with pytest.raises(RegistryError, match="does not match the registry host"):
                await collect(pull_model(store, ModelName.parse(f"{srv.netloc}/ns/m"), insecure=True))
    assert realm.seen == []  # not even a request: no signature or credential left home
    assert not store.has_model(ModelName.parse(f"{srv.netloc}/ns/m"))


async def test_token_goes_to_the_registry_only_never_to_the_cdn(store: Store) -> None:
    realm, cdn = Recorder(), Recorder()
    data = b"model weights " * 5000
    with ServedApp(cdn.app(), host="127.0.0.2") as cdn_srv:
        reg = FakeRegistry(cdn=cdn_srv.url, tokens=realm)
        reg.add_model("ns/m:latest", [(MODEL, data)])
        cdn.blobs.update(reg.blobs)
        with ServedApp(reg.app()) as srv:
            reg.realm = f"{srv.url}/token"  # the registry's own host: allowed
            progress = await collect(pull_model(store, ModelName.parse(f"{srv.netloc}/ns/m"), insecure=True))
    assert progress[-1] == {"status": "success"}
    assert store.blob_path(digest(data)).read_bytes() == data
    assert len(realm.seen) == 1
    assert any(s.headers.get("authorization") == "Bearer good-token" for s in reg.seen)
    assert cdn.seen and all("authorization" not in s.headers for s in cdn.seen)
    assert all(s.headers.get("range", "").startswith("bytes=") for s in cdn.seen)


@pytest.mark.parametrize("evil", [
    "sha256:../../../../../../tmp/pwned",
    "sha256:" + "a" * 63 + "/",
    "sha256-" + "a" * 64,
    "../blobs/sha256:" + "a" * 64,
    "SHA256:" + "A" * 64,
])
async def test_manifest_with_traversal_digest_is_refused(store: Store, tmp_path: Path, evil: str) -> None:
    reg = FakeRegistry()
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
           "config": {"mediaType": "x", "digest": "sha256:" + "b" * 64, "size": 2},
           "layers": [{"mediaType": MODEL, "digest": evil, "size": 5}]}
    reg.manifest_body = json.dumps(doc).encode()
    before = tree(tmp_path)
    with ServedApp(reg.app()) as srv:
        with pytest.raises(RegistryError, match="^pull model manifest: invalid manifest: invalid digest"):
            await collect(pull_model(store, ModelName.parse(f"{srv.netloc}/ns/m"), insecure=True))
    assert tree(tmp_path) == before
    assert not [s for s in reg.seen if "/blobs/" in s.path]  # no blob was even requested


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/../../b", "ns/model:../../x", "h/ns/m/extra",
                                  "ns/..:tag", "..", "m:tag/..", "m\x00", "/abs/path", "ns/m:" + "t" * 81])
def test_hostile_names_never_become_paths(name: str) -> None:
    with pytest.raises(InvalidModelName):
        ModelName.parse(name)


@pytest.mark.parametrize("d", ["sha256:../../x", "sha256:" + "a" * 64 + "/../../x", "../sha256-" + "a" * 64, ""])
def test_hostile_digests_never_become_paths(store: Store, d: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid digest format"):
        store.blob_path(d)


async def test_pull_with_hostile_name_is_a_400(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/pull", json={"model": "../../../etc/passwd"})
    assert r.status_code == 400 and r.json() == {"error": "invalid model name"}
    r = await client.post("/api/push", json={"model": "a/../../b:c"})
    assert r.status_code == 400 and r.json() == {"error": "invalid model name"}


async def test_compressed_manifest_bomb_is_bounded(store: Store) -> None:
    reg = FakeRegistry(manifest_body=gzip_bomb(200 << 20), manifest_headers={"Content-Encoding": "gzip"})
    with ServedApp(reg.app()) as srv:
        tracemalloc.start()
        try:
            with pytest.raises(RegistryError, match="exceeds the limit"):
                await collect(pull_model(store, ModelName.parse(f"{srv.netloc}/ns/m"), insecure=True))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 32 << 20, f"peak {peak} bytes while refusing a 200 MB bomb"


async def test_oversized_manifest_and_error_bodies_are_bounded(store: Store) -> None:
    reg = FakeRegistry(manifest_body=b"{" + b" " * (8 << 20) + b"}")
    with ServedApp(reg.app()) as srv:
        with pytest.raises(RegistryError, match="exceeds the limit"):
            await collect(pull_model(store, ModelName.parse(f"{srv.netloc}/ns/m"), insecure=True))


async def test_huge_token_reply_is_bounded(store: Store) -> None:
    realm = Recorder(token_body=b'{"token": "' + b"x" * (4 << 20) + b'"}')
    reg = FakeRegistry(tokens=realm)
    reg.add_model("ns/m:latest", [(MODEL, b"w")])
    with ServedApp(reg.app()) as srv:
        reg.realm = f"{srv.url}/token"
        with pytest.raises(RegistryError, match="auth token: reply exceeds the limit"):
            await collect(pull_model(store, ModelName.parse(f"{srv.netloc}/ns/m"), insecure=True))


async def test_blob_whose_size_disagrees_with_the_manifest_is_refused(store: Store) -> None:
    reg = FakeRegistry()
    raw = reg.add_model("ns/m:latest", [(MODEL, b"0123456789" * 100)])
    doc = json.loads(raw)
    doc["layers"][0]["size"] = 400  # the registry serves 1000 bytes
    reg.manifest_body = json.dumps(doc).encode()
    with ServedApp(reg.app()) as srv:
        with pytest.raises(RegistryError, match="is 1000 bytes, the manifest says 400"):
            await collect(pull_model(store, ModelName.parse(f"{srv.netloc}/ns/m"), insecure=True))
    assert not store.has_blob(doc["layers"][0]["digest"])


@pytest.mark.parametrize("size", [1 << 60, 1 << 42])
async def test_absurd_layer_size_is_refused_before_allocating(store: Store, size: int) -> None:
    reg = FakeRegistry()
    raw = reg.add_model("ns/m:latest", [(MODEL, b"x")])
    doc = json.loads(raw)
    doc["layers"][0]["size"] = size
    reg.manifest_body = json.dumps(doc).encode()
    with ServedApp(reg.app()) as srv:
        with pytest.raises(RegistryError, match="not enough disk space|larger than the"):
            await collect(pull_model(store, ModelName.parse(f"{srv.netloc}/ns/m"), insecure=True))
    partials = list(store.blobs.glob("*-partial"))
    assert all(p.stat().st_size == 0 for p in partials)
