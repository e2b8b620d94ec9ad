"""Pull and push against a real registry (CNCF distribution 2.8) on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pollama.errors import RegistryError
from pollama.store.registry import pull_model, push_model
from pollama.store.registry.push import mount_sources
from pollama.store.registry.download import BlobDownload
from pollama.store.store import Store
from pollama.testing.distribution import LocalRegistry
from pollama.types.names import ModelName
from tests.registry.conftest import BUNDLED_NAME
from tests.registry.servers import CountingProxy, ForwardProxy


async def collect(gen: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p async for p in gen]


async def push_bundled(store: Store, registry: LocalRegistry | CountingProxy, repo: str) -> ModelName:
    target = ModelName.parse(f"{registry.host}/{repo}")
    store.copy(ModelName.parse(BUNDLED_NAME), target)
    await collect(push_model(store, target, insecure=True))
    return target


@pytest.fixture(scope="module")
def pushed(bundled_store: Store, registry: LocalRegistry) -> ModelName:
    """The bundled model, pushed once per module to ``<registry>/test/smollm2:135m``."""
    return asyncio.run(push_bundled(bundled_store, registry, "test/smollm2:135m"))


def statuses(progress: list[dict[str, Any]]) -> list[str]:
    """The status lines without repeats of the same layer's progress."""
    out: list[str] = []
    for p in progress:
        if not out or out[-1] != p["status"]:
            out.append(p["status"])
    return out


async def test_push_bundled_then_pull_into_empty_store_is_byte_identical(
        bundled_store: Store, registry: LocalRegistry, empty_store: Store) -> None:
    target = ModelName.parse(f"{registry.host}/test/smollm2:135m")
    bundled_store.copy(ModelName.parse(BUNDLED_NAME), target)
    manifest, raw = bundled_store.read_manifest(target)
    pushed = await collect(push_model(bundled_store, target, insecure=True))

    assert pushed[0] == {"status": "retrieving manifest"}
    assert pushed[-2:] == [{"status": "pushing manifest"}, {"status": "success"}]
    for layer in manifest.all_layers():
        mine = [p for p in pushed if p.get("digest") == layer.digest]
        assert mine[0]["status"] == f"pushing {layer.digest[7:19]}"
        assert mine[-1]["completed"] == mine[-1]["total"] == layer.size

    pulled = await collect(pull_model(empty_store, target, insecure=True))
    assert pulled[0] == {"status": "pulling manifest"}
    assert pulled[-3:] == [{"status": "verifying sha256 digest"}, {"status": "writing manifest"},
                           {"status": "success"}]
    for layer in manifest.all_layers():
        mine = [p for p in pulled if p.get("digest") == layer.digest]
        assert mine and all(p["status"] == f"pulling {layer.digest[7:19]}" and p["total"] == layer.size for p in mine)
        assert mine[-1]["completed"] == layer.size
        assert [p["completed"] for p in mine] == sorted(p["completed"] for p in mine)
        assert empty_store.blob_path(layer.digest).read_bytes() == bundled_store.blob_path(layer.digest).read_bytes()
    _, pulled_raw = empty_store.read_manifest(target)
    assert pulled_raw == raw  # the manifest is stored as the exact bytes the registry returned
    assert not [p for p in empty_store.blobs.iterdir() if "partial" in p.name or p.name.startswith(".tmp")]


async def test_second_push_skips_blobs_the_registry_has(bundled_store: Store, pushed: ModelName) -> None:
    target = pushed
    second = await collect(push_model(bundled_store, target, insecure=True))
    layers = [p for p in second if "digest" in p]
    # one message per blob, already complete: nothing was uploaded again
    assert len(layers) == len({p["digest"] for p in layers}) == 4
    assert all(p["completed"] == p["total"] for p in layers)


async def test_push_of_a_copy_mounts_blobs_from_the_repository_that_has_them(
        bundled_store: Store, registry: LocalRegistry, empty_store: Store) -> None:
    proxy = CountingProxy(registry.port)  # its own host name, so only these models share it
    try:
        source = await push_bundled(bundled_store, proxy, "mnt/source:1")
        manifest, _ = bundled_store.read_manifest(source)
        total = sum(layer.size for layer in manifest.all_layers())
        assert proxy.received > total  # the first push uploaded every blob

        copy = ModelName.parse(f"{proxy.host}/mnt/copy:1")
        bundled_store.copy(source, copy)
        proxy.received = 0
        progress = await collect(push_model(bundled_store, copy, insecure=True))
        assert proxy.received < 64 * 1024, f"{proxy.received} bytes sent for a push that needed none"
        layers = [p for p in progress if "digest" in p]
        assert {p["digest"] for p in layers} == manifest.digests()
        for digest in manifest.digests():  # each blob's progress ends complete
            last = [p for p in layers if p["digest"] == digest][-1]
            assert last["completed"] == last["total"] > 0
        assert progress[-1] == {"status": "success"}

        pulled = await collect(pull_model(empty_store, copy, insecure=True))  # the registry has it all
        assert pulled[-1] == {"status": "success"}
        for layer in manifest.all_layers():
            assert empty_store.blob_path(layer.digest).read_bytes() == bundled_store.blob_path(layer.digest).read_bytes()
    finally:
        proxy.close()


async def test_a_mount_source_the_registry_lacks_falls_back_to_uploading(
        bundled_store: Store, registry: LocalRegistry, empty_store: Store) -> None:
    proxy = CountingProxy(registry.port)
    try:
        ghost = ModelName.parse(f"{proxy.host}/never/pushed:1")  # local only: the registry has no such repo
        bundled_store.copy(ModelName.parse(BUNDLED_NAME), ghost)
        target = ModelName.parse(f"{proxy.host}/mnt/fallback:1")
        bundled_store.copy(ghost, target)
        manifest, _ = bundled_store.read_manifest(target)
        progress = await collect(push_model(bundled_store, target, insecure=True))
        assert progress[-1] == {"status": "success"}
        assert proxy.received > sum(layer.size for layer in manifest.all_layers())
        await collect(pull_model(empty_store, target, insecure=True))
        big = max(manifest.layers, key=lambda layer: layer.size)
        assert empty_store.blob_path(big.digest).read_bytes() == bundled_store.blob_path(big.digest).read_bytes()
    finally:
        proxy.close()


def test_mount_sources_are_other_repositories_of_the_same_registry(bundled_store: Store, tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    store.ensure()
    bundled = ModelName.parse(BUNDLED_NAME)
    manifest, raw = bundled_store.read_manifest(bundled)
    for name in ("reg.example:5000/a/one:1", "reg.example:5000/b/target:old", "other.example/c/two:1"):
        store.write_manifest(ModelName.parse(name), raw)
    sources = mount_sources(store, ModelName.parse("REG.example:5000/b/target:new"))
    assert set(sources) == manifest.digests()
    assert set(sources.values()) == {"a/one"}  # not the target's own repository, not another host
    assert mount_sources(store, ModelName.parse("elsewhere.example/b/target:1")) == {}


async def test_pull_of_present_blobs_reports_each_complete_once(bundled_store: Store, pushed: ModelName) -> None:
    target = pushed
    progress = await collect(pull_model(bundled_store, target, insecure=True))
    layers = [p for p in progress if "digest" in p]
    assert len(layers) == 4 and all(p["completed"] == p["total"] for p in layers)


async def test_interrupted_pull_resumes_where_it_stopped(
        bundled_store: Store, pushed: ModelName, registry: LocalRegistry, empty_store: Store) -> None:
    manifest, _ = bundled_store.read_manifest(pushed)
    big = max(manifest.layers, key=lambda layer: layer.size)
    proxy = CountingProxy(registry.port, rate=40e6)  # slow enough to stop mid-blob
    target = ModelName.parse(f"{proxy.host}/{pushed.namespace}/{pushed.model}:{pushed.tag}")
    try:
        gen = pull_model(empty_store, target, insecure=True)
        async for p in gen:
            if p.get("digest") == big.digest and p["completed"] >= big.size // 4:
                break
        await gen.aclose()  # the connection drops mid-blob
        partial = empty_store.blob_path(big.digest).with_name(f"sha256-{big.digest[7:]}-partial")
        assert partial.exists() and partial.with_name(partial.name + "-0").exists()
        assert not empty_store.has_blob(big.digest) and not empty_store.has_model(target)

        proxy.rate = None
        proxy.sent = 0
        downloads: list[BlobDownload] = []
        progress = await collect(pull_model(empty_store, target, insecure=True, on_download=downloads.append))
    finally:
        proxy.close()
    assert progress[-1] == {"status": "success"}
    second = sum(d.downloaded for d in downloads if d.digest == big.digest)
    assert 0 < second < big.size * 0.8, f"downloaded {second} of {big.size} bytes again"
    assert proxy.sent < big.size  # what crossed the wire, headers and all
    first_report = next(p for p in progress if p.get("digest") == big.digest)
    assert first_report["completed"] >= big.size // 4  # progress resumes from the saved parts
    assert empty_store.blob_path(big.digest).read_bytes() == bundled_store.blob_path(big.digest).read_bytes()
    assert not partial.exists() and not list(empty_store.blobs.glob("*-partial*"))


async def test_corrupted_blob_is_rejected_and_nothing_lands(
        bundled_store: Store, tmp_path_factory: pytest.TempPathFactory, empty_store: Store) -> None:
    with LocalRegistry(tmp_path_factory.mktemp("badreg")) as bad:
        target = await push_bundled(bundled_store, bad, "test/corrupt:v1")
        manifest, _ = bundled_store.read_manifest(target)
        big = max(manifest.layers, key=lambda layer: layer.size)
        data = bad.blob_data(big.digest)
        with open(data, "r+b") as f:  # the registry now serves different bytes of the same size
            f.seek(big.size // 2)
            f.write(b"\xde\xad\xbe\xef" * 16)
        with pytest.raises(RegistryError) as err:
            await collect(pull_model(empty_store, target, insecure=True))
    assert err.value.message.startswith(f"digest mismatch, file must be downloaded again: want {big.digest}, got sha256:")
    assert not empty_store.has_blob(big.digest)
    assert not empty_store.has_model(target)
    assert not list(empty_store.blobs.glob("*-partial*"))
    assert not list(empty_store.manifests.rglob("*")) or not [p for p in empty_store.manifests.rglob("*") if p.is_file()]


async def test_unknown_model_gives_ollamas_message(registry: LocalRegistry, empty_store: Store) -> None:
    name = ModelName.parse(f"{registry.host}/nobody/nothing:latest")
    gen = pull_model(empty_store, name, insecure=True)
    assert await anext(gen) == {"status": "pulling manifest"}
    with pytest.raises(RegistryError, match="^pull model manifest: file does not exist$"):
        await anext(gen)


async def test_http_scheme_needs_insecure(registry: LocalRegistry, empty_store: Store) -> None:
    name = ModelName.parse(f"http://{registry.host}/a/b:c")
    with pytest.raises(RegistryError, match="^insecure protocol http$"):
        await collect(pull_model(empty_store, name))


@pytest.mark.parametrize("prune", [True, False])
async def test_repull_of_moved_tag_prunes_replaced_layers_unless_disabled(
        prune: bool, bundled_store: Store, registry: LocalRegistry, empty_store: Store,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.factories import add_model, write_tiny_gguf

    target = ModelName.parse(f"{registry.host}/test/moving-{str(prune).lower()}:latest")
    tiny = Store(tmp_path_factory.mktemp("tiny") / "models")
    add_model(tiny, str(target), write_tiny_gguf(tmp_path_factory.mktemp("g") / "a.gguf"), system="one")
    await collect(push_model(tiny, target, insecure=True))
    await collect(pull_model(empty_store, target, insecure=True))
    old, _ = empty_store.read_manifest(target)
    # The tag moves to a different model on the registry.
    add_model(tiny, str(target), write_tiny_gguf(tmp_path_factory.mktemp("g") / "b.gguf", ctx=4096), system="two")
    await collect(push_model(tiny, target, insecure=True))
    progress = await collect(pull_model(empty_store, target, insecure=True, prune=prune))
    new, _ = empty_store.read_manifest(target)
    replaced = old.digests() - new.digests()
    assert replaced
    assert ({"status": "removing unused layers"} in progress) is prune
    assert all(empty_store.has_blob(d) is not prune for d in replaced)


@pytest.mark.parametrize("bypass", [False, True])
async def test_pull_goes_through_the_proxy_the_environment_names(
        pushed: ModelName, empty_store: Store, bundled_store: Store, monkeypatch: pytest.MonkeyPatch, bypass: bool) -> None:
    """HTTP_PROXY (with credentials) carries the manifest and the ranged blob downloads alike;
    NO_PROXY sends them straight to the registry."""
    proxy = ForwardProxy(credentials="Basic dXNlcjpwIHc=")  # user:p w
    try:
        for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://user:p%20w@127.0.0.1:{proxy.port}")
        if bypass:
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        await collect(pull_model(empty_store, pushed, insecure=True))
        manifest, _ = empty_store.read_manifest(pushed)
        for layer in manifest.all_layers():
            assert empty_store.blob_path(layer.digest).read_bytes() == bundled_store.blob_path(layer.digest).read_bytes()
        if bypass:
            assert proxy.seen == []
        else:
            assert any(t.startswith(f"http://{pushed.host}/v2/") and "/manifests/" in t for _, t, _, _ in proxy.seen)
            # the ranged downloads themselves (not only the one-byte probe that resolves a blob)
            downloads = [t for _, t, _, r in proxy.seen if "/blobs/sha256:" in t and r and r != "bytes=0-0"]
            assert len(downloads) >= len({x.digest for x in manifest.all_layers()})
            assert all(t.startswith(f"http://{pushed.host}/v2/") for t in downloads)
            assert all(auth == proxy.credentials for _, _, auth, _ in proxy.seen)
    finally:
        proxy.close()


async def test_a_proxy_that_refuses_the_credentials_fails_the_pull_clearly(
        pushed: ModelName, empty_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = ForwardProxy(credentials="Basic c29tZW9uZTplbHNl")
    try:
        for var in ("no_proxy", "NO_PROXY", "http_proxy"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://user:wrong@127.0.0.1:{proxy.port}")
        with pytest.raises(RegistryError) as e:
            await collect(pull_model(empty_store, pushed, insecure=True))
        assert "407" in str(e.value)
        assert list(empty_store.root.glob("blobs/sha256-*")) == []
    finally:
        proxy.close()


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:1", "http://127.0.0.1:notaport", "ftp://127.0.0.1:21"])
async def test_a_malformed_proxy_setting_is_a_clear_error(
        pushed: ModelName, empty_store: Store, monkeypatch: pytest.MonkeyPatch, proxy: str) -> None:
    for var in ("no_proxy", "NO_PROXY", "http_proxy", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    with pytest.raises(RegistryError) as e:
        await collect(pull_model(empty_store, pushed, insecure=True))
    assert "proxy" in str(e.value).lower()
    assert list(empty_store.root.glob("blobs/sha256-*")) == []
