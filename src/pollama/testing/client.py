"""A measuring client for Ollama-compatible servers: typed results with server and client timings.

:class:`LLM` sends native-API requests (``/api/generate``, ``/api/chat``) through a
:class:`Transport` and returns a :class:`Result` that carries the text, every streamed chunk,
and :class:`Timings`: Ollama's server-side durations (load, prompt evaluation, generation,
total; nanoseconds on the wire, seconds here) plus the client-side wall time and time to first
token (TTFT, measured on a monotonic clock at the first chunk with non-empty content, never
after buffering the whole stream).

Transports are the seam for record/replay (:mod:`pollama.testing.cassette`): the live transport
speaks HTTP with ``httpx``; a recording transport wraps it; a replaying one serves recorded
exchanges with their recorded chunk offsets, so timings measured on a replay are the recorded
ones.

It works unchanged against real Ollama: only documented native fields are used.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Exchange",
    "LLM",
    "LLMHTTPError",
    "LiveTransport",
    "Result",
    "Timings",
    "Transport",
]

NS = 1e9


class LLMHTTPError(Exception):
    """The server answered with an error status (or an error line inside a stream).

    ``status_code`` makes :func:`pollama.guard.is_transient` classify it (5xx/429 transient).
    """

    def __init__(self, status_code: int, message: str, request: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.request = dict(request or {})


@dataclass(frozen=True)
class Exchange:
    """One request/response as a transport saw it.

    ``chunks`` are the decoded JSON documents (one for a non-streaming answer, one per NDJSON line
    otherwise); ``offsets[i]`` is when chunk ``i`` arrived, in seconds after the request was sent;
    ``end`` is when the response finished.
    """

    status: int
    chunks: tuple[dict[str, Any], ...]
    offsets: tuple[float, ...]
    end: float
    error: str | None = None


class Transport(Protocol):
    """Sends one native-API request and returns the whole exchange."""

    def send(self, path: str, body: Mapping[str, Any]) -> Exchange: ...


class LiveTransport:
    """HTTP to a live server with ``httpx`` (imported lazily). Thread-safe."""

    def __init__(self, base_url: str, timeout: float = 300.0) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def send(self, path: str, body: Mapping[str, Any]) -> Exchange:
        chunks: list[dict[str, Any]] = []
        offsets: list[float] = []
        start = time.perf_counter()
        with self._client.stream("POST", path, json=dict(body)) as r:
            if r.status_code >= 400:
                text = r.read().decode("utf-8", "replace")
                end = time.perf_counter() - start
                return Exchange(r.status_code, (), (), end, _error_text(text))
            for line in r.iter_lines():
                if not line.strip():
                    continue
                at = time.perf_counter() - start
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise LLMHTTPError(502, f"malformed JSON line from server: {line[:120]!r} ({exc})", body) from None
                chunks.append(doc if isinstance(doc, dict) else {"value": doc})
                offsets.append(at)
            end = time.perf_counter() - start
        return Exchange(r.status_code, tuple(chunks), tuple(offsets), end)

    def get(self, path: str) -> Any:
        r = self._client.get(path)
        if r.status_code >= 400:
            raise LLMHTTPError(r.status_code, _error_text(r.text))
        return r.json()


def _error_text(body: str) -> str:
    try:
        doc = json.loads(body)
    except json.JSONDecodeError:
        return body.strip()[:300] or "(empty body)"
    if isinstance(doc, dict):
        err = doc.get("error")
        if isinstance(err, dict):
            return str(err.get("message", err))
        if err is not None:
            return str(err)
    return body.strip()[:300]


@dataclass(frozen=True)
class Timings:
    """Server-side timings (Ollama's fields, in seconds) and client-side wall time and TTFT.

    Server fields are ``None`` when the server did not send them. ``ttft`` is ``None`` for
    non-streaming calls (the first byte is the whole answer) and when no content arrived.
    """

    wall: float
    ttft: float | None = None
    total: float | None = None
    load: float | None = None
    prompt_eval_count: int | None = None
    prompt_eval: float | None = None
    eval_count: int | None = None
    eval: float | None = None

    @property
    def gen_rate(self) -> float | None:
        """Generation rate in tokens/s from the server's ``eval_count`` / ``eval_duration``."""
        if self.eval_count and self.eval:
            return self.eval_count / self.eval
        return None

    @property
    def prompt_rate(self) -> float | None:
        """Prompt-processing rate in tokens/s (``prompt_eval_count`` / ``prompt_eval_duration``)."""
        if self.prompt_eval_count and self.prompt_eval:
            return self.prompt_eval_count / self.prompt_eval
        return None

    @property
    def overhead(self) -> float | None:
        """Client wall time minus the server's total: network, proxies, queueing outside the server."""
        return None if self.total is None else self.wall - self.total

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "wall": self.wall, "ttft": self.ttft, "total": self.total, "load": self.load,
            "prompt_eval_count": self.prompt_eval_count, "prompt_eval": self.prompt_eval,
            "eval_count": self.eval_count, "eval": self.eval,
            "gen_rate": self.gen_rate, "prompt_rate": self.prompt_rate,
        }


def _seconds(doc: Mapping[str, Any], key: str) -> float | None:
    v = doc.get(key)
    return v / NS if isinstance(v, (int, float)) else None


def _count(doc: Mapping[str, Any], key: str) -> int | None:
    v = doc.get(key)
    return int(v) if isinstance(v, (int, float)) else None


@dataclass(frozen=True)
class Result:
    """One call's outcome: the text, per-chunk pieces (≈ one token each when streamed), timings."""

    request: dict[str, Any]
    text: str
    pieces: tuple[str, ...]
    timings: Timings
    done_reason: str | None
    final: dict[str, Any]
    chunks: tuple[dict[str, Any], ...] = field(repr=False, default=())
    thinking: str = ""

    @property
    def prompt(self) -> str:
        if "prompt" in self.request:
            return str(self.request["prompt"])
        msgs = self.request.get("messages") or []
        return str(msgs[-1].get("content", "")) if msgs else ""

    def json(self) -> Any:
        """The text parsed as JSON (a ```json fence is tolerated); raises ``ValueError``."""
        text = self.text.strip()
        if text.startswith("```"):
            text = text.strip("`")
            text = text[4:] if text.lower().startswith("json") else text
        return json.loads(text)

    def token_index(self, char_index: int) -> int | None:
        """The index of the streamed piece containing character ``char_index`` of :attr:`text`."""
        if len(self.pieces) <= 1:
            return None
        pos = 0
        for i, piece in enumerate(self.pieces):
            pos += len(piece)
            if char_index < pos:
                return i
        return len(self.pieces)


def _piece(chunk: Mapping[str, Any]) -> tuple[str, str]:
    if "message" in chunk and isinstance(chunk["message"], dict):
        msg = chunk["message"]
        return str(msg.get("content") or ""), str(msg.get("thinking") or "")
    return str(chunk.get("response") or ""), str(chunk.get("thinking") or "")


def result_from_exchange(request: Mapping[str, Any], ex: Exchange) -> Result:
    """Assemble a :class:`Result` (raising :class:`LLMHTTPError` for error statuses or lines)."""
    if ex.status >= 400:
        raise LLMHTTPError(ex.status, ex.error or "error", request)
    pieces: list[str] = []
    thinking: list[str] = []
    ttft: float | None = None
    for chunk, at in zip(ex.chunks, ex.offsets):
        if "error" in chunk:
            raise LLMHTTPError(500, f"error inside the stream: {chunk['error']}", request)
        text, think = _piece(chunk)
        pieces.append(text)
        thinking.append(think)
        if ttft is None and (text or think):
            ttft = at
    if not ex.chunks:
        raise LLMHTTPError(502, "empty response from server", request)
    final = dict(ex.chunks[-1])
    if not final.get("done", True):
        raise LLMHTTPError(502, "stream ended before the final (done) chunk", request)
    streamed = bool(request.get("stream", True)) and len(ex.chunks) > 1
    timings = Timings(
        wall=ex.end,
        ttft=ttft if streamed else None,
        total=_seconds(final, "total_duration"),
        load=_seconds(final, "load_duration"),
        prompt_eval_count=_count(final, "prompt_eval_count"),
        prompt_eval=_seconds(final, "prompt_eval_duration"),
        eval_count=_count(final, "eval_count"),
        eval=_seconds(final, "eval_duration"),
    )
    return Result(
        request=dict(request), text="".join(pieces), pieces=tuple(pieces) if streamed else ("".join(pieces),),
        timings=timings, done_reason=final.get("done_reason"), final=final, chunks=ex.chunks,
        thinking="".join(thinking),
    )


class LLM:
    """A measuring client for one model on an Ollama-compatible server.

    >>> llm = LLM("http://127.0.0.1:11434", "smollm2:135m")      # doctest: +SKIP
    >>> r = llm.stream("Say hi", seed=1, temperature=0, num_predict=8)   # doctest: +SKIP
    >>> r.text, r.timings.ttft, r.timings.gen_rate                        # doctest: +SKIP

    ``options`` given to the constructor are merged under each call's options. Keyword
    shortcuts ``seed``, ``temperature`` and ``num_predict`` go into ``options``.
    """

    def __init__(
        self,
        url: str,
        model: str,
        *,
        transport: Transport | None = None,
        options: Mapping[str, Any] | None = None,
        timeout: float = 300.0,
        on_result: Callable[[Result], None] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self._transport = transport
        self._timeout = timeout
        self.options = dict(options or {})
        self.on_result = on_result
        self._lock = threading.Lock()
        self._owns_transport = transport is None

    def close(self) -> None:
        """Close the HTTP connections this client opened (not a transport it was given)."""
        with self._lock:
            close = getattr(self._transport, "close", None)
            if self._owns_transport and close is not None:
                close()
            self._transport = None

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def transport(self) -> Transport:
        with self._lock:
            if self._transport is None:
                self._transport = LiveTransport(self.url, self._timeout)
            return self._transport

    def with_model(self, model: str) -> LLM:
        """The same server, transport and options, another model (e.g. a judge)."""
        return LLM(self.url, model, transport=self.transport, options=self.options, on_result=self.on_result)

    # ------------------------------------------------------------------ requests

    def _options(self, options: Mapping[str, Any] | None, **short: Any) -> dict[str, Any]:
        out = {**self.options, **(options or {})}
        out.update({k: v for k, v in short.items() if v is not None})
        return out

    def _body(self, stream: bool, model: str | None, options: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model or self.model, "stream": stream}
        body.update({k: v for k, v in extra.items() if v is not None})
        if options:
            body["options"] = options
        return body

    def request(self, path: str, body: Mapping[str, Any]) -> Result:
        """Send a raw native-API body and measure it."""
        result = result_from_exchange(body, self.transport.send(path, body))
        if self.on_result is not None:
            self.on_result(result)
        return result

    def generate(
        self,
        prompt: str,
        *,
        stream: bool = False,
        model: str | None = None,
        system: str | None = None,
        options: Mapping[str, Any] | None = None,
        seed: int | None = None,
        temperature: float | None = None,
        num_predict: int | None = None,
        format: str | Mapping[str, Any] | None = None,
        raw: bool | None = None,
        keep_alive: str | float | None = None,
        think: bool | None = None,
    ) -> Result:
        """``POST /api/generate``."""
        opts = self._options(options, seed=seed, temperature=temperature, num_predict=num_predict)
        extra = {"prompt": prompt, "system": system, "format": format, "raw": raw, "keep_alive": keep_alive, "think": think}
        return self.request("/api/generate", self._body(stream, model, opts, extra))

    def stream(self, prompt: str, **kwargs: Any) -> Result:
        """:meth:`generate` with streaming, so :attr:`Timings.ttft` is measured."""
        return self.generate(prompt, stream=True, **kwargs)

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]] | str,
        *,
        stream: bool = False,
        model: str | None = None,
        options: Mapping[str, Any] | None = None,
        seed: int | None = None,
        temperature: float | None = None,
        num_predict: int | None = None,
        format: str | Mapping[str, Any] | None = None,
        keep_alive: str | float | None = None,
        think: bool | None = None,
    ) -> Result:
        """``POST /api/chat``; a bare string is one user message."""
        msgs = [{"role": "user", "content": messages}] if isinstance(messages, str) else [dict(m) for m in messages]
        opts = self._options(options, seed=seed, temperature=temperature, num_predict=num_predict)
        extra = {"messages": msgs, "format": format, "keep_alive": keep_alive, "think": think}
        return self.request("/api/chat", self._body(stream, model, opts, extra))

    def unload(self, model: str | None = None) -> None:
        """Ask the server to unload the model (``keep_alive: 0``), so the next call is cold."""
        self.transport.send("/api/generate", {"model": model or self.model, "keep_alive": 0})

    def concurrently(self, calls: Iterable[Callable[[], Result]], workers: int | None = None) -> list[Result]:
        """Run the calls at the same time (threads), results in the order given."""
        fns = list(calls)
        if not fns:
            return []
        with ThreadPoolExecutor(max_workers=workers or len(fns)) as pool:
            return list(pool.map(lambda f: f(), fns))

    def info(self) -> dict[str, Any]:
        """Best-effort fingerprint: server version and the model's digest/details (``{}`` parts
        that the server or transport cannot provide)."""
        out: dict[str, Any] = {"url": self.url, "model": self.model}
        get = getattr(self.transport, "get", None)
        if get is None:
            return out
        try:
            out["server_version"] = get("/api/version").get("version")
            for m in get("/api/tags").get("models", []):
                if m.get("name") == self.model or m.get("model") == self.model:
                    out["digest"] = m.get("digest")
                    out["details"] = m.get("details")
        except Exception as exc:  # a fingerprint is optional; say why it is missing
            out["fingerprint_error"] = f"{type(exc).__name__}: {exc}"
        return out


def tutorial_call(llm: LLM) -> Callable[..., dict[str, Any]]:
    """The tutorial's fixture shape: ``call(prompt, stream=False) -> dict`` (the final JSON object,
    with ``response`` holding the whole text even when streamed)."""

    def call(prompt: str, stream: bool = False, **options: Any) -> dict[str, Any]:
        r = llm.generate(prompt, stream=stream, options=options or None)
        return {**r.final, "response": r.text}

    return call
