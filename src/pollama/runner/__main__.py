"""Runner process entry point: ``python -m pollama.runner --model PATH (--socket PATH | --port N) …``.

Hosts llama.cpp's HTTP server (through the ``xllamacpp`` wheel) on a Unix socket (what pollama
uses: private to its user, no port to race for, cheaper per message than loopback TCP) or a
loopback port, and stays up until it is signalled or its parent dies. The parent talks to it over
HTTP only, so a crash in llama.cpp takes down this process and nothing else.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import threading
import time


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM us when the parent exits (no orphaned runners)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pollama.runner")
    ap.add_argument("--model", required=True)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", help="Unix socket path to listen on (must end in .sock)")
    where.add_argument("--port", type=int, help="loopback TCP port to listen on")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--ctx", type=int, required=True, help="context per slot")
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--embedding", action="store_true")
    ap.add_argument("--adapter", action="append", default=[])
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    parent = os.getppid()
    _die_with_parent()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))

    import xllamacpp as x  # imported late: it is large, and only the runner needs it

    p = x.CommonParams()
    p.model.path = args.model
    p.n_parallel = max(1, args.parallel)
    p.n_ctx = args.ctx * p.n_parallel
    p.kv_unified = False  # every slot gets exactly its own num_ctx
    p.ctx_shift = False  # generation stops at the context limit (done_reason "length")
    p.cache_prompt = True
    p.n_batch = args.batch
    p.n_ubatch = min(args.batch, 512)
    threads = args.threads or (os.cpu_count() or 1)
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    if args.socket:
        if not args.socket.endswith(".sock"):  # how llama.cpp's server tells a socket from a host
            ap.error("--socket must end in .sock")
        p.hostnames = [args.socket]
    else:
        p.port = args.port
        p.hostnames = [args.host]
    p.endpoint_slots = True
    p.endpoint_metrics = True
    p.endpoint_props = True
    p.no_extra_bufts = True  # repacked-weight buffers crash some CPUs' AMX kernels
    p.warmup = False
    p.embedding = args.embedding
    if args.embedding:
        p.pooling_type = x.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN if hasattr(x.llama_pooling_type, "LLAMA_POOLING_TYPE_MEAN") else p.pooling_type
    if args.adapter:
        p.lora_adapters = [x.CommonAdapterLoraInfo(path=a, scale=1.0) for a in args.adapter]
    server = x.Server(p)
    print(f"runner listening on {server.listening_address}", file=sys.stderr, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
