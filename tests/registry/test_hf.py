"""Hugging Face pulls through the Hub's HTTP API, against a fake Hub and CDN on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pollama.errors import GGUFError, RegistryError
from pollama.store.gguf import read_gguf
from pollama.store.registry import pull_model
from pollama.store.store import Store
from pollama.types.names import ModelName
from tests.factories import CHATML, split_gguf, write_tiny_gguf
from tests.registry.fakes import FakeHub, Recorder, digest
from tests.registry.servers import ServedApp

REPO = "someone/Tiny-GGUF"
GO_TEMPLATE = "{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"


async def collect(gen: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p async for p in gen]


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("hf")
    return {q: write_tiny_gguf(d / f"{q}.gguf", ctx=1024 * (i + 1), chat_template=CHATML).read_bytes()
            for i, q in enumerate(["Q8_0", "Q4_K_M", "F16"])}


@pytest.fixture
def hub(ggufs: dict[str, bytes]) -> Iterator[tuple[FakeHub, Recorder, str]]:
    cdn = Recorder()
    with ServedApp(cdn.app(), host="127.0.0.2") as cdn_srv:
        hub = FakeHub(cdn=cdn_srv.url, token="hf_secret")
        files = {f"tiny-{q.lower() if q == 'Q8_0' else q}.gguf": data for q, data in ggufs.items()}
        files["mmproj-tiny-F16.gguf"] = ggufs["F16"]
        files["README.md"] = b"# tiny\n"
        files["template"] = GO_TEMPLATE.encode()
        hub.files[REPO] = files
        cdn.blobs.update({f"{REPO}/{p}": b for p, b in files.items()})
        with ServedApp(hub.app()) as srv:
            yield hub, cdn, srv.url


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "models")
    s.ensure()
    return s


async def test_latest_picks_q4_k_m_and_keeps_templates(hub: tuple[FakeHub, Recorder, str], store: Store,
                                                      ggufs: dict[str, bytes]) -> None:
    fake, cdn, url = hub
    name = ModelName.parse(f"hf.co/{REPO}")
    progress = await collect(pull_model(store, name, hf_endpoint=url, hf_token="hf_secret"))
    assert progress[0] == {"status": "pulling manifest"} and progress[-1] == {"status": "success"}
    manifest, _ = store.read_manifest(name)
    assert store.manifest_path(name) == store.manifests / "hf.co" / "someone" / "Tiny-GGUF" / "latest"
    model = manifest.layers[0]
    assert model.digest == digest(ggufs["Q4_K_M"])
    assert store.blob_path(model.digest).read_bytes() == ggufs["Q4_K_M"]
    assert read_gguf(store.blob_path(model.digest)).chat_template == CHATML  # the Jinja template stays
    template = manifest.first("application/vnd.ollama.image.template")
    assert template is not None and store.read_blob(template.digest).decode() == GO_TEMPLATE
    # The token went to the Hub only; the CDN got ranged requests without it.
    assert all(s.headers.get("authorization") == "Bearer hf_secret" for s in fake.seen)
    assert cdn.seen and all("authorization" not in s.headers for s in cdn.seen)


async def test_quant_tag_is_case_insensitive(hub: tuple[FakeHub, Recorder, str], store: Store,
                                             ggufs: dict[str, bytes]) -> None:
    _, _, url = hub
    name = ModelName.parse(f"huggingface.co/{REPO}:q8_0")
    await collect(pull_model(store, name, hf_endpoint=url, hf_token="hf_secret"))
    assert store.read_manifest(name)[0].layers[0].digest == digest(ggufs["Q8_0"])


async def test_unknown_quant_lists_the_available_ones(hub: tuple[FakeHub, Recorder, str], store: Store) -> None:
    _, _, url = hub
    with pytest.raises(RegistryError) as err:
        await collect(pull_model(store, ModelName.parse(f"hf.co/{REPO}:Q2_K"), hf_endpoint=url, hf_token="hf_secret"))
    assert err.value.message == (f'pull model manifest: hf.co/{REPO} has no GGUF file for quant "Q2_K"; '
                                 "available quants: F16, Q4_K_M, Q8_0")


async def test_unknown_repo_and_bad_token(hub: tuple[FakeHub, Recorder, str], store: Store) -> None:
    _, _, url = hub
    with pytest.raises(RegistryError, match="^pull model manifest: file does not exist$"):
        await collect(pull_model(store, ModelName.parse("hf.co/nobody/nothing"), hf_endpoint=url, hf_token="hf_secret"))
    with pytest.raises(RegistryError, match="401"):
        await collect(pull_model(store, ModelName.parse(f"hf.co/{REPO}"), hf_endpoint=url, hf_token="wrong"))


async def test_corrupted_download_is_rejected_and_nothing_lands(hub: tuple[FakeHub, Recorder, str], store: Store) -> None:
    fake, cdn, url = hub
    path = "tiny-Q4_K_M.gguf"
    good = cdn.blobs[f"{REPO}/{path}"]
    cdn.blobs[f"{REPO}/{path}"] = good[:-8] + b"\xff" * 8
    name = ModelName.parse(f"hf.co/{REPO}")
    with pytest.raises(RegistryError, match="^digest mismatch, file must be downloaded again"):
        await collect(pull_model(store, name, hf_endpoint=url, hf_token="hf_secret"))
    assert not store.has_model(name) and not store.has_blob(digest(good))
    assert not list(store.blobs.glob("*partial*"))


@pytest.fixture
def split_repo(hub: tuple[FakeHub, Recorder, str], tmp_path: Path) -> tuple[bytes, list[str]]:
    """A Q5_K_M quant split by llama.cpp's own writer into three shards in a sub-folder."""
    fake, cdn, _ = hub
    original = write_tiny_gguf(tmp_path / "big.gguf", tensors=9, chat_template=CHATML)
    d = tmp_path / "shards"
    d.mkdir()
    paths = []
    for p in split_gguf(original, d, "tiny-Q5_K_M", 3):
        path = f"Q5_K_M/{p.name}"
        fake.files[REPO][path] = cdn.blobs[f"{REPO}/{path}"] = p.read_bytes()
        paths.append(path)
    return original.read_bytes(), paths


async def test_a_split_quant_is_downloaded_verified_and_merged(hub: tuple[FakeHub, Recorder, str], store: Store,
                                                              split_repo: tuple[bytes, list[str]]) -> None:
    _, cdn, url = hub
    original, paths = split_repo
    name = ModelName.parse(f"hf.co/{REPO}:Q5_K_M")
    progress = await collect(pull_model(store, name, hf_endpoint=url, hf_token="hf_secret"))
    shard_digests = [digest(cdn.blobs[f"{REPO}/{p}"]) for p in paths]
    pulled = {p["digest"] for p in progress if "digest" in p}
    assert set(shard_digests) <= pulled  # each shard reported as it downloads
    assert {"status": "merging 3 GGUF shards"} in progress and progress[-1] == {"status": "success"}
    manifest, _ = store.read_manifest(name)
    model = manifest.layers[0]
    # One model blob, the file llama.cpp split — byte for byte; the shards are gone.
    assert model.digest == digest(original) and store.blob_path(model.digest).read_bytes() == original
    assert not any(store.has_blob(d) for d in shard_digests)
    config = json.loads(store.read_blob(manifest.config.digest))
    assert config["gguf_shards"] == shard_digests and config["model_family"] == "llama"
    # Pulling the same tag again downloads nothing: the merged blob is recognised.
    before = len(cdn.seen)
    again = await collect(pull_model(store, name, hf_endpoint=url, hf_token="hf_secret"))
    assert len(cdn.seen) == before and {"status": "merging 3 GGUF shards"} not in again
    assert store.read_manifest(name)[0].layers[0].digest == model.digest


async def test_an_incomplete_split_quant_is_refused(hub: tuple[FakeHub, Recorder, str], store: Store,
                                                    split_repo: tuple[bytes, list[str]]) -> None:
    fake, cdn, url = hub
    _, paths = split_repo
    del fake.files[REPO][paths[1]]
    name = ModelName.parse(f"hf.co/{REPO}:Q5_K_M")
    with pytest.raises(RegistryError, match=rf"lists {paths[0]} but not {paths[1]}; the split GGUF is incomplete"):
        await collect(pull_model(store, name, hf_endpoint=url, hf_token="hf_secret"))
    assert not cdn.seen and not store.has_model(name)


async def test_shards_that_do_not_belong_together_are_refused_and_removed(
        hub: tuple[FakeHub, Recorder, str], store: Store, split_repo: tuple[bytes, list[str]]) -> None:
    fake, cdn, url = hub
    _, paths = split_repo
    # Shards 2 and 3 swapped on the Hub: each verifies against its listed SHA-256, the set is wrong.
    files = fake.files[REPO]
    files[paths[1]], files[paths[2]] = files[paths[2]], files[paths[1]]
    cdn.blobs[f"{REPO}/{paths[1]}"], cdn.blobs[f"{REPO}/{paths[2]}"] = files[paths[1]], files[paths[2]]
    name = ModelName.parse(f"hf.co/{REPO}:Q5_K_M")
    with pytest.raises(GGUFError, match=r"^Q5_K_M/tiny-Q5_K_M-00002-of-00003.gguf: its metadata says shard 3 of 3 "
                                        r".* given as shard 2 of 3$"):
        await collect(pull_model(store, name, hf_endpoint=url, hf_token="hf_secret"))
    assert not store.has_model(name) and list(store.blobs.iterdir()) == []
