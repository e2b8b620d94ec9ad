#!/usr/bin/env python3
"""Split-GGUF merge: pollama's merge into the store vs a plain verified copy of the same bytes.

The bundled ``gemma3:270m`` (≈253 MB) is cut into four shards with the ``gguf`` package's own
split writer (as llama.cpp's tools make them). Then, alternating over rounds and from a warm
page cache, it times

* **baseline**: the shards concatenated into one file in 1 MiB blocks while SHA-256 is
  computed, then ``fsync`` — the least any tool must do to produce a verified, durable blob of
  that size (pollama's blob writer fsyncs before the rename, so the baseline does too);
* **merge**: :func:`pollama.store.gguf_split.merge_into_store` — parse and check every shard,
  write the merged header, copy every tensor, hash, rename into the store.

Prints the medians and the ratio (target: ≥ 0.9× the baseline's throughput) and checks that the
merged blob is byte-identical to the original file.

    python bench/bench_merge.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from pollama.store.bundled import BUNDLED, import_bundled  # noqa: E402
from pollama.store.gguf_split import merge_into_store  # noqa: E402
from pollama.store.store import Store, sha256_file  # noqa: E402
from pollama.types.names import ModelName  # noqa: E402
from tests.factories import split_gguf  # noqa: E402

MODEL = "gemma3:270m"


def baseline(shards: list[Path], out: Path) -> None:
    h = hashlib.sha256()
    with open(out, "wb") as dst:
        for p in shards:
            with open(p, "rb") as src:
                while block := src.read(1 << 20):
                    h.update(block)
                    dst.write(block)
        dst.flush()
        os.fsync(dst.fileno())  # a blob store's commit is durable (pollama's BlobWriter fsyncs)
    h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src_store = Store(root / "src")
        for _ in import_bundled(src_store, ModelName.parse(MODEL), BUNDLED[MODEL]):
            pass
        model = src_store.read_manifest(ModelName.parse(MODEL))[0].first("application/vnd.ollama.image.model")
        assert model is not None
        original = src_store.blob_path(model.digest)
        (root / "shards").mkdir()
        shards = split_gguf(original, root / "shards", "gemma-3-270m-Q4_K_M", 4)
        size = sum(p.stat().st_size for p in shards)
        times: dict[str, list[float]] = {"baseline": [], "merge": []}
        for i in range(args.rounds):
            for path in (("baseline", "merge") if i % 2 == 0 else ("merge", "baseline")):
                store = Store(root / f"store-{i}-{path}")
                t0 = time.perf_counter()
                if path == "baseline":
                    store.ensure()
                    baseline(shards, store.blobs / "copy")
                else:
                    layer = merge_into_store(store, shards)
                times[path].append(time.perf_counter() - t0)
                if path == "merge":
                    assert layer.digest == model.digest, "merged blob differs from the original file"
                shutil.rmtree(store.root)
        rate = {k: size / statistics.median(v) / 1e6 for k, v in times.items()}
        print(f"{MODEL}: {len(shards)} shards, {size / 1e6:.1f} MB, {args.rounds} rounds (merged blob == original: yes)")
        print(f"baseline (concatenate + SHA-256), median: {rate['baseline']:7.0f} MB/s")
        print(f"pollama merge into the store, median:     {rate['merge']:7.0f} MB/s")
        print(f"throughput ratio merge/baseline: {rate['merge'] / rate['baseline']:.2f}  (target >= 0.90)")
        assert sha256_file(original) == model.digest


if __name__ == "__main__":
    main()
