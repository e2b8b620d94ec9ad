"""Pull throughput and memory: pollama's registry pull vs a plain sequential HTTP download.

Starts Debian's docker-registry (CNCF distribution) on loopback, imports the bundled
``gemma3:270m`` (≈253 MB) and pushes it there with pollama's push. Then, in the same run and
interleaved over several rounds, it times

* **baseline**: a plain sequential GET of the model blob, written to a file — with the standard
  library (``http.client`` + ``shutil.copyfileobj``) and with ``httpx`` (the project's HTTP
  client); the faster of the two is the baseline;
* **verified baseline**: the same stdlib GET with the SHA-256 computed as the bytes arrive — the
  least any download that checks the digest must do (SHA-256 runs at ~1.5 GB/s on one core here,
  slower than a loopback copy, so on a 2-core machine it, not the network, bounds a verified pull);
* **pull**: ``pull_model`` into an empty store — parallel ranged parts, SHA-256 verification
  and rename into the store included (with Ollama's 16 streams, and with one),

and samples the process's RSS every 5 ms during the pull. Prints the medians and the ratio.
Targets: pull throughput ≥ 0.9× the baseline; peak RSS growth < 100 MB.

    python bench/bench_pull.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from pollama.store.bundled import BUNDLED, import_bundled
from pollama.store.registry import pull_model, push_model
from pollama.store.store import Store
from pollama.testing.distribution import LocalRegistry
from pollama.types.names import ModelName

PAGE = 4096


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakRSS:
    def __init__(self) -> None:
        self.base = rss()
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(0.005)

    def __enter__(self) -> PeakRSS:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss())

    @property
    def growth(self) -> int:
        return self.peak - self.base


def stdlib_get(port: int, path: str, out: Path) -> None:
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", path)
    r = c.getresponse()
    assert r.status == 200, r.status
    with open(out, "wb") as f:
        shutil.copyfileobj(r, f, 1 << 20)
    c.close()


def stdlib_get_verified(port: int, path: str, out: Path, digest: str) -> None:
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", path)
    r = c.getresponse()
    assert r.status == 200, r.status
    h = hashlib.sha256()
    buf = memoryview(bytearray(1 << 20))
    with open(out, "wb") as f:
        while n := r.readinto(buf):
            h.update(buf[:n])
            f.write(buf[:n])
    c.close()
    assert f"sha256:{h.hexdigest()}" == digest


def httpx_get(url: str, out: Path) -> None:
    with httpx.stream("GET", url) as r, open(out, "wb") as f:
        for chunk in r.iter_raw():
            f.write(chunk)


async def pull(store: Store, name: ModelName, streams: int) -> None:
    async for _ in pull_model(store, name, insecure=True, max_streams=streams):
        pass


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    try:
        src = Store(work / "src")
        bundled = ModelName.parse("gemma3:270m")
        for _ in import_bundled(src, bundled, BUNDLED["gemma3:270m"]):
            pass
        with LocalRegistry(work / "registry") as reg:
            name = ModelName.parse(f"{reg.host}/bench/gemma3:270m")
            src.copy(bundled, name)

            async def push() -> None:
                async for _ in push_model(src, name, insecure=True):
                    pass

            asyncio.run(push())
            manifest, _ = src.read_manifest(name)
            big = max(manifest.layers, key=lambda layer: layer.size)
            path = f"/v2/bench/gemma3/blobs/{big.digest}"
            total = manifest.total_size
            print(f"model blob {big.size / 1e6:.1f} MB, model total {total / 1e6:.1f} MB, {args.rounds} rounds")
            base_std, base_httpx, base_ver, pulls, growth, seq = [], [], [], [], [], []
            for i in range(args.rounds):
                out = work / "plain.bin"
                t = time.perf_counter()
                stdlib_get(reg.port, path, out)
                base_std.append(time.perf_counter() - t)
                out.unlink()
                t = time.perf_counter()
                stdlib_get_verified(reg.port, path, out, big.digest)
                base_ver.append(time.perf_counter() - t)
                out.unlink()
                t = time.perf_counter()
                httpx_get(reg.url + path, out)
                base_httpx.append(time.perf_counter() - t)
                out.unlink()
                dst = Store(work / f"dst{i}")
                dst.ensure()
                with PeakRSS() as mem:
                    t = time.perf_counter()
                    asyncio.run(pull(dst, name, 16))
                    pulls.append(time.perf_counter() - t)
                growth.append(mem.growth)
                assert dst.blob_path(big.digest).stat().st_size == big.size
                shutil.rmtree(dst.root)
                dst.ensure()
                t = time.perf_counter()
                asyncio.run(pull(dst, name, 1))
                seq.append(time.perf_counter() - t)
                shutil.rmtree(dst.root)
                print(f"  round {i + 1}: stdlib {big.size / base_std[-1] / 1e6:.0f} MB/s, "
                      f"httpx {big.size / base_httpx[-1] / 1e6:.0f} MB/s, "
                      f"stdlib+sha256 {big.size / base_ver[-1] / 1e6:.0f} MB/s, "
                      f"pull {total / pulls[-1] / 1e6:.0f} MB/s, RSS +{growth[-1] / 1e6:.1f} MB, "
                      f"pull with one stream {total / seq[-1] / 1e6:.0f} MB/s")
        baseline = min(statistics.median(base_std), statistics.median(base_httpx))
        base_tp = big.size / baseline
        pull_tp = total / statistics.median(pulls)
        ratio = pull_tp / base_tp
        ver_tp = big.size / statistics.median(base_ver)
        seq_tp = total / statistics.median(seq)
        peak = max(growth)
        print(f"baseline (plain sequential GET, best of stdlib/httpx medians): {base_tp / 1e6:.0f} MB/s")
        print(f"verified baseline (the same GET + SHA-256 as it arrives):      {ver_tp / 1e6:.0f} MB/s")
        print(f"pollama pull, 16 streams (verify + store included), median:    {pull_tp / 1e6:.0f} MB/s")
        print(f"pollama pull, one stream, median:                              {seq_tp / 1e6:.0f} MB/s")
        print(f"throughput ratio pull/baseline: {ratio:.2f}  (target >= 0.90); one stream {seq_tp / base_tp:.2f}")
        print(f"throughput ratio pull/verified baseline: {pull_tp / ver_tp:.2f}; one stream {seq_tp / ver_tp:.2f}")
        print(f"peak RSS growth during pull: {peak / 1e6:.1f} MB  (target < 100 MB)")
        return 0 if ratio >= 0.9 and peak < 100e6 else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
