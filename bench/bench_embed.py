#!/usr/bin/env python3
"""Batch embeddings: pollama's ``/api/embed`` with 64 short texts vs the same batch sent straight to
the runner's llama.cpp ``/embeddings`` endpoint, same run, same runner process.

Each round sends the batch both ways (alternating which goes first) and times the whole HTTP
request. pollama's path tokenizes every text (for exact truncation and counts), sends the batch
to the runner as one request, then normalises and serialises the vectors. Prints the median
throughput (texts/s) of each path and the ratio (target >= 0.9).

Usage: python bench/bench_embed.py [--rounds 10] [--batch 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import httpx

from _serve import MODEL, runner_socket, serve

WORDS = "apple river stone cloud maple ember falcon quartz harbor violet meadow cobalt".split()


def texts(n: int, salt: int) -> list[str]:
    return [f"{WORDS[i % len(WORDS)]} {WORDS[(i * 5 + salt) % len(WORDS)]} number {i} in round {salt}." for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="runner threads (0: all cores; 1 is faster on a busy machine)")
    args = ap.parse_args()
    with serve(args.threads) as (pc, models, _):
        pc.post("/api/embed", json={"model": MODEL, "input": texts(args.batch, -1)}).raise_for_status()
        with httpx.Client(base_url="http://runner", timeout=600,
                          transport=httpx.HTTPTransport(uds=runner_socket(models))) as rc:
            times: dict[str, list[float]] = {"pollama": [], "runner": []}
            for i in range(args.rounds):
                batch = texts(args.batch, i)
                order = ["pollama", "runner"] if i % 2 == 0 else ["runner", "pollama"]
                for path in order:
                    t0 = time.perf_counter()
                    if path == "pollama":
                        r = pc.post("/api/embed", json={"model": MODEL, "input": batch})
                    else:
                        r = rc.post("/embeddings", json={"content": batch})
                    r.raise_for_status()
                    got = r.json()["embeddings"] if path == "pollama" else r.json()
                    assert len(got) == args.batch
                    times[path].append(time.perf_counter() - t0)
        rate = {p: args.batch / statistics.median(ts) for p, ts in times.items()}
        print(f"machine: {os.cpu_count()} CPUs, runner threads {args.threads or os.cpu_count()}, model {MODEL}, batch {args.batch}, {args.rounds} rounds")
        for p in ("pollama", "runner"):
            print(f"{p:<8} {rate[p]:8.1f} texts/s  (median batch {statistics.median(times[p]) * 1000:.0f} ms)")
        print(f"ratio pollama/runner: {rate['pollama'] / rate['runner']:.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
