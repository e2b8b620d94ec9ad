"""Split (sharded) GGUF models, merged into one file.

llama.cpp's ``gguf-split`` cuts a large model into ``<prefix>-00001-of-0000N.gguf`` … shards: the
first carries the model's metadata, every shard carries ``split.no`` / ``split.count`` (the first
also ``split.tensors.count``) and a share of the tensors, each with its own header and data
section. Ollama's store holds one model blob per model, so — as Ollama's ``create`` does — the
shards are merged into a single GGUF: the first shard's metadata without the ``split.*`` keys
(copied byte for byte), one tensor table with offsets recomputed, then every tensor's bytes in
order, each padded to the file's alignment.

Nothing is trusted before it is checked: the shard set must be complete and consistent (names,
``split.no``, ``split.count``, tensor count, no duplicate tensor names), and every tensor's byte
range is computed from its type and shape and must lie inside its shard. Data is copied in
1 MiB blocks, so memory stays flat whatever the model's size.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pollama.errors import GGUFError
from pollama.store.gguf import MAX_TENSORS, GGUFInfo, GGUFLayout, TensorEntry, parse_gguf
from pollama.store.gguf_write import copy_data, header, pad
from pollama.store.manifest import MT_MODEL, Layer
from pollama.store.store import Store

SPLIT_KEYS = ("split.no", "split.count", "split.tensors.count")
MAX_SHARDS = 1024
_NAME = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.I)


def split_name(name: str) -> tuple[str, int, int] | None:
    """``(prefix, number, count)`` for a llama.cpp shard file name, else None.

    >>> split_name("Qwen2.5-7B-Q4_K_M-00002-of-00003.gguf")
    ('Qwen2.5-7B-Q4_K_M', 2, 3)
    >>> split_name("model.gguf") is None
    True
    """
    m = _NAME.match(name)
    if m is None:
        return None
    return m["prefix"], int(m["no"]), int(m["count"])


def shard_names(prefix: str, count: int) -> list[str]:
    """The file names of a ``count``-shard set, first to last."""
    return [f"{prefix}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


def missing_text(names: Sequence[str], shown: int = 3) -> str:
    """A short list of missing shard names (a hostile ``-of-99999`` must not make a 3 MB message).

    >>> missing_text(["a", "b"]), missing_text([str(i) for i in range(10)])
    ('a, b', '0, 1, 2 and 7 more')
    """
    head = ", ".join(names[:shown])
    return head if len(names) <= shown else f"{head} and {len(names) - shown} more"


def _type_sizes() -> dict[int, tuple[int, int]]:
    from gguf.constants import GGML_QUANT_SIZES  # ggml's block sizes: (elements, bytes) per block

    return {int(t): v for t, v in GGML_QUANT_SIZES.items()}


def tensor_nbytes(entry: TensorEntry, sizes: dict[int, tuple[int, int]]) -> int:
    """The bytes ``entry``'s data takes (unpadded), from its ggml type and shape."""
    if entry.ggml_type not in sizes:
        raise GGUFError(f"invalid GGUF file: tensor {entry.name!r} has unknown type {entry.ggml_type}")
    block, size = sizes[entry.ggml_type]
    if not entry.shape or entry.shape[0] % block:
        raise GGUFError(f"invalid GGUF file: tensor {entry.name!r} has shape {list(entry.shape)}, "
                        f"not a whole number of {block}-element blocks")
    n = 1
    for d in entry.shape:
        n *= d
    return n // block * size


@dataclass
class Shard:
    path: Path
    label: str  # how messages name it: the shard's file name, not its blob's
    info: GGUFInfo
    layout: GGUFLayout
    alignment: int
    data_start: int
    nbytes: list[int]  # per tensor-table row


def _needed(key: str) -> bool:
    """The keys a merge or a quantization reads (the vocabulary is only walked over)."""
    return (key.startswith("split.") or key in ("general.alignment", "general.architecture", "general.file_type")
            or key.endswith(".expert_count"))


def read_shard(path: Path, sizes: dict[int, tuple[int, int]] | None = None, label: str | None = None) -> Shard:
    """Parse one shard and check that every tensor's bytes lie inside it."""
    sizes = sizes if sizes is not None else _type_sizes()
    label = label or path.name
    layout = GGUFLayout()
    try:
        with open(path, "rb") as f:
            info = parse_gguf(f, layout=layout, keep=_needed)
            file_size = os.fstat(f.fileno()).st_size
    except OSError as e:
        raise GGUFError(f"could not read {label}: {e.strerror or e}") from e
    except GGUFError as e:
        raise GGUFError(f"{label}: {e.message}") from None
    alignment = info.metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1) or alignment > 1 << 16:
        raise GGUFError(f"invalid GGUF file: {label} has general.alignment {alignment!r}")
    data_start = pad(layout.header_end, alignment)
    nbytes = []
    for t in layout.entries:
        n = tensor_nbytes(t, sizes)
        if t.offset % alignment or data_start + t.offset + n > file_size:
            raise GGUFError(f"invalid GGUF file: {label} is truncated or tensor {t.name!r} lies outside it")
        nbytes.append(n)
    return Shard(path, label, info, layout, alignment, data_start, nbytes)


def check_shards(shards: Sequence[Shard]) -> None:
    """The set must be complete and consistent; the message says what is wrong and where."""
    count = len(shards)
    if not 1 <= count <= MAX_SHARDS:
        raise GGUFError(f"a split GGUF has 1 to {MAX_SHARDS} shards, not {count}")
    names: set[str] = set()
    total = 0
    for i, s in enumerate(shards):
        md = s.info.metadata
        no, of = md.get("split.no"), md.get("split.count")
        if of != count or no != i:
            said = (f"shard {no + 1} of {of}" if isinstance(no, int) and isinstance(of, int)
                    else "no shard of a split GGUF")
            raise GGUFError(f"{s.label}: its metadata says {said} (split.no {no!r}, split.count {of!r}), "
                            f"but it was given as shard {i + 1} of {count}")
        for e in s.layout.entries:
            if e.name in names:
                raise GGUFError(f"{s.label}: tensor {e.name!r} appears in more than one shard")
            names.add(e.name)
        total += len(s.layout.entries)
    if total > MAX_TENSORS:
        raise GGUFError(f"invalid GGUF file: {total} tensors exceeds the limit of {MAX_TENSORS}")
    want = shards[0].info.metadata.get("split.tensors.count")
    if want != total:
        raise GGUFError(f"{shards[0].label}: split.tensors.count is {want!r} but the shards hold {total} tensors")


def merge_shards(paths: Sequence[Path], write: Callable[[bytes], object],
                 progress: Callable[[int], None] | None = None, labels: Sequence[str] | None = None) -> int:
    """Write the one-file GGUF that ``paths`` (shards, first to last) split; return its size.

    Every shard is read and checked before the first byte is written; messages name a shard by
    its entry in ``labels`` (default: its file name).
    """
    sizes = _type_sizes()
    names = list(labels) if labels is not None else [None] * len(paths)
    shards = [read_shard(Path(p), sizes, label) for p, label in zip(paths, names, strict=True)]
    check_shards(shards)
    first = shards[0]
    align = first.alignment
    kvs = []
    with open(first.path, "rb") as f:
        for key, start, end in first.layout.kv_spans:
            if key not in SPLIT_KEYS:
                f.seek(start)
                kvs.append(f.read(end - start))
    head = header(kvs, [(t.name, t.shape, t.ggml_type, n) for s in shards for t, n in zip(s.layout.entries, s.nbytes)],
                  align)
    write(head)
    written = len(head)
    for s in shards:
        with open(s.path, "rb") as f:
            for t, n in zip(s.layout.entries, s.nbytes):
                try:
                    written += copy_data(f, s.data_start + t.offset, n, align, write, progress)
                except EOFError:
                    raise GGUFError(f"{s.label} shrank while it was being merged") from None
    return written


def merge_into_store(store: Store, paths: Sequence[Path], progress: Callable[[int], None] | None = None,
                     labels: Sequence[str] | None = None) -> Layer:
    """Merge the shards into one verified blob of ``store`` (the shards are left as they are).

    Needs free space for the merged copy (about the shards' total size): checked first.
    """
    need = sum(Path(p).stat().st_size for p in paths)
    store.ensure()
    free = shutil.disk_usage(store.blobs).free
    if need > free:
        raise GGUFError(f"not enough disk space to merge the split GGUF: {need} bytes needed, {free} available")
    with store.blob_writer() as w:
        merge_shards(paths, w.write, progress, labels)
        layer = w.commit()
    return Layer(MT_MODEL, layer.digest, layer.size)


__all__ = ["SPLIT_KEYS", "check_shards", "merge_into_store", "merge_shards", "missing_text", "read_shard", "shard_names",
           "split_name", "tensor_nbytes"]
