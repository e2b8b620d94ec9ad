#!/usr/bin/env python3
"""Toolkit overhead and probe duration.

1. **Overhead per measured call**: the same requests, in the same run, against the same server
   (the scripted Ollama-compatible server of the test suite, in its own process, answering
   instantly so the client's cost is what is measured): a bare ``httpx`` call versus the
   toolkit's ``LLM.generate`` (non-streaming) and ``LLM.stream`` (streaming, TTFT measured,
   typed result). Rounds alternate which goes first; the report is the difference of medians,
   in milliseconds per call. Target: < 2 ms.
2. **Probe duration** (``--probe``): ``pollama probe smollm2:135m`` with default settings
   against a fresh ``pollama serve`` (temporary store, bundled model), wall time. Target: < 3 min.

Usage: python bench/bench_toolkit.py [--rounds 300] [--probe]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from pollama.testing.client import LLM  # noqa: E402
from pollama.testing.server import free_port, start_pollama, wait_until_up  # noqa: E402

SERVER = "import uvicorn, sys; from tests.fake_ollama import FakeOllama; " \
         "uvicorn.run(FakeOllama(overlap=0.0).app(), host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')"


def overhead(rounds: int) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, 30, None)
        body = {"model": "fake:1", "prompt": "hello", "options": {"num_predict": 16, "temperature": 0}}
        times: dict[str, list[float]] = {k: [] for k in ("bare", "llm", "bare_stream", "llm_stream")}
        with httpx.Client(base_url=url, timeout=30) as bare, LLM(url, "fake:1") as llm:

            def bare_call() -> None:
                bare.post("/api/generate", json={**body, "stream": False}).json()

            def llm_call() -> None:
                llm.generate("hello", num_predict=16, temperature=0)

            def bare_stream() -> None:
                with bare.stream("POST", "/api/generate", json={**body, "stream": True}) as r:
                    first = None
                    for line in r.iter_lines():
                        json.loads(line)
                        first = first or time.perf_counter()

            def llm_stream() -> None:
                llm.stream("hello", num_predict=16, temperature=0)

            fns = {"bare": bare_call, "llm": llm_call, "bare_stream": bare_stream, "llm_stream": llm_stream}
            for fn in fns.values():  # warm up connections and code paths
                for _ in range(10):
                    fn()
            for i in range(rounds):
                order = list(fns.items()) if i % 2 == 0 else list(fns.items())[::-1]
                for name, fn in order:
                    t = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t)
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        return {**{f"{k}_ms": v for k, v in med.items()},
                "overhead_ms": med["llm"] - med["bare"], "overhead_stream_ms": med["llm_stream"] - med["bare_stream"]}
    finally:
        proc.terminate()
        proc.wait(10)


def probe_duration() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_pollama("smollm2:135m", Path(tmp))
        try:
            t = time.perf_counter()
            run = subprocess.run([sys.executable, "-m", "pollama", "probe", "smollm2:135m", "--url", server.url,
                                  "-o", tmp], env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                                 capture_output=True, text=True, timeout=1800)
            elapsed = time.perf_counter() - t
            sys.stdout.write(run.stdout[-4000:])
            if run.returncode != 0:
                raise SystemExit(f"probe failed: {run.stderr[-2000:]}")
            return elapsed
        finally:
            server.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--probe", action="store_true", help="also time `pollama probe smollm2:135m` (minutes)")
    args = ap.parse_args()
    r = overhead(args.rounds)
    print(f"non-streaming: bare httpx {r['bare_ms']:.3f} ms, toolkit {r['llm_ms']:.3f} ms → overhead {r['overhead_ms']:.3f} ms/call")
    print(f"streaming:     bare httpx {r['bare_stream_ms']:.3f} ms, toolkit {r['llm_stream_ms']:.3f} ms → overhead "
          f"{r['overhead_stream_ms']:.3f} ms/call (target < 2 ms)")
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if args.probe:
        d = probe_duration()
        print(f"pollama probe smollm2:135m (default settings): {d:.0f} s (target < 180 s); "
              f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
