"""A fault-injection HTTP proxy for Ollama-compatible servers (``pollama chaos``).

The proxy forwards every request to an upstream server (Ollama, pollama, llama-server, vLLM …)
and streams the answer back chunk by chunk (NDJSON and SSE alike), injecting faults:

=============  ==============================================================================
kind           effect
=============  ==============================================================================
latency        wait before contacting the upstream (fixed or a distribution)
error          answer with an error status and an Ollama-shaped ``{"error": ...}`` body (OpenAI
               shape under ``/v1/``) without contacting the upstream; with ``after_lines`` the
               status stays 200 and the stream ends with an error line, as Ollama does mid-stream
drop           close the connection abruptly after N lines (or N bytes): an incomplete body
truncate       send N lines, then half of the next one, then end the response cleanly
malformed      replace line N+1 by its first half (invalid JSON) and carry on streaming
slow_tokens    wait before every streamed line after the first
stall          wait once, before line N+1
=============  ==============================================================================

"Lines" are NDJSON lines, or SSE events for ``text/event-stream`` answers; a non-streaming
JSON answer is one line. A fault whose trigger point lies beyond the end of the answer does not
fire (and is not counted).

Faults come from a :class:`ChaosConfig`: each fault in ``faults`` fires independently with its
``rate``; ``script`` instead lists the faults of the 1st, 2nd, … request (``loop_script``
repeats it; after a non-looping script ends, ``faults`` apply). Randomness comes from one
``random.Random(seed)``, drawn in request order, so a sequential client sees a reproducible
sequence. Only requests whose path starts with one of ``paths`` are eligible (default: all).

Control endpoints: ``GET /_chaos/stats`` (counters), ``DELETE /_chaos/stats`` (reset),
``GET``/``POST /_chaos/config`` (read / replace the configuration; replacing re-seeds and resets).

Durations are written ``250ms``, ``1.5s``, ``500us``, ``2m`` or a bare number of seconds;
delays are a duration or ``normal:MEAN,STD``, ``uniform:LOW,HIGH``, ``exponential:MEAN``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ipaddress
import json
import logging
import random
import re
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import httpx
import uvicorn
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = [
    "BackgroundServer",
    "ChaosConfig",
    "ChaosConfigError",
    "ChaosProxy",
    "ChaosState",
    "Delay",
    "Fault",
    "create_chaos_app",
    "parse_duration",
    "parse_fault_spec",
    "parse_listen",
    "run_proxy",
]

Sleep = Callable[[float], Awaitable[None]]


class ChaosConfigError(ValueError):
    """A chaos configuration that does not validate; the message names the offending field."""


# --------------------------------------------------------------------------- durations and delays

_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d*)?|\.\d+)\s*(us|µs|ms|s|m)?\s*$")
_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, None: 1.0}


def parse_duration(value: str | float) -> float:
    """Seconds from ``"250ms"``, ``"1.5s"``, ``"500us"``, ``"2m"`` or a number of seconds.

    >>> parse_duration("250ms"), parse_duration("1.5s"), parse_duration(2)
    (0.25, 1.5, 2.0)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"invalid duration {value!r}; use e.g. 250ms, 1.5s, 500us, 2m or seconds")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError(f"duration must not be negative, got {value!r}")
    return seconds


class Delay(BaseModel):
    """A delay: fixed, or drawn from a distribution (clipped at zero).

    Written as a string: ``"200ms"`` (fixed), ``"normal:200ms,50ms"`` (mean, standard deviation),
    ``"uniform:100ms,300ms"`` (low, high) or ``"exponential:200ms"`` (mean; ``exp:`` also works).

    >>> Delay.model_validate("normal:200ms,50ms")
    Delay(dist='normal', a=0.2, b=0.05)
    """

    model_config = ConfigDict(frozen=True)

    dist: Literal["fixed", "normal", "uniform", "exponential"] = "fixed"
    a: float = Field(ge=0)
    b: float = Field(default=0.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return {"dist": "fixed", "a": parse_duration(data)}
        if not isinstance(data, str):
            return data
        name, _, rest = data.partition(":") if ":" in data else ("fixed", "", data)
        name = {"exp": "exponential"}.get(name.strip(), name.strip())
        parts = [p for p in rest.split(",") if p.strip()]
        want = {"fixed": 1, "exponential": 1, "normal": 2, "uniform": 2}
        if name not in want:
            raise ValueError(f"unknown delay distribution {name!r}; use fixed, normal, uniform or exponential")
        if len(parts) != want[name]:
            raise ValueError(f"{name} delay takes {want[name]} duration(s), got {rest!r}")
        values = [parse_duration(p) for p in parts]
        return {"dist": name, "a": values[0], "b": values[1] if len(values) > 1 else 0.0}

    @model_validator(mode="after")
    def _check(self) -> Delay:
        if self.dist == "uniform" and self.b < self.a:
            raise ValueError(f"uniform delay needs low <= high, got {self.a}s, {self.b}s")
        return self

    def sample(self, rng: random.Random) -> float:
        """One delay in seconds."""
        if self.dist == "normal":
            return max(0.0, rng.gauss(self.a, self.b))
        if self.dist == "uniform":
            return rng.uniform(self.a, self.b)
        if self.dist == "exponential":
            return rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0
        return self.a

    def __str__(self) -> str:
        if self.dist == "fixed":
            return f"{self.a}s"
        if self.dist == "exponential":
            return f"exponential:{self.a}s"
        return f"{self.dist}:{self.a}s,{self.b}s"


# --------------------------------------------------------------------------- faults

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
Lines = Annotated[int, Field(ge=0)]


class _FaultBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rate: Rate = 1.0


class LatencyFault(_FaultBase):
    """Wait ``delay`` before contacting the upstream."""

    kind: Literal["latency"] = "latency"
    delay: Delay


class ErrorFault(_FaultBase):
    """Answer with ``status`` (or, with ``after_lines``, a mid-stream error line)."""

    kind: Literal["error"] = "error"
    status: int = Field(default=500, ge=400, le=599)
    message: str | None = None
    after_lines: Lines | None = None


class DropFault(_FaultBase):
    """Abort the connection after ``after_lines`` lines or ``after_bytes`` bytes."""

    kind: Literal["drop"] = "drop"
    after_lines: Lines | None = None
    after_bytes: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _one_trigger(self) -> DropFault:
        if self.after_lines is not None and self.after_bytes is not None:
            raise ValueError("give after_lines or after_bytes, not both")
        return self

    @property
    def line_trigger(self) -> int | None:
        """The line index before which to drop (0 when no trigger is given), or None for bytes."""
        if self.after_bytes is not None:
            return None
        return self.after_lines or 0


class TruncateFault(_FaultBase):
    """Send ``after_lines`` lines, then half of the next, then end the response."""

    kind: Literal["truncate"] = "truncate"
    after_lines: Lines = 0


class MalformedFault(_FaultBase):
    """Replace line ``after_lines + 1`` by its first half, then carry on."""

    kind: Literal["malformed"] = "malformed"
    after_lines: Lines = 0


class SlowTokensFault(_FaultBase):
    """Wait ``delay`` (sampled per line) before each streamed line after the first."""

    kind: Literal["slow_tokens"] = "slow_tokens"
    delay: Delay


class StallFault(_FaultBase):
    """Wait ``delay`` once, before line ``after_lines + 1``."""

    kind: Literal["stall"] = "stall"
    after_lines: Lines = 1
    delay: Delay


Fault = Annotated[
    Union[LatencyFault, ErrorFault, DropFault, TruncateFault, MalformedFault, SlowTokensFault, StallFault],
    Field(discriminator="kind"),
]
FAULT_KINDS = ("latency", "error", "drop", "truncate", "malformed", "slow_tokens", "stall")


class ChaosConfig(BaseModel):
    """What the proxy injects. See the module docstring."""

    model_config = ConfigDict(extra="forbid")

    seed: int | None = None
    faults: list[Fault] = Field(default_factory=list)
    script: list[list[Fault]] = Field(default_factory=list)
    loop_script: bool = False
    paths: list[str] | None = None

    @field_validator("script", mode="before")
    @classmethod
    def _script_entries(cls, value: Any) -> Any:
        """Each script entry may be one fault, a list of faults, or null/"pass" for none."""
        if not isinstance(value, list):
            return value
        out: list[Any] = []
        for entry in value:
            if entry is None or entry == "pass":
                out.append([])
            elif isinstance(entry, (dict, BaseModel)):
                out.append([entry])
            else:
                out.append(entry)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChaosConfig:
        """Validate a dict (parsed from JSON or YAML); errors become :class:`ChaosConfigError`."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ChaosConfigError(_explain(exc)) from None

    @classmethod
    def from_file(cls, path: str | Path) -> ChaosConfig:
        """Load a ``.json`` file, or a ``.yaml``/``.yml`` file when PyYAML is installed."""
        p = Path(path)
        text = p.read_text(encoding="utf-8")
        if p.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as exc:
                raise ChaosConfigError(f"{p}: YAML configs need PyYAML; use JSON instead") from exc
            data = yaml.safe_load(text)
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ChaosConfigError(f"{p}: not valid JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise ChaosConfigError(f"{p}: the top level must be an object")
        return cls.from_dict(data)

    @classmethod
    def from_cli(
        cls,
        faults: Sequence[str] = (),
        script: Sequence[str] = (),
        seed: int | None = None,
        loop_script: bool = False,
        paths: Sequence[str] | None = None,
    ) -> ChaosConfig:
        """Build a config from command-line fault specs (see :func:`parse_fault_spec`).

        Each ``script`` item is one request's faults joined by ``+`` (``"latency:1s+drop:2"``)
        or ``pass`` for none.
        """
        try:
            entries = [[parse_fault_spec(s) for s in item.split("+")] if item != "pass" else [] for item in script]
            return cls(
                seed=seed,
                faults=[parse_fault_spec(s) for s in faults],
                script=entries,
                loop_script=loop_script,
                paths=list(paths) if paths is not None else None,
            )
        except ValidationError as exc:
            raise ChaosConfigError(_explain(exc)) from None


def _loc(parts: Sequence[Any]) -> str:
    """``("faults", 0, "error", "rate")`` → ``"faults[0].rate"`` (the union tag is dropped)."""
    out = ""
    prev: Any = None
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not (isinstance(prev, int) and part in FAULT_KINDS):
            out += f".{part}" if out else str(part)
        prev = part
    return out


def _explain(exc: ValidationError) -> str:
    """A readable, field-naming rendering of a pydantic error."""
    lines = []
    for err in exc.errors():
        loc = _loc(err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "union_tag_invalid":
            tag = err.get("ctx", {}).get("tag")
            msg = f"unknown fault kind {tag!r} (expected one of: {', '.join(FAULT_KINDS)})"
            loc = f"{loc}.kind"
        elif err["type"] == "union_tag_not_found":
            msg = f"missing 'kind' (one of: {', '.join(FAULT_KINDS)})"
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "invalid chaos config: " + "; ".join(lines)


_FAULT_CLASSES: dict[str, type[_FaultBase]] = {
    "latency": LatencyFault,
    "error": ErrorFault,
    "drop": DropFault,
    "truncate": TruncateFault,
    "malformed": MalformedFault,
    "slow_tokens": SlowTokensFault,
    "slow": SlowTokensFault,
    "stall": StallFault,
}


def parse_fault_spec(spec: str) -> Any:
    """Parse a command-line fault: ``KIND[:ARGS][@RATE]``.

    ===========================  =============================================
    ``latency:normal:200ms,50ms``  latency drawn from a distribution
    ``error:503@0.2``              503 on 20% of requests
    ``error:500,lines=3``          mid-stream error line after 3 lines
    ``drop:lines=3``/``drop:3``    abort after 3 lines; ``drop:bytes=100``
    ``truncate:2``                 2 lines, half a line, end
    ``malformed:1``                second line cut in half
    ``slow_tokens:50ms``           (or ``slow:``) 50 ms before each line
    ``stall:2:5s``                 5 s pause before line 3
    ===========================  =============================================

    >>> parse_fault_spec("error:503@0.25")
    ErrorFault(rate=0.25, kind='error', status=503, message=None, after_lines=None)
    """
    body, _, rate_text = spec.partition("@")
    kind, _, args = body.strip().partition(":")
    kind = kind.strip()
    cls = _FAULT_CLASSES.get(kind)
    if cls is None:
        expected = ", ".join(FAULT_KINDS)
        raise ChaosConfigError(f"fault {spec!r}: unknown fault kind {kind!r} (expected one of: {expected})")
    fields: dict[str, Any] = {}
    if rate_text:
        try:
            fields["rate"] = float(rate_text)
        except ValueError:
            raise ChaosConfigError(f"fault {spec!r}: rate must be a number in [0, 1], got {rate_text!r}") from None
    try:
        fields.update(_fault_args(cls, args))
        return cls(**fields)
    except ValidationError as exc:
        raise ChaosConfigError(f"fault {spec!r}: {_explain(exc).removeprefix('invalid chaos config: ')}") from None
    except ValueError as exc:
        raise ChaosConfigError(f"fault {spec!r}: {exc}") from None


def _fault_args(cls: type[_FaultBase], args: str) -> dict[str, Any]:
    if cls in (LatencyFault, SlowTokensFault):
        if not args:
            raise ValueError("needs a delay, e.g. 200ms or normal:200ms,50ms")
        return {"delay": args}
    if cls is StallFault:
        lines, _, delay = args.partition(":")
        if not delay:
            raise ValueError("stall takes LINES:DELAY, e.g. stall:2:5s")
        return {"after_lines": int(lines), "delay": delay}
    out: dict[str, Any] = {}
    for item in filter(None, (a.strip() for a in args.split(","))):
        key, eq, value = item.partition("=")
        if not eq:  # positional: status for errors, line count otherwise
            key, value = ("status" if cls is ErrorFault else "after_lines"), item
        key = {"lines": "after_lines", "bytes": "after_bytes"}.get(key, key)
        out[key] = value if key == "message" else int(value)
    return out


# --------------------------------------------------------------------------- state and stats


@dataclass
class ChaosStats:
    """Counters. ``faults`` counts faults that actually fired, by kind."""

    requests: int = 0
    eligible: int = 0
    passed_through: int = 0
    upstream_errors: int = 0
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        return {
            "requests": self.requests,
            "eligible": self.eligible,
            "passed_through": self.passed_through,
            "upstream_errors": self.upstream_errors,
            "faults": dict(self.faults),
        }


@dataclass
class _Plan:
    """The faults chosen for one request, with its own RNG for per-line draws."""

    faults: list[Any]
    rng: random.Random
    latency: float = 0.0

    @property
    def immediate_error(self) -> ErrorFault | None:
        return next((f for f in self.faults if isinstance(f, ErrorFault) and f.after_lines is None), None)

    @property
    def stream_faults(self) -> list[Any]:
        return [f for f in self.faults if not isinstance(f, LatencyFault) and f is not self.immediate_error]


class ChaosState:
    """The mutable state of one proxy: config, RNG, counters. Thread-safe, so tests may
    reconfigure a proxy that serves from another thread."""

    def __init__(self, config: ChaosConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.config = config or ChaosConfig()
        self.rng = random.Random(self.config.seed)
        self.stats = ChaosStats()

    def configure(self, config: ChaosConfig) -> None:
        """Replace the configuration; re-seed the RNG and reset counters and script position."""
        with self._lock:
            self.config = config
            self.rng = random.Random(config.seed)
            self.stats = ChaosStats()

    def reset(self) -> None:
        """Reset counters and the script position (the RNG is re-seeded too)."""
        self.configure(self.config)

    def snapshot(self) -> dict[str, Any]:
        """Counters as a dict, plus the script position."""
        with self._lock:
            data = self.stats.to_dict()
        data["script_length"] = len(self.config.script)
        return data

    def count(self, kind: str) -> None:
        """Record that a fault of ``kind`` fired."""
        with self._lock:
            self.stats.faults[kind] += 1

    def count_upstream_error(self) -> None:
        with self._lock:
            self.stats.upstream_errors += 1

    def plan(self, path: str) -> _Plan:
        """Choose the faults for the next request to ``path``."""
        with self._lock:
            cfg = self.config
            self.stats.requests += 1
            if cfg.paths is not None and not any(path.startswith(p) for p in cfg.paths):
                self.stats.passed_through += 1
                return _Plan([], random.Random(0))
            index = self.stats.eligible
            self.stats.eligible += 1
            if cfg.script and (cfg.loop_script or index < len(cfg.script)):
                candidates = cfg.script[index % len(cfg.script)]
            else:
                candidates = cfg.faults
            chosen = [f for f in candidates if self.rng.random() < f.rate or f.rate >= 1.0]
            plan = _Plan(chosen, random.Random(self.rng.getrandbits(64)))
            plan.latency = sum(f.delay.sample(self.rng) for f in chosen if isinstance(f, LatencyFault))
            if not chosen:
                self.stats.passed_through += 1
            return plan


# --------------------------------------------------------------------------- the proxy app

_HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "content-length", "accept-encoding",
    }
)  # fmt: skip

_DEFAULT_MESSAGES = {
    503: "server busy, please try again.  maximum pending requests exceeded",
    500: "an internal error occurred (injected by pollama chaos)",
    429: "too many requests (injected by pollama chaos)",
}


def _error_message(fault: ErrorFault) -> str:
    return fault.message or _DEFAULT_MESSAGES.get(fault.status, f"HTTP {fault.status} (injected by pollama chaos)")


def _error_body(path: str, message: str) -> dict[str, Any]:
    if path.startswith("/v1/"):
        return {"error": {"message": message, "type": "api_error", "param": None, "code": None}}
    return {"error": message}


def _split_frames(buffer: bytearray, sep: bytes) -> Iterator[bytes]:
    while (i := buffer.find(sep)) >= 0:
        frame = bytes(buffer[: i + len(sep)])
        del buffer[: i + len(sep)]
        yield frame


async def _frames(chunks: AsyncIterator[bytes], sep: bytes) -> AsyncIterator[bytes]:
    """Re-frame a byte stream into separator-terminated frames (the last may lack one)."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer.extend(chunk)
        for frame in _split_frames(buffer, sep):
            yield frame
    if buffer:
        yield bytes(buffer)


def _drop_byte_trigger(faults: list[Any]) -> int | None:
    return next((f.after_bytes for f in faults if isinstance(f, DropFault) and f.line_trigger is None), None)


class _ChaosStream:
    """ASGI response that relays an upstream streaming answer while applying stream faults."""

    def __init__(self, upstream: httpx.Response, plan: _Plan, state: ChaosState, sleep: Sleep, path: str) -> None:
        self.upstream = upstream
        self.plan = plan
        self.state = state
        self.sleep = sleep
        self.path = path
        self.sse = upstream.headers.get("content-type", "").startswith("text/event-stream")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in self.upstream.headers.items()
            if k.lower() not in _HOP_BY_HOP
        ]
        try:
            await send({"type": "http.response.start", "status": self.upstream.status_code, "headers": headers})
            faults = self.plan.stream_faults
            complete = await (self._relay_faulty(send, faults) if faults else self._relay(send))
            if complete:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            # Otherwise return without finishing the body: the server aborts the connection.
        finally:
            await self.upstream.aclose()

    async def _relay(self, send: Send) -> bool:
        async for chunk in self.upstream.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        return True

    async def _relay_faulty(self, send: Send, faults: list[Any]) -> bool:
        sent = 0
        index = 0
        async for frame in _frames(self.upstream.aiter_raw(), b"\n\n" if self.sse else b"\n"):
            action, frame = await self._before_frame(index, frame, faults)
            if action == "drop":
                return False
            drop_at = _drop_byte_trigger(faults)
            if drop_at is not None and sent + len(frame) >= drop_at:
                self.state.count("drop")
                if drop_at > sent:
                    await send({"type": "http.response.body", "body": frame[: drop_at - sent], "more_body": True})
                return False
            await send({"type": "http.response.body", "body": frame, "more_body": True})
            sent += len(frame)
            index += 1
            if action == "end":
                return True
        return True

    async def _before_frame(self, index: int, frame: bytes, faults: list[Any]) -> tuple[str, bytes]:
        """Apply the faults due before frame ``index``; return (action, frame to send)."""
        for fault in faults:
            if isinstance(fault, SlowTokensFault) and index > 0:
                if index == 1:  # count the fault once per request, when it first bites
                    self.state.count("slow_tokens")
                await self.sleep(fault.delay.sample(self.plan.rng))
            elif isinstance(fault, StallFault) and index == fault.after_lines:
                self.state.count("stall")
                await self.sleep(fault.delay.sample(self.plan.rng))
        for fault in faults:
            trigger = fault.line_trigger if isinstance(fault, DropFault) else getattr(fault, "after_lines", None)
            due = trigger == index
            if isinstance(fault, ErrorFault) and due:
                self.state.count("error")
                return "end", self._error_frame(fault)
            if isinstance(fault, DropFault) and due:
                self.state.count("drop")
                return "drop", b""
            if isinstance(fault, TruncateFault) and due:
                self.state.count("truncate")
                return "end", frame[: max(1, len(frame.rstrip(b"\n")) // 2)]
            if isinstance(fault, MalformedFault) and due:
                self.state.count("malformed")
                body = frame.rstrip(b"\n")
                frame = body[: max(1, len(body) // 2)] + (b"\n\n" if self.sse else b"\n")
        return "send", frame

    def _error_frame(self, fault: ErrorFault) -> bytes:
        line = json.dumps(_error_body(self.path, _error_message(fault))).encode()
        return b"data: " + line + b"\n\n" if self.sse else line + b"\n"


def create_chaos_app(
    upstream: str,
    config: ChaosConfig | None = None,
    *,
    state: ChaosState | None = None,
    sleep: Sleep = asyncio.sleep,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The proxy as an ASGI app. ``app.state.chaos`` is its :class:`ChaosState`.

    ``sleep`` (for latency, slow tokens, stalls) and ``transport`` (to the upstream) are seams
    for tests.
    """
    if not upstream.startswith(("http://", "https://")):
        raise ChaosConfigError(f"upstream must be an http:// or https:// URL, got {upstream!r}")
    chaos = state or ChaosState(config)
    clients: list[httpx.AsyncClient] = []

    def client() -> httpx.AsyncClient:
        if not clients:
            timeout = httpx.Timeout(connect=10.0, read=None, write=None, pool=None)
            clients.append(httpx.AsyncClient(base_url=upstream.rstrip("/"), timeout=timeout, transport=transport))
        return clients[0]

    async def stats(request: Request) -> Response:
        if request.method == "DELETE":
            chaos.reset()
        return JSONResponse(chaos.snapshot())

    async def config_endpoint(request: Request) -> Response:
        if request.method == "POST":
            try:
                data = json.loads(await request.body() or b"{}")
                if not isinstance(data, dict):
                    raise ChaosConfigError("invalid chaos config: the body must be a JSON object")
                chaos.configure(ChaosConfig.from_dict(data))
            except json.JSONDecodeError as exc:
                return JSONResponse({"error": f"invalid JSON: {exc}"}, status_code=400)
            except ChaosConfigError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(chaos.config.model_dump(mode="json"))

    async def proxy(request: Request) -> Response | _ChaosStream:
        path = request.url.path
        plan = chaos.plan(path)
        if plan.latency > 0:
            chaos.count("latency")
            await sleep(plan.latency)
        error = plan.immediate_error
        if error is not None:
            chaos.count("error")
            return JSONResponse(_error_body(path, _error_message(error)), status_code=error.status)
        return await _forward(request, client(), plan, chaos, sleep)

    async def shutdown() -> None:
        for c in clients:
            await c.aclose()

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    routes = [
        Route("/_chaos/stats", stats, methods=["GET", "DELETE"]),
        Route("/_chaos/config", config_endpoint, methods=["GET", "POST"]),
        Route("/{path:path}", proxy, methods=methods),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await shutdown()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.chaos = chaos
    return app


async def _forward(
    request: Request, client: httpx.AsyncClient, plan: _Plan, chaos: ChaosState, sleep: Sleep
) -> Response | _ChaosStream:
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
    headers.append(("accept-encoding", "identity"))  # line faults need uncompressed bytes
    url = httpx.URL(path=request.url.path, query=request.url.query.encode("utf-8"))
    outgoing = client.build_request(request.method, url, headers=headers, content=await request.body())
    try:
        upstream = await client.send(outgoing, stream=True)
    except httpx.HTTPError as exc:
        chaos.count_upstream_error()
        message = f"pollama chaos: upstream unreachable: {type(exc).__name__}: {exc}"
        return JSONResponse(_error_body(request.url.path, message), status_code=502)
    return _ChaosStream(upstream, plan, chaos, sleep, request.url.path)


# --------------------------------------------------------------------------- serving


def parse_listen(listen: str, default_port: int = 11435) -> tuple[str, int]:
    """``"127.0.0.1:8080"``, ``"[::1]:8080"``, ``"localhost"``, ``":8080"`` → (host, port).

    >>> parse_listen("[::1]:9000"), parse_listen(":9000"), parse_listen("localhost")
    (('::1', 9000), ('127.0.0.1', 9000), ('localhost', 11435))
    """
    text = listen.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ChaosConfigError(f"listen address {listen!r}: port must be a number") from None
    if not 0 <= port <= 65535:
        raise ChaosConfigError(f"listen address {listen!r}: port out of range")
    return host or "127.0.0.1", port


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _require_loopback(host: str, allow_non_loopback: bool) -> None:
    if not allow_non_loopback and not is_loopback(host):
        raise ChaosConfigError(
            f"refusing to listen on non-loopback address {host!r}: a fault-injection proxy should not be "
            "reachable from other machines; pass allow_non_loopback=True (--allow-remote) to override"
        )


_UNFINISHED = "ASGI callable returned without completing response."


class _InjectedDropFilter(logging.Filter):
    """uvicorn logs an ERROR whenever a response is left unfinished, which is exactly how the
    ``drop`` fault aborts a connection; restate it as an INFO note about the injected fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() != _UNFINISHED:
            return True
        record.msg, record.args = "pollama chaos: connection dropped mid-response (injected fault)", ()
        record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def chaos_log_config() -> dict[str, Any]:
    """uvicorn's logging config with :class:`_InjectedDropFilter` on its handlers."""
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["pollama_chaos_drop"] = {"()": _InjectedDropFilter}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("pollama_chaos_drop")
    return config


def run_proxy(
    upstream: str,
    listen: str = "127.0.0.1:11435",
    config: ChaosConfig | None = None,
    *,
    allow_non_loopback: bool = False,
    log_level: str = "info",
) -> None:
    """Serve the chaos proxy in the foreground until interrupted (``pollama chaos``)."""
    host, port = parse_listen(listen)
    _require_loopback(host, allow_non_loopback)
    app = create_chaos_app(upstream, config)
    uvicorn.run(app, host=host, port=port, log_level=log_level, log_config=chaos_log_config())


class BackgroundServer:
    """Serve an ASGI app with uvicorn on a free port in a background thread.

    A context manager: entering binds a socket (port 0, so the OS picks a free port; no race),
    starts the server and waits until it accepts connections; ``url`` is then its base URL.
    Leaving stops it.
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        log_level: str = "warning",
        startup_timeout: float = 10.0,
        log_config: dict[str, Any] | None = None,
    ) -> None:
        _require_loopback(host, allow_non_loopback=False)
        self.app = app
        self.log_config = log_config
        self.host = host
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def __enter__(self) -> BackgroundServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto must be IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets
        # whose proto says TCP, and without it every response waits ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        port = sock.getsockname()[1]
        extra: dict[str, Any] = {} if self.log_config is None else {"log_config": self.log_config}
        config = uvicorn.Config(self.app, host=self.host, port=port, log_level=self.log_level, lifespan="on", **extra)
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="pollama-bg-server", daemon=True
        )
        self._server, self._thread, self._socket = server, thread, sock
        thread.start()
        self._wait_started()
        host = f"[{self.host}]" if family == socket.AF_INET6 else self.host
        self.url = f"http://{host}:{port}"
        return self

    def _wait_started(self) -> None:
        assert self._server is not None and self._thread is not None
        started = threading.Event()
        for _ in range(int(self.startup_timeout / 0.005)):
            if self._server.started:
                started.set()
                break
            if not self._thread.is_alive():
                break
            started.wait(0.005)
        if not started.is_set():
            self.__exit__(None, None, None)
            raise RuntimeError("background server did not start")

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()


class ChaosProxy:
    """A chaos proxy on a free loopback port, for tests::

        with ChaosProxy(upstream_url, ChaosConfig(script=[...], seed=1)) as proxy:
            httpx.post(f"{proxy.url}/api/generate", json=...)
            assert proxy.stats()["faults"]["error"] == 1
    """

    def __init__(
        self,
        upstream: str,
        config: ChaosConfig | Mapping[str, Any] | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        host: str = "127.0.0.1",
    ) -> None:
        cfg = ChaosConfig.from_dict(config) if isinstance(config, Mapping) else config
        self.state = ChaosState(cfg)
        self.app = create_chaos_app(upstream, state=self.state, sleep=sleep)
        self._server = BackgroundServer(self.app, host=host, log_config=chaos_log_config())

    @property
    def url(self) -> str:
        """Base URL of the running proxy."""
        return self._server.url

    def __enter__(self) -> ChaosProxy:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)

    def stats(self) -> dict[str, Any]:
        """The same counters as ``GET /_chaos/stats``."""
        return self.state.snapshot()

    def configure(self, config: ChaosConfig | Mapping[str, Any]) -> None:
        """Replace the configuration (re-seeds, resets counters and the script position)."""
        self.state.configure(ChaosConfig.from_dict(config) if isinstance(config, Mapping) else config)

    def reset(self) -> None:
        """Reset counters and the script position."""
        self.state.reset()
