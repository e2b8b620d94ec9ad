"""Make an LLM call a constrained, monitored, fallback-able component.

:class:`Guard` wraps any callable (an ``ollama`` client call, an ``openai`` call, an ``httpx``
request, a plain function) and adds, per guarded call:

* a per-attempt **deadline** and a total **budget** for the primary across retries;
* **retries** with exponential backoff and full jitter, *only* for transient failures
  (connection errors, timeouts, HTTP 5xx, 429; never another 4xx), see :func:`is_transient`;
* output **validation** (a JSON Schema dict, a pydantic model class, or a predicate) with a
  **re-ask** that feeds the validation error back to the model, see :func:`append_to_prompt`;
* a **fallback chain** (other callables, then an optional constant ``default``);
* a shared **circuit breaker** (:class:`CircuitBreaker`);
* a :class:`GuardEvent` for every decision, sent to :mod:`logging`, to user hooks, and to the
  optional :class:`PrometheusHook` / :class:`OpenTelemetryHook` adapters.

The same guard serves sync code (:meth:`Guard.call`) and async code (:meth:`Guard.acall`). Both
drive one policy, written once as a generator that *yields effects* ("invoke this", "sleep that
long"); the two drivers only perform the effects. Time comes from an injectable ``clock`` and
waiting from injectable ``sleep``/``asleep``, so tests run the whole policy on a virtual clock.

Example::

    guard = Guard(
        lambda prompt: ollama.generate(model="qwen3", prompt=prompt, format="json"),
        extract=ollama_text,
        validate={"type": "object", "required": ["answer"]},
        reask=append_to_prompt("prompt"),
        fallbacks=[lambda prompt: ollama.generate(model="qwen3:0.6b", prompt=prompt, format="json")],
        default={"answer": None},
        deadline=10.0, budget=30.0, breaker=CircuitBreaker(failure_threshold=5),
    )
    result = guard.call(prompt="...")   # GuardResult: .value, .source, .attempts, .events
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Backoff",
    "BreakerOpen",
    "Call",
    "CircuitBreaker",
    "EventKind",
    "Guard",
    "GuardEvent",
    "GuardFailed",
    "GuardResult",
    "GuardTimeout",
    "OpenTelemetryHook",
    "PrometheusHook",
    "UpstreamStatusError",
    "ValidationFailed",
    "append_chat_message",
    "append_to_prompt",
    "is_transient",
    "make_validator",
    "ollama_text",
    "status_code_of",
]

EventKind = Literal[
    "attempt",
    "success",
    "retry",
    "timeout",
    "error",
    "validation_failed",
    "reask",
    "fallback",
    "breaker_open",
    "breaker_half_open",
    "breaker_closed",
    "budget_exhausted",
]
"""Every decision a guard takes. ``error`` marks an attempt that failed and is not retried."""

Hook = Callable[["GuardEvent"], None]
Clock = Callable[[], float]

_MISSING: Any = object()

# --------------------------------------------------------------------------- records and errors


@dataclass(frozen=True)
class GuardEvent:
    """One decision. ``elapsed`` is seconds since the guarded call began (guard clock)."""

    kind: EventKind
    attempt: int
    elapsed: float
    path: str = "primary"
    error: str | None = None
    delay: float | None = None
    guard: str = "guard"

    def __str__(self) -> str:
        parts = [f"{self.guard}[{self.path}] {self.kind} attempt={self.attempt} elapsed={self.elapsed:.3f}s"]
        if self.delay is not None:
            parts.append(f"delay={self.delay:.3f}s")
        if self.error:
            parts.append(f"error={self.error}")
        return " ".join(parts)


@dataclass(frozen=True)
class GuardResult:
    """What a guarded call produced and how.

    ``source`` is ``"primary"``, ``"fallback[i]"`` or ``"default"``; ``value`` is the validated
    value (a pydantic instance when validating with a model, decoded JSON with a schema) and
    ``raw`` what the callable returned.
    """

    value: Any
    raw: Any
    source: str
    fallback_index: int | None
    attempts: int
    elapsed: float
    events: tuple[GuardEvent, ...]
    """Every decision taken, in order. ``attempts`` counts calls made on all paths."""

    @property
    def used_fallback(self) -> bool:
        """True when the primary did not produce the value."""
        return self.source != "primary"


@dataclass(frozen=True)
class Call:
    """The positional and keyword arguments of one call to a guarded callable."""

    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str | int) -> Any:
        """The keyword argument ``key`` (str) or positional argument ``key`` (int)."""
        if isinstance(key, int):
            return self.args[key]
        return self.kwargs[key]

    def with_value(self, key: str | int, value: Any) -> Call:
        """A copy with one argument replaced."""
        if isinstance(key, int):
            args = list(self.args)
            args[key] = value
            return Call(tuple(args), dict(self.kwargs))
        return Call(self.args, {**self.kwargs, key: value})


class GuardTimeout(TimeoutError):
    """An attempt ran past its deadline (or the remaining budget)."""

    def __init__(self, limit: float) -> None:
        super().__init__(f"attempt exceeded its deadline of {limit:.3f}s")
        self.limit = limit


class UpstreamStatusError(Exception):
    """A callable *returned* an HTTP response with an error status (``check_status=True``)."""

    def __init__(self, status_code: int, body: str = "") -> None:
        super().__init__(f"HTTP {status_code}: {body[:200]}" if body else f"HTTP {status_code}")
        self.status_code = status_code
        self.body = body


class ValidationFailed(Exception):
    """An output did not pass validation. ``error`` is the text fed back on a re-ask."""

    def __init__(self, error: str, output: Any = None) -> None:
        super().__init__(error)
        self.error = error
        self.output = output


class BreakerOpen(Exception):
    """The circuit breaker rejected the call without invoking the primary."""


class GuardFailed(Exception):
    """Every path failed and there is no ``default``. ``last_error`` is the final cause."""

    def __init__(self, message: str, events: tuple[GuardEvent, ...], last_error: BaseException | None) -> None:
        super().__init__(message)
        self.events = events
        self.last_error = last_error


# --------------------------------------------------------------------------- classification

_TRANSIENT_NAMES = frozenset(
    {
        # httpx
        "TransportError", "TimeoutException", "NetworkError", "RemoteProtocolError",
        # requests / urllib3 / http.client
        "ConnectionError", "Timeout", "ChunkedEncodingError", "ProtocolError", "IncompleteRead",
        # openai
        "APIConnectionError", "APITimeoutError",
    }
)  # fmt: skip
_PERMANENT_NAMES = frozenset(
    {"UnsupportedProtocol", "LocalProtocolError", "InvalidURL", "MissingSchema", "InvalidSchema"}
)


def status_code_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries, found by duck typing, or None.

    Looks at ``exc.status_code`` (ollama ``ResponseError``, openai ``APIStatusError``, our
    :class:`UpstreamStatusError`) and ``exc.response.status_code`` (httpx ``HTTPStatusError``,
    requests ``HTTPError``). Values below 100 (ollama uses -1 for errors inside a stream) are
    not HTTP statuses and give None.
    """
    for holder in (exc, getattr(exc, "response", None)):
        code = getattr(holder, "status_code", None)
        if isinstance(code, int) and 100 <= code <= 599:
            return code
    return None


def is_transient(exc: BaseException) -> bool:
    """True when retrying ``exc`` may help: timeouts, connection failures, HTTP 5xx and 429.

    Any other HTTP 4xx is permanent: the same request will fail the same way. Foreign exception
    types (httpx, requests, openai, ollama) are recognised by duck typing and class names, so
    none of those packages is imported. Anything unrecognised (including ``json`` decode
    errors and errors inside an ollama stream) is permanent; pass ``classify=`` to change that.
    """
    if isinstance(exc, GuardTimeout):
        return True
    code = status_code_of(exc)
    if code is not None:
        return code == 429 or 500 <= code <= 599
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _PERMANENT_NAMES:
        return False
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    return bool(names & _TRANSIENT_NAMES)


def _is_timeout(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return isinstance(exc, TimeoutError) or bool(names & {"TimeoutException", "Timeout", "APITimeoutError"})


def _describe_error(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- backoff and breaker


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: retry ``k`` sleeps ``uniform(0, cap_k)`` seconds,
    where ``cap_k = min(max_delay, base * factor ** (k - 1))``.

    Full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter") spreads retries of
    many clients so they do not hit a recovering server in lock step.
    """

    base: float = 0.25
    factor: float = 2.0
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.base < 0 or self.max_delay < 0:
            raise ValueError(f"backoff base and max_delay must be >= 0, got {self.base}, {self.max_delay}")
        if self.factor < 1:
            raise ValueError(f"backoff factor must be >= 1, got {self.factor}")

    def cap(self, retry: int) -> float:
        """Upper bound of the sleep before retry number ``retry`` (1-based)."""
        return min(self.max_delay, self.base * self.factor ** (retry - 1))

    def delay(self, retry: int, rng: random.Random) -> float:
        """A jittered sleep before retry number ``retry``."""
        return rng.uniform(0.0, self.cap(retry))


BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Closed → open after ``failure_threshold`` failures within ``window`` seconds → half-open
    after ``cooldown`` seconds, which admits one probe → closed if the probe succeeds, open again
    if it fails.

    One breaker can be shared by many calls and many guards (it is thread-safe). It tracks
    *availability*: a guard records transient failures (timeouts, connection errors, 5xx, 429)
    as failures and any answer (even a 4xx or an invalid output) as a success. Successes in the
    closed state do not clear the failure window: it counts failures per time window.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        window: float = 60.0,
        cooldown: float = 30.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if window <= 0 or cooldown < 0:
            raise ValueError(f"window must be > 0 and cooldown >= 0, got window={window}, cooldown={cooldown}")
        self.failure_threshold = failure_threshold
        self.window = window
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: deque[float] = deque()
        self._state: BreakerState = "closed"
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        """The current state (``open`` turns into ``half_open`` only when a call arrives)."""
        return self._state

    def acquire(self) -> tuple[bool, BreakerState | None]:
        """May a call go through? Returns ``(allowed, new_state_if_it_changed)``."""
        with self._lock:
            if self._state == "closed":
                return True, None
            if self._state == "open" and self._clock() - self._opened_at >= self.cooldown:
                self._state = "half_open"
                self._probe_in_flight = True
                return True, "half_open"
            if self._state == "half_open" and not self._probe_in_flight:
                self._probe_in_flight = True
                return True, None
            return False, None

    def record_success(self) -> BreakerState | None:
        """The service answered. Returns the new state if it changed."""
        with self._lock:
            self._probe_in_flight = False
            if self._state == "half_open":
                self._state = "closed"
                self._failures.clear()
                return "closed"
            return None

    def record_failure(self) -> BreakerState | None:
        """The service failed (transiently). Returns the new state if it changed."""
        with self._lock:
            now = self._clock()
            self._probe_in_flight = False
            if self._state == "half_open":
                self._state, self._opened_at = "open", now
                return "open"
            self._failures.append(now)
            while self._failures and now - self._failures[0] > self.window:
                self._failures.popleft()
            if self._state == "closed" and len(self._failures) >= self.failure_threshold:
                self._state, self._opened_at = "open", now
                return "open"
            return None

    def release(self) -> None:
        """Forget an in-flight probe whose outcome will never be recorded (e.g. cancellation)."""
        with self._lock:
            self._probe_in_flight = False


# --------------------------------------------------------------------------- validation


def _strip_fence(text: str) -> str:
    s = text.strip()
    if s.startswith("```") and s.endswith("```") and "\n" in s:
        return s[s.index("\n") + 1 : -3].strip()
    return s


def _as_json(output: Any) -> Any:
    if isinstance(output, bytes):
        output = output.decode("utf-8", errors="replace")
    if isinstance(output, str):
        try:
            return json.loads(_strip_fence(output))
        except json.JSONDecodeError as exc:
            raise ValidationFailed(f"output is not valid JSON: {exc}", output) from exc
    return output


def _schema_validator(schema: Mapping[str, Any]) -> Callable[[Any], Any]:
    try:
        import jsonschema
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("validate= with a JSON Schema dict needs the 'jsonschema' package") from exc
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"validate=: invalid JSON Schema: {exc.message}") from exc
    validator = cls(schema)

    def check(output: Any) -> Any:
        value = _as_json(output)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            text = "; ".join(
                f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors[:3]
            )
            raise ValidationFailed(f"output does not match the JSON Schema: {text}", output)
        return value

    return check


def _model_validator(model: Any) -> Callable[[Any], Any]:
    def check(output: Any) -> Any:
        try:
            if isinstance(output, (str, bytes)):
                text = output if isinstance(output, str) else output.decode("utf-8", errors="replace")
                return model.model_validate_json(_strip_fence(text))
            return model.model_validate(output)
        except ValueError as exc:  # pydantic.ValidationError subclasses ValueError
            errors = getattr(exc, "errors", None)
            if callable(errors):
                items = errors()
                text = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in items[:3])
            else:
                text = str(exc)
            raise ValidationFailed(f"output does not match {model.__name__}: {text}", output) from exc

    return check


def _predicate_validator(pred: Callable[[Any], Any]) -> Callable[[Any], Any]:
    name = getattr(pred, "__name__", "validator")

    def check(output: Any) -> Any:
        try:
            ok = pred(output)
        except ValidationFailed:
            raise
        except Exception as exc:
            raise ValidationFailed(str(exc) or f"{name} raised {type(exc).__name__}", output) from exc
        if ok is not None and not ok:
            raise ValidationFailed(f"{name} rejected the output", output)
        return output

    return check


def make_validator(spec: Any) -> Callable[[Any], Any]:
    """Build a validator from a JSON Schema dict, a pydantic model class, or a predicate.

    The validator returns the validated value (decoded JSON for a schema, a model instance for
    a pydantic model, the output itself for a predicate) or raises :class:`ValidationFailed`.
    Strings are JSON-decoded for schemas and models; a surrounding Markdown code fence is
    stripped first. A predicate fails by returning a false value other than ``None`` or by
    raising (the exception text becomes the feedback); ``None`` means "no complaint".
    """
    if isinstance(spec, Mapping):
        return _schema_validator(spec)
    if isinstance(spec, type) and hasattr(spec, "model_validate") and hasattr(spec, "model_validate_json"):
        return _model_validator(spec)
    if callable(spec):
        return _predicate_validator(spec)
    raise TypeError(f"validate= must be a JSON Schema dict, a pydantic model class or a callable, got {spec!r}")


def ollama_text(response: Any) -> str:
    """The generated text of an Ollama or OpenAI-style response, whatever its container.

    Accepts a ``str``; a dict (``response``, ``message.content`` or ``choices[0]`` shapes); an
    object with those attributes (``ollama`` package responses); or an HTTP response object
    (httpx/requests) whose body is JSON or NDJSON (streamed pieces are concatenated).
    """
    if isinstance(response, str):
        return response
    if hasattr(response, "status_code") and isinstance(getattr(response, "text", None), str):
        return _text_from_body(response.text)
    if isinstance(response, Mapping):
        return _text_from_dict(response)
    for attr in ("response",):
        if isinstance(getattr(response, attr, None), str):
            return str(getattr(response, attr))
    content = getattr(getattr(response, "message", None), "content", None)
    if isinstance(content, str):
        return content
    raise TypeError(f"cannot find generated text in {type(response).__name__}")


def _text_from_dict(data: Mapping[str, Any]) -> str:
    if isinstance(data.get("response"), str):
        return str(data["response"])
    message = data.get("message")
    if isinstance(message, Mapping) and isinstance(message.get("content"), str):
        return str(message["content"])
    choices = data.get("choices")
    if isinstance(choices, list) and choices:
        first = choices[0]
        msg = first.get("message") or first.get("delta") or {}
        if isinstance(msg.get("content"), str):
            return str(msg["content"])
        if isinstance(first.get("text"), str):
            return str(first["text"])
    raise TypeError(f"cannot find generated text in a dict with keys {sorted(data)}")


def _text_from_body(body: str) -> str:
    try:
        return _text_from_dict(json.loads(body))
    except json.JSONDecodeError:
        pass
    pieces = []
    for line in body.splitlines():
        if line.strip():
            data = json.loads(line)
            if isinstance(data, Mapping) and "error" in data:
                raise ValueError(f"error inside stream: {data['error']}")
            pieces.append(_text_from_dict(data))
    return "".join(pieces)


# --------------------------------------------------------------------------- re-ask strategies


def _feedback(error: BaseException | None, limit: int = 300) -> str:
    """The error text handed to ``reask``: the validation error plus an excerpt of the rejected
    output, since a prompt-style re-ask does not otherwise show the model what it wrote."""
    if not isinstance(error, ValidationFailed):
        return str(error)
    output = error.output
    if isinstance(output, bytes):
        output = output.decode("utf-8", errors="replace")
    if not isinstance(output, str):
        try:
            output = json.dumps(output, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            output = repr(output)
    excerpt = output if len(output) <= limit else output[:limit] + "…"
    return f"{error.error} (your reply was: {excerpt!r})"


DEFAULT_FEEDBACK = (
    "Your previous reply was rejected: {error}\n"
    "Reply again with a corrected answer only, following the required format exactly."
)


def append_to_prompt(key: str | int = "prompt", template: str = DEFAULT_FEEDBACK) -> Callable[[Call, str], Call]:
    """A re-ask for prompt-style calls: append the error feedback to the prompt argument ``key``
    (a keyword name, or a positional index)."""

    def reask(previous: Call, error: str) -> Call:
        return previous.with_value(key, f"{previous.get(key)}\n\n{template.format(error=error)}")

    return reask


def append_chat_message(
    key: str | int = "messages", template: str = DEFAULT_FEEDBACK
) -> Callable[[Call, str], Call]:
    """A re-ask for chat-style calls: append a user message carrying the feedback to the message
    list argument ``key``."""

    def reask(previous: Call, error: str) -> Call:
        messages = list(previous.get(key))
        messages.append({"role": "user", "content": template.format(error=error)})
        return previous.with_value(key, messages)

    return reask


# --------------------------------------------------------------------------- hooks


_LEVELS: dict[str, int] = {
    "attempt": logging.DEBUG,
    "success": logging.DEBUG,
    "reask": logging.INFO,
    "breaker_half_open": logging.INFO,
    "breaker_closed": logging.INFO,
}


class PrometheusHook:
    """Hook that counts events and times successful calls with ``prometheus_client``.

    Metrics: ``<namespace>_guard_events_total{guard,kind,path}`` (counter) and
    ``<namespace>_guard_success_seconds{guard,path}`` (histogram of elapsed time at success).
    ``prometheus_client`` is imported here, not at module import. Pass a ``CollectorRegistry``
    as ``registry`` to keep metrics out of the global default registry (needed when several
    hooks are created in one process, e.g. in tests).
    """

    def __init__(self, registry: Any = None, namespace: str = "pollama") -> None:
        try:
            import prometheus_client
        except ImportError as exc:
            raise ImportError("PrometheusHook needs the 'prometheus_client' package") from exc
        extra: dict[str, Any] = {} if registry is None else {"registry": registry}
        self._events = prometheus_client.Counter(
            f"{namespace}_guard_events", "Guard decisions by kind.", ["guard", "kind", "path"], **extra
        )
        self._latency = prometheus_client.Histogram(
            f"{namespace}_guard_success_seconds",
            "Time to a successful guarded result.",
            ["guard", "path"],
            **extra,
        )

    def __call__(self, event: GuardEvent) -> None:
        self._events.labels(guard=event.guard, kind=event.kind, path=event.path).inc()
        if event.kind == "success":
            self._latency.labels(guard=event.guard, path=event.path).observe(event.elapsed)


class OpenTelemetryHook:
    """Hook that adds each event to the current OpenTelemetry span as ``guard.<kind>``.

    ``get_span`` defaults to ``opentelemetry.trace.get_current_span`` (imported lazily, needs
    ``opentelemetry-api``); without an SDK configured the span is a no-op.
    """

    def __init__(self, get_span: Callable[[], Any] | None = None) -> None:
        if get_span is None:
            try:
                from opentelemetry import trace
            except ImportError as exc:
                raise ImportError("OpenTelemetryHook needs the 'opentelemetry-api' package") from exc
            get_span = trace.get_current_span
        self._get_span = get_span

    def __call__(self, event: GuardEvent) -> None:
        attributes: dict[str, Any] = {
            "guard.name": event.guard,
            "guard.path": event.path,
            "guard.attempt": event.attempt,
            "guard.elapsed_s": event.elapsed,
        }
        if event.error is not None:
            attributes["guard.error"] = event.error
        if event.delay is not None:
            attributes["guard.delay_s"] = event.delay
        self._get_span().add_event(f"guard.{event.kind}", attributes=attributes)


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class _Invoke:
    fn: Callable[..., Any]
    call: Call
    timeout: float | None


@dataclass(frozen=True)
class _Sleep:
    seconds: float


@dataclass(frozen=True)
class _Outcome:
    value: Any = None
    error: BaseException | None = None


@dataclass(frozen=True)
class _PathResult:
    ok: bool
    value: Any = None
    raw: Any = None
    error: BaseException | None = None


_Effect = _Invoke | _Sleep
_Policy = Generator[_Effect, Any, GuardResult]
_PathGen = Generator[_Effect, Any, _PathResult]


class _Run:
    """Per-call bookkeeping: start time, attempts, events."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.start = guard._clock()
        self.attempts = 0
        self.events: list[GuardEvent] = []

    def elapsed(self) -> float:
        return self.guard._clock() - self.start

    def emit(
        self,
        kind: EventKind,
        path: str,
        attempt: int,
        error: BaseException | str | None = None,
        delay: float | None = None,
    ) -> None:
        text = _describe_error(error) if isinstance(error, BaseException) else error
        event = GuardEvent(kind, attempt, self.elapsed(), path, text, delay, self.guard.name)
        self.events.append(event)
        self.guard._dispatch(event)


# --------------------------------------------------------------------------- the guard


class Guard:
    """Retries, deadlines, validation, re-asks, fallbacks and a circuit breaker around a callable.

    Arguments (all keyword-only except ``primary``):

    * ``fallbacks``: callables tried in order, with the original arguments, once each, after the
      primary fails (a permanent error, retries or budget exhausted, breaker open, or invalid
      output after re-asks). Their outputs are validated too. Wrap one in its own ``Guard`` to
      give it retries.
    * ``default``: a constant returned (unvalidated) when everything else failed; without it a
      :class:`GuardFailed` is raised.
    * ``retries``: retries of the primary on transient failures (so ``1 + retries`` attempts,
      plus re-asks). ``classify`` decides what is transient (:func:`is_transient`).
    * ``backoff``: a :class:`Backoff`; ``rng`` its jitter source.
    * ``deadline``: seconds allowed per attempt. ``budget``: seconds allowed for the primary
      path in total (attempts plus backoff sleeps), from the start of the call; a backoff
      that would overrun the budget is not slept.
    * ``hard_deadline``: in :meth:`call`, run attempts that have a time limit in a worker thread
      and stop waiting at the limit (the abandoned thread finishes in the background; to stop
      the work itself, let the client time out too, see ``pass_timeout``). In :meth:`acall` the
      awaitable is cancelled. Either way an attempt that the guard clock shows to have run past
      its limit counts as a timeout and its value is discarded.
    * ``pass_timeout``: name of a keyword argument through which the primary receives its
      per-attempt time limit (e.g. ``"timeout"`` for httpx, requests or openai calls).
    * ``validate``: see :func:`make_validator`; ``extract`` maps the raw return value to the
      output to validate (e.g. :func:`ollama_text`).
    * ``reask``: ``reask(previous_call, error_text) -> Call``, see :func:`append_to_prompt` and
      :func:`append_chat_message`; ``max_reasks`` bounds it.
    * ``breaker``: a (shareable) :class:`CircuitBreaker` protecting the primary.
    * ``check_status``: a returned object with an integer ``status_code >= 400`` (an httpx or
      requests response) counts as a :class:`UpstreamStatusError`.
    * ``hooks``, ``logger``, ``name``: where events go and how they are labelled.
    * ``clock``, ``sleep``, ``asleep``, ``rng``: seams for tests.
    """

    def __init__(
        self,
        primary: Callable[..., Any],
        *,
        fallbacks: Sequence[Callable[..., Any]] = (),
        default: Any = _MISSING,
        retries: int = 2,
        backoff: Backoff | None = None,
        deadline: float | None = None,
        budget: float | None = None,
        hard_deadline: bool = True,
        pass_timeout: str | None = None,
        validate: Any = None,
        extract: Callable[[Any], Any] | None = None,
        reask: Callable[[Call, str], Call] | None = None,
        max_reasks: int = 1,
        breaker: CircuitBreaker | None = None,
        classify: Callable[[BaseException], bool] = is_transient,
        check_status: bool = True,
        hooks: Sequence[Hook] = (),
        logger: logging.Logger | None = None,
        name: str = "guard",
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if retries < 0 or max_reasks < 0:
            raise ValueError(f"retries and max_reasks must be >= 0, got {retries=}, {max_reasks=}")
        for label, val in (("deadline", deadline), ("budget", budget)):
            if val is not None and val <= 0:
                raise ValueError(f"{label} must be > 0 seconds, got {val!r}")
        self.primary = primary
        self.fallbacks = tuple(fallbacks)
        self.default = default
        self.retries = retries
        self.backoff = backoff or Backoff()
        self.deadline = deadline
        self.budget = budget
        self.hard_deadline = hard_deadline
        self.pass_timeout = pass_timeout
        self._validator = make_validator(validate) if validate is not None else None
        self.extract = extract
        self.reask = reask
        self.max_reasks = max_reasks
        self.breaker = breaker
        self.classify = classify
        self.check_status = check_status
        self.hooks = tuple(hooks)
        self.logger = logger or logging.getLogger("pollama.guard")
        self.name = name
        self._clock = clock
        self._sleep = sleep
        self._asleep = asleep
        self._rng = rng or random.Random()

    # ------------------------------------------------------------------ public entry points

    def call(self, *args: Any, **kwargs: Any) -> GuardResult:
        """Run the guarded call synchronously and return a :class:`GuardResult`."""
        policy = self._policy(Call(args, dict(kwargs)))
        reply: Any = None
        try:
            while True:
                effect = policy.send(reply)
                if isinstance(effect, _Sleep):
                    self._sleep(effect.seconds)
                    reply = None
                else:
                    reply = self._invoke_sync(effect)
        except StopIteration as stop:
            result: GuardResult = stop.value
            return result
        finally:
            policy.close()

    async def acall(self, *args: Any, **kwargs: Any) -> GuardResult:
        """Run the guarded call on the event loop.

        Callables may be async (their awaitables are cancelled at the deadline) or sync (called
        directly, so they block the loop and their deadline is only checked afterwards).
        """
        policy = self._policy(Call(args, dict(kwargs)))
        reply: Any = None
        try:
            while True:
                effect = policy.send(reply)
                if isinstance(effect, _Sleep):
                    await self._asleep(effect.seconds)
                    reply = None
                else:
                    reply = await self._invoke_async(effect)
        except StopIteration as stop:
            result: GuardResult = stop.value
            return result
        finally:
            policy.close()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Like :meth:`call` but returns only the value, so guards nest as fallbacks."""
        return self.call(*args, **kwargs).value

    # ------------------------------------------------------------------ drivers

    def _invoke_sync(self, effect: _Invoke) -> _Outcome:
        args, kwargs = effect.call.args, dict(effect.call.kwargs)
        try:
            if effect.timeout is not None and self.hard_deadline:
                value = _call_in_thread(effect.fn, args, kwargs, effect.timeout)
            else:
                value = effect.fn(*args, **kwargs)
        except Exception as exc:
            return _Outcome(error=exc)
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()
            raise TypeError(f"{self.name}: callable returned an awaitable; use acall() for async callables")
        return _Outcome(value=value)

    async def _invoke_async(self, effect: _Invoke) -> _Outcome:
        args, kwargs = effect.call.args, dict(effect.call.kwargs)
        try:
            if isinstance(effect.fn, Guard):
                pending: Any = _guard_value(effect.fn.acall(*args, **kwargs))
            else:
                pending = effect.fn(*args, **kwargs)
        except Exception as exc:
            return _Outcome(error=exc)
        if not inspect.isawaitable(pending):
            return _Outcome(value=pending)
        return await _await_within(pending, effect.timeout)

    # ------------------------------------------------------------------ events

    def _dispatch(self, event: GuardEvent) -> None:
        self.logger.log(_LEVELS.get(event.kind, logging.WARNING), "%s", event)
        for hook in self.hooks:
            try:
                hook(event)
            except Exception:  # a broken metrics hook must not break the guarded call
                self.logger.exception("%s: event hook %r failed", self.name, hook)

    # ------------------------------------------------------------------ the policy

    def _policy(self, call: Call) -> _Policy:
        run = _Run(self)
        primary = yield from self._primary_path(run, call)
        if primary.ok:
            return self._result(run, primary, "primary", None)
        last_error = primary.error
        for index, fallback in enumerate(self.fallbacks):
            path = f"fallback[{index}]"
            run.emit("fallback", path, 0, last_error)
            outcome = yield from self._fallback_path(run, path, fallback, call)
            if outcome.ok:
                return self._result(run, outcome, path, index)
            last_error = outcome.error
        if self.default is not _MISSING:
            run.emit("fallback", "default", 0, last_error)
            return self._result(run, _PathResult(ok=True, value=self.default, raw=self.default), "default", None)
        raise GuardFailed(
            f"{self.name}: all paths failed after {run.attempts} attempts: "
            f"{_describe_error(last_error) if last_error else 'no result'}",
            tuple(run.events),
            last_error,
        ) from last_error

    def _result(self, run: _Run, outcome: _PathResult, source: str, index: int | None) -> GuardResult:
        events = tuple(run.events)
        return GuardResult(outcome.value, outcome.raw, source, index, run.attempts, run.elapsed(), events)

    def _primary_path(self, run: _Run, call: Call) -> _PathGen:
        path, attempt, retries, reasks = "primary", 0, 0, 0
        current, last_error = call, None
        while True:
            if not self._admit(run, path, attempt):
                return _PathResult(ok=False, error=BreakerOpen(f"{self.name}: circuit breaker is open"))
            timeout = self._attempt_limit(run)
            if timeout is not None and timeout <= 0:
                run.emit("budget_exhausted", path, attempt, last_error)
                return _PathResult(ok=False, error=last_error or GuardTimeout(self.budget or 0.0))
            attempt += 1
            probe = self.breaker is not None
            try:
                limited = self._with_timeout(current, timeout)
                outcome = yield from self._attempt(run, path, attempt, self.primary, limited, timeout)
                probe = False
            finally:
                if probe and self.breaker is not None:
                    self.breaker.release()
            if outcome.error is not None:
                last_error = outcome.error
                transient = self._note_failure(run, path, attempt, outcome.error)
                if not transient:
                    return _PathResult(ok=False, error=outcome.error)
                if self.breaker is not None and self.breaker.state == "open":
                    return _PathResult(ok=False, error=outcome.error)  # no point sleeping first
                if retries >= self.retries:
                    run.emit("error", path, attempt, f"retries exhausted: {_describe_error(outcome.error)}")
                    return _PathResult(ok=False, error=outcome.error)
                delay = self.backoff.delay(retries + 1, self._rng)
                if self.budget is not None and run.elapsed() + delay >= self.budget:
                    run.emit("budget_exhausted", path, attempt, outcome.error, delay)
                    return _PathResult(ok=False, error=outcome.error)
                run.emit("retry", path, attempt, outcome.error, delay)
                yield _Sleep(delay)
                retries += 1
                continue
            self._note_answer(run, path, attempt)
            checked = self._check(run, path, attempt, outcome.value)
            if checked.ok or self.reask is None or reasks >= self.max_reasks:
                return checked
            reasks += 1
            last_error = checked.error
            current = self.reask(current, _feedback(checked.error))
            run.emit("reask", path, attempt, checked.error)

    def _fallback_path(self, run: _Run, path: str, fn: Callable[..., Any], call: Call) -> _PathGen:
        outcome = yield from self._attempt(run, path, 1, fn, call, self.deadline)
        if outcome.error is not None:
            run.emit("error", path, 1, outcome.error)
            return _PathResult(ok=False, error=outcome.error)
        return self._check(run, path, 1, outcome.value)

    def _attempt(
        self, run: _Run, path: str, attempt: int, fn: Callable[..., Any], call: Call, timeout: float | None
    ) -> Generator[_Effect, Any, _Outcome]:
        run.attempts += 1
        run.emit("attempt", path, attempt)
        started = self._clock()
        outcome: _Outcome = yield _Invoke(fn, call, timeout)
        took = self._clock() - started
        if outcome.error is None and timeout is not None and took > timeout:
            outcome = _Outcome(error=GuardTimeout(timeout))
        elif outcome.error is None and self.check_status:
            code = getattr(outcome.value, "status_code", None)
            if isinstance(code, int) and code >= 400:
                outcome = _Outcome(error=UpstreamStatusError(code, str(getattr(outcome.value, "text", "") or "")))
        if outcome.error is not None and _is_timeout(outcome.error):
            run.emit("timeout", path, attempt, outcome.error)
        return outcome

    def _check(self, run: _Run, path: str, attempt: int, raw: Any) -> _PathResult:
        try:
            output = self.extract(raw) if self.extract is not None else raw
            value = self._validator(output) if self._validator is not None else output
        except ValidationFailed as exc:
            run.emit("validation_failed", path, attempt, exc.error)
            return _PathResult(ok=False, raw=raw, error=exc)
        except Exception as exc:  # extract failed: the output has the wrong shape
            failure = ValidationFailed(f"could not extract output: {_describe_error(exc)}", raw)
            run.emit("validation_failed", path, attempt, failure.error)
            return _PathResult(ok=False, raw=raw, error=failure)
        run.emit("success", path, attempt)
        return _PathResult(ok=True, value=value, raw=raw)

    # ------------------------------------------------------------------ helpers

    def _attempt_limit(self, run: _Run) -> float | None:
        remaining = None if self.budget is None else self.budget - run.elapsed()
        limits = [x for x in (self.deadline, remaining) if x is not None]
        return min(limits) if limits else None

    def _with_timeout(self, call: Call, timeout: float | None) -> Call:
        if self.pass_timeout is None or timeout is None:
            return call
        return Call(call.args, {**call.kwargs, self.pass_timeout: timeout})

    def _admit(self, run: _Run, path: str, attempt: int) -> bool:
        if self.breaker is None:
            return True
        allowed, change = self.breaker.acquire()
        if change == "half_open":
            run.emit("breaker_half_open", path, attempt)
        if not allowed:
            run.emit("breaker_open", path, attempt, "circuit breaker is open; primary not called")
        return allowed

    def _note_failure(self, run: _Run, path: str, attempt: int, error: BaseException) -> bool:
        transient = self.classify(error)
        if self.breaker is not None:
            change = self.breaker.record_failure() if transient else self.breaker.record_success()
            if change == "open":
                run.emit("breaker_open", path, attempt, error)
            elif change == "closed":
                run.emit("breaker_closed", path, attempt)
        if not transient:
            run.emit("error", path, attempt, f"not retryable: {_describe_error(error)}")
        return transient

    def _note_answer(self, run: _Run, path: str, attempt: int) -> None:
        if self.breaker is not None and self.breaker.record_success() == "closed":
            run.emit("breaker_closed", path, attempt)


async def _await_within(pending: Awaitable[Any], limit: float | None) -> _Outcome:
    """Await ``pending``, cancelling it after ``limit`` seconds (event-loop time)."""
    try:
        async with asyncio.timeout(limit) as scope:
            value = await pending
    except TimeoutError as exc:
        return _Outcome(error=GuardTimeout(limit) if limit is not None and scope.expired() else exc)
    except Exception as exc:
        return _Outcome(error=exc)
    return _Outcome(value=value)


async def _guard_value(pending: Awaitable[GuardResult]) -> Any:
    return (await pending).value


def _call_in_thread(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float) -> Any:
    """Run ``fn`` in a daemon thread; stop waiting after ``timeout`` seconds (the thread is
    abandoned, not killed: Python cannot kill threads)."""
    done = threading.Event()
    box: dict[str, Any] = {}
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = ctx.run(fn, *args, **kwargs)
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="pollama-guard-attempt", daemon=True).start()
    if not done.wait(timeout):
        raise GuardTimeout(timeout)
    if "error" in box:
        raise box["error"]
    return box["value"]
