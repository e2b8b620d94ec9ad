"""Merging split GGUFs: shards cut by the ``gguf`` package's own split writer (as llama.cpp's
tools make them) merge back into the original file, byte for byte; broken sets are refused
with a message that names the shard, before anything is written."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from pollama.errors import GGUFError
from pollama.store.gguf import read_gguf
from pollama.store.gguf_split import merge_into_store, merge_shards, shard_names, split_name
from pollama.store.store import Store, sha256_file
from tests.factories import split_gguf, write_tiny_gguf


@pytest.fixture
def original(tmp_path: Path) -> Path:
    return write_tiny_gguf(tmp_path / "tiny.gguf", tensors=9)


@pytest.fixture
def shards(original: Path, tmp_path: Path) -> list[Path]:
    d = tmp_path / "shards"
    d.mkdir()
    return split_gguf(original, d, "tiny-Q8_0", 3)


def merged(paths: list[Path]) -> bytes:
    out = io.BytesIO()
    size = merge_shards(paths, out.write)
    assert size == len(out.getvalue())
    return out.getvalue()


def test_shards_merge_back_into_the_original_file(original: Path, shards: list[Path]) -> None:
    assert [p.name for p in shards] == shard_names("tiny-Q8_0", 3)
    assert all(read_gguf(p).metadata["split.count"] == 3 for p in shards)
    data = merged(shards)
    assert data == original.read_bytes()
    info = read_gguf(original)
    assert not any(k.startswith("split.") for k in info.metadata)
    assert len(info.tensors) == 9


def test_merge_into_store_is_a_verified_model_blob(original: Path, shards: list[Path], tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    seen: list[int] = []
    layer = merge_into_store(store, shards, seen.append)
    assert layer.media_type == "application/vnd.ollama.image.model"
    assert layer.digest == sha256_file(original) and layer.size == original.stat().st_size
    assert store.blob_path(layer.digest).read_bytes() == original.read_bytes()
    assert 0 < sum(seen) <= layer.size  # progress counts tensor bytes copied
    assert all(p.exists() for p in shards)  # the caller decides what happens to the shards


def test_a_missing_or_misordered_shard_is_named(shards: list[Path]) -> None:
    with pytest.raises(GGUFError, match=r"^tiny-Q8_0-00001-of-00003.gguf: its metadata says shard 1 of 3 "
                                        r"\(split.no 0, split.count 3\), but it was given as shard 1 of 2$"):
        merge_shards(shards[:2], io.BytesIO().write)
    with pytest.raises(GGUFError, match=r"tiny-Q8_0-00003-of-00003.gguf: its metadata says shard 3 of 3 .* "
                                        r"given as shard 2 of 3"):
        merge_shards([shards[0], shards[2], shards[1]], io.BytesIO().write)


def test_a_truncated_shard_is_refused_before_anything_is_written(shards: list[Path]) -> None:
    data = shards[2].read_bytes()
    shards[2].write_bytes(data[:-40])
    out = io.BytesIO()
    with pytest.raises(GGUFError, match="tiny-Q8_0-00003-of-00003.gguf is truncated"):
        merge_shards(shards, out.write)
    assert out.getvalue() == b""


def test_a_shard_from_another_split_is_refused(original: Path, shards: list[Path], tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    foreign = split_gguf(write_tiny_gguf(tmp_path / "other.gguf", tensors=6), other, "x", 3)
    # Shard 2 of a different model, numbered right: its tensors collide with this model's.
    with pytest.raises(GGUFError, match=r"x-00002-of-00003.gguf: tensor 'blk.\d+.weight' appears in more than one shard"):
        merge_shards([shards[0], foreign[1], shards[2]], io.BytesIO().write)
    # The last shard of a model whose tensors are named apart: the tensor count no longer adds up.
    apart = tmp_path / "apart"
    apart.mkdir()
    distinct = split_gguf(write_tiny_gguf(tmp_path / "apart.gguf", tensors=6, block="other"), apart, "y", 3)
    with pytest.raises(GGUFError, match="split.tensors.count is 9 but the shards hold 8 tensors"):
        merge_shards([shards[0], shards[1], distinct[2]], io.BytesIO().write)


def test_the_same_tensors_twice_are_refused(shards: list[Path], tmp_path: Path) -> None:
    # Shard 2's bytes under shard 3's name: split.no says 1 where 2 is expected.
    copy = tmp_path / "dup-00003-of-00003.gguf"
    shutil.copy(shards[1], copy)
    with pytest.raises(GGUFError, match="dup-00003-of-00003.gguf: its metadata says shard 2 of 3"):
        merge_shards([shards[0], shards[1], copy], io.BytesIO().write)


def test_a_file_that_is_not_split_is_not_a_shard_set(original: Path) -> None:
    with pytest.raises(GGUFError, match=r"tiny.gguf: its metadata says no shard of a split GGUF "
                                        r"\(split.no None, split.count None\), but it was given as shard 1 of 1"):
        merge_shards([original], io.BytesIO().write)


def test_split_names() -> None:
    assert split_name("m-00001-of-00002.gguf") == ("m", 1, 2)
    assert split_name("M-00010-OF-00012.GGUF") == ("M", 10, 12)
    assert split_name("m-1-of-2.gguf") is None and split_name("m-00001-of-00002.bin") is None
