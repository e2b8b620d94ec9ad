"""The store: Ollama's layout, atomic verified writes, listing, copy and delete with pruning."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from pollama.errors import DigestMismatch, InvalidRequest, ModelNotFound
from pollama.store import manifest as mt
from pollama.store.bundled import BUNDLED, import_bundled
from pollama.store.manifest import InvalidManifest, Manifest
from pollama.store.store import Store
from pollama.types.names import ModelName
from tests.factories import add_model


def test_layout_matches_ollama(tiny_store: Store) -> None:
    path = tiny_store.root / "manifests" / "registry.ollama.ai" / "library" / "tiny" / "latest"
    doc = json.loads(path.read_bytes())
    assert doc["schemaVersion"] == 2 and doc["mediaType"] == mt.MANIFEST_MEDIA_TYPE
    assert doc["config"]["mediaType"] == mt.CONFIG_MEDIA_TYPE
    assert [layer["mediaType"] for layer in doc["layers"]] == [mt.MT_MODEL, mt.MT_PARAMS]
    for layer in [doc["config"], *doc["layers"]]:
        blob = tiny_store.root / "blobs" / layer["digest"].replace(":", "-")
        assert blob.is_file() and blob.stat().st_size == layer["size"]
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == layer["digest"]
        assert oct(blob.stat().st_mode & 0o777) == "0o644"


def test_blob_write_refuses_a_digest_mismatch_and_leaves_nothing(store: Store) -> None:
    wrong = "sha256:" + "0" * 64
    with pytest.raises(DigestMismatch):
        store.write_blob_stream([b"hello"], expected=wrong)
    assert list(store.blobs.iterdir()) == []


@pytest.mark.parametrize("digest", ["sha256:../../etc/passwd", "sha256:" + "g" * 64, "md5:abc", "sha256:" + "a" * 63,
                                    "sha256-" + "a" * 63 + "/", "../sha256:" + "a" * 64])
def test_hostile_digests_never_become_paths(store: Store, digest: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid digest format"):
        store.blob_path(digest)


def test_manifest_with_hostile_digest_is_rejected() -> None:
    bad = {"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:../../x", "size": 1}, "layers": []}
    with pytest.raises(InvalidManifest):
        Manifest.parse(json.dumps(bad).encode())
    for raw in [b"", b"[]", b"{", b'{"config": {}, "layers": []}', b"x" * (5 << 20)]:
        with pytest.raises(InvalidManifest):
            Manifest.parse(raw)


def test_ollama_written_store_is_readable(tmp_path: Path, tiny_gguf: Path) -> None:
    """A store laid out by Ollama (extra config fields, legacy prompt layer, manifest bytes as the
    registry sent them, with whitespace) lists and loads."""
    from pollama.store.model import load_model

    store = Store(tmp_path / "m")
    model = store.import_file(tiny_gguf, mt.MT_MODEL)
    tmpl = store.write_blob_bytes(b"{{ .Prompt }}", mt.MT_PROMPT)
    cfg = store.write_blob_json({"model_format": "gguf", "model_family": "llama", "model_families": ["llama"],
                                 "model_type": "3.2B", "file_type": "Q4_K_M", "rootfs": {"type": "layers", "diff_ids": []},
                                 "architecture": "amd64", "os": "linux"}, mt.CONFIG_MEDIA_TYPE)
    raw = json.dumps({"schemaVersion": 2, "mediaType": mt.MANIFEST_MEDIA_TYPE, "config": cfg.to_json(),
                      "layers": [model.to_json(), tmpl.to_json()]}, indent=3).encode()
    path = store.root / "manifests" / "registry.ollama.ai" / "library" / "llama3.2" / "latest"
    path.parent.mkdir(parents=True)
    path.write_bytes(raw)
    [entry] = store.list()
    assert entry.name.display == "llama3.2:latest" and entry.digest == hashlib.sha256(raw).hexdigest()
    m = load_model(store, ModelName.parse("LLAMA3.2"))
    assert m.template == "{{ .Prompt }}" and m.details()["parameter_size"] == "3.2B"


def test_corrupt_manifest_is_skipped_in_listing_and_blocks_startup_pruning(tiny_store: Store) -> None:
    bad = tiny_store.root / "manifests" / "registry.ollama.ai" / "library" / "broken" / "latest"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    orphan = tiny_store.write_blob_bytes(b"orphan", "x")
    assert [e.name.display for e in tiny_store.list()] == ["tiny:latest"]
    tiny_store.prune_startup()
    assert tiny_store.has_blob(orphan.digest)  # a corrupt manifest might reference it


def test_copy_shares_blobs_and_delete_prunes_only_unreferenced(tiny_store: Store, tiny_gguf: Path) -> None:
    tiny_store.copy(ModelName.parse("tiny"), ModelName.parse("other:v2"))
    before = sorted(p.name for p in tiny_store.blobs.iterdir())
    tiny_store.delete(ModelName.parse("tiny"))
    assert sorted(p.name for p in tiny_store.blobs.iterdir()) == before
    assert not (tiny_store.manifests / "registry.ollama.ai" / "library" / "tiny").exists()
    tiny_store.delete(ModelName.parse("other:v2"))
    assert list(tiny_store.blobs.iterdir()) == [] and list(tiny_store.manifests.iterdir()) == []
    with pytest.raises(ModelNotFound):
        tiny_store.delete(ModelName.parse("other:v2"))


def test_no_temporary_files_remain_after_writes(tiny_store: Store, tiny_gguf: Path) -> None:
    add_model(tiny_store, "again", tiny_gguf, system="hi")
    leftovers = [p for p in tiny_store.root.rglob(".tmp-*")]
    assert leftovers == []


def test_bundled_import_is_offline_and_idempotent(store: Store) -> None:
    name = ModelName.parse("smollm2:135m")
    events = list(import_bundled(store, name, BUNDLED["smollm2:135m"]))
    assert events[0] == {"status": "pulling manifest"} and events[-1] == {"status": "success"}
    assert [e["status"] for e in events[-3:]] == ["verifying sha256 digest", "writing manifest", "success"]
    layer_events = [e for e in events if "digest" in e]
    assert all(e["status"] == f"pulling {e['digest'][7:19]}" for e in layer_events)
    first = store.entry(name).digest
    list(import_bundled(store, name, BUNDLED["smollm2:135m"]))
    assert store.entry(name).digest == first
    model_blob = store.blob_path(store.entry(name).manifest.first(mt.MT_MODEL).digest)  # type: ignore[union-attr]
    assert model_blob.stat().st_size == 98_362_432


def test_startup_prune_removes_stale_partials_and_temp_files_only_after_the_grace_period(tiny_store: Store) -> None:
    old = time.time() - 2 * 3600
    digest = "sha256-" + "d" * 64
    stale = [tiny_store.blobs / f"{digest}-partial", tiny_store.blobs / f"{digest}-partial-0",
             tiny_store.blobs / ".tmp-abandoned"]
    fresh = [tiny_store.blobs / ("sha256-" + "e" * 64 + "-partial"), tiny_store.blobs / ".tmp-writing"]
    for p in stale + fresh:
        p.write_bytes(b"x")
    for p in stale:
        os.utime(p, (old, old))
    (tiny_store.blobs / "splits").mkdir()  # not ours to touch
    orphan = tiny_store.write_blob_bytes(b"orphan", "x")
    os.utime(tiny_store.blob_path(orphan.digest), (old, old))
    kept = {p.name for p in tiny_store.blobs.iterdir()} - {p.name for p in stale} - {orphan.digest.replace(":", "-")}
    empty = tiny_store.manifests / "registry.ollama.ai" / "library" / "gone"
    empty.mkdir(parents=True)  # a model's directory left empty: removed too
    tiny_store.prune_startup()
    assert not empty.exists() and not empty.parent.joinpath("gone").exists()
    assert {p.name for p in tiny_store.blobs.iterdir()} == kept  # the model's blobs, fresh partials, the dir
    assert all(p.exists() for p in fresh) and tiny_store.has_model(ModelName.parse("tiny"))
