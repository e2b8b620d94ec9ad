"""Record/replay of LLM exchanges for offline, deterministic CI (``--llm-record``/``--llm-replay``).

A cassette is a JSON Lines file. Line 1 is a header; every other line is one recorded sample::

    {"pollama_cassette": 1, "recorded_at": "...", "url": "...", "model": "..."}
    {"key": "3f1c…", "path": "/api/generate", "request": {...}, "status": 200,
     "chunks": [{...}, …], "offsets": [0.41, 0.43, …], "end": 0.88, "error": null}

The **key** is the SHA-256 (first 16 hex digits) of the request's canonical JSON (path and
body, keys sorted), so any change to the prompt, model or options is a different request. A
request made several times is recorded several times: a stochastic test replays a distribution,
not one frozen answer. On replay the *i*-th identical request gets the *i*-th recorded sample
(cycling when the run asks for more than were recorded). Chunks come back with their recorded
offsets, so TTFT and wall time measured on a replay are the recorded ones; ``realtime=True``
also sleeps them in real time.

A request missing from the cassette raises :class:`CassetteMiss`, naming the request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pollama.testing.client import Exchange, Transport

__all__ = ["Cassette", "CassetteError", "CassetteMiss", "RecordingTransport", "ReplayTransport", "request_key"]

VERSION = 1


class CassetteError(Exception):
    """The cassette file is missing or unreadable."""


class CassetteMiss(AssertionError):
    """A request has no recording in the cassette (an ``AssertionError`` so the test fails)."""


def canonical(path: str, body: Mapping[str, Any]) -> str:
    return json.dumps({"path": path, "body": body}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def request_key(path: str, body: Mapping[str, Any]) -> str:
    """Content key of a request.

    >>> request_key("/api/generate", {"model": "m", "prompt": "hi"}) == request_key(
    ...     "/api/generate", {"prompt": "hi", "model": "m"})
    True
    """
    return hashlib.sha256(canonical(path, body).encode()).hexdigest()[:16]


def describe_request(path: str, body: Mapping[str, Any]) -> str:
    """A short human rendering: ``POST /api/generate model=m prompt='…' options={…}``."""
    parts = [f"POST {path}", f"model={body.get('model')!r}"]
    if "prompt" in body:
        p = str(body["prompt"])
        parts.append(f"prompt={p[:80] + ('…' if len(p) > 80 else '')!r}")
    if "messages" in body:
        msgs = body["messages"] or [{}]
        last = str(msgs[-1].get("content", ""))
        parts.append(f"messages[{len(msgs)}] last={last[:60]!r}")
    for k in ("format", "options", "stream"):
        if k in body:
            parts.append(f"{k}={json.dumps(body[k], ensure_ascii=False, sort_keys=True)[:120]}")
    return " ".join(parts)


class Cassette:
    """Recorded samples grouped by request key. Thread-safe."""

    def __init__(self, path: str | Path, meta: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.meta = dict(meta or {})
        self.samples: dict[str, list[dict[str, Any]]] = {}
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path) -> Cassette:
        p = Path(path)
        if not p.is_file():
            raise CassetteError(f"cassette {p} does not exist; record one first with --llm-record {p}")
        cas = cls(p)
        with p.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CassetteError(f"{p}:{lineno}: not valid JSON ({exc})") from None
                if lineno == 1 and "pollama_cassette" in doc:
                    if doc["pollama_cassette"] != VERSION:
                        raise CassetteError(f"{p}: cassette version {doc['pollama_cassette']} is not supported")
                    cas.meta = doc
                    continue
                if not isinstance(doc, dict) or "key" not in doc or "chunks" not in doc:
                    raise CassetteError(f"{p}:{lineno}: not a cassette sample (needs key and chunks)")
                cas.samples.setdefault(doc["key"], []).append(doc)
        return cas

    def __len__(self) -> int:
        return sum(len(v) for v in self.samples.values())

    def add(self, path: str, body: Mapping[str, Any], ex: Exchange) -> None:
        key = request_key(path, body)
        sample: dict[str, Any] = {
            "key": key, "path": path, "request": dict(body), "status": ex.status,
            "chunks": list(ex.chunks), "offsets": [round(o, 6) for o in ex.offsets], "end": round(ex.end, 6),
            "error": ex.error,
        }
        with self._lock:
            self.samples.setdefault(key, []).append(sample)

    def next_sample(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        key = request_key(path, body)
        with self._lock:
            recorded = self.samples.get(key)
            if not recorded:
                raise CassetteMiss(
                    f"request not in cassette {self.path}: {describe_request(path, body)} (key {key}); "
                    f"re-record with --llm-record {self.path}"
                )
            i = self._served.get(key, 0)
            self._served[key] = i + 1
            return recorded[i % len(recorded)]

    def save(self) -> None:
        header = {"pollama_cassette": VERSION, "recorded_at": dt.datetime.now(dt.timezone.utc).isoformat(), **{
            k: v for k, v in self.meta.items() if k != "pollama_cassette"}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.write(json.dumps(header, ensure_ascii=False) + "\n")
            with self._lock:
                for samples in self.samples.values():
                    for s in samples:
                        f.write(json.dumps(s, ensure_ascii=False, sort_keys=True) + "\n")
        tmp.replace(self.path)


class RecordingTransport:
    """Passes requests to ``inner`` and records every exchange (errors included) in ``cassette``."""

    def __init__(self, inner: Transport, cassette: Cassette) -> None:
        self.inner = inner
        self.cassette = cassette

    def send(self, path: str, body: Mapping[str, Any]) -> Exchange:
        ex = self.inner.send(path, body)
        self.cassette.add(path, body, ex)
        return ex

    def get(self, path: str) -> Any:
        get = getattr(self.inner, "get", None)
        return get(path) if get is not None else {}


class ReplayTransport:
    """Serves recorded exchanges; never touches the network."""

    def __init__(self, cassette: Cassette, realtime: bool = False, sleep: Callable[[float], None] = time.sleep) -> None:
        self.cassette = cassette
        self.realtime = realtime
        self._sleep = sleep

    def send(self, path: str, body: Mapping[str, Any]) -> Exchange:
        s = self.cassette.next_sample(path, body)
        offsets = tuple(float(o) for o in s.get("offsets", []))
        end = float(s.get("end", offsets[-1] if offsets else 0.0))
        if self.realtime and end > 0:
            self._sleep(end)
        return Exchange(int(s.get("status", 200)), tuple(s["chunks"]), offsets, end, s.get("error"))
