"""The one table of environment variables.

Every variable pollama reads is declared here once, with Ollama's name, default, parser and help
text. :func:`load` reads them into a frozen :class:`Settings`; nothing else in the code base reads
``os.environ``. Tests build ``Settings`` directly.

Parsing follows Ollama (reference §5): values are trimmed of spaces and surrounding quotes; a
boolean that does not parse counts as true; durations are Go durations or integer seconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pollama.types.duration import parse_env_duration

DEFAULT_PORT = 11434


@dataclass(frozen=True)
class Host:
    """Where the server listens and where clients connect."""

    scheme: str
    host: str
    port: int
    path: str = ""

    @property
    def url(self) -> str:
        """Base URL a client uses (wildcard binds become loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def is_loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1") or self.host.startswith("127.")


def parse_host(value: str) -> Host:
    """Parse ``OLLAMA_HOST`` the way Ollama does.

    >>> parse_host("").url
    'http://127.0.0.1:11434'
    >>> parse_host("0.0.0.0:8080").host, parse_host("0.0.0.0:8080").port
    ('0.0.0.0', 8080)
    >>> parse_host("https://example.com").port
    443
    >>> parse_host("[::1]:9000").url
    'http://[::1]:9000'
    >>> parse_host(":7000").url
    'http://127.0.0.1:7000'
    """
    value = _clean(value) or "127.0.0.1"
    scheme, default_port = "http", DEFAULT_PORT
    if "://" in value:
        scheme, value = value.split("://", 1)
        default_port = {"http": 80, "https": 443}.get(scheme, DEFAULT_PORT)
    elif value == "ollama.com":
        scheme, default_port = "https", 443
    parts = urlsplit(f"//{value}")
    host = parts.hostname if parts.hostname is not None else ""
    if value.startswith(":"):
        host = ""
    try:
        port = parts.port or default_port
    except ValueError:  # an invalid port falls back to the default, as Ollama does
        port = default_port
    return Host(scheme=scheme, host=host, port=port, path=parts.path.rstrip("/"))


def _clean(value: str) -> str:
    return value.strip().strip("\"'").strip()


def parse_bool(value: str) -> bool:
    """Go's strconv.ParseBool, where anything unparsable counts as true (Ollama's rule)."""
    v = _clean(value).lower()
    if v in ("", "0", "f", "false"):
        return False
    return True


def parse_int(value: str) -> int:
    return int(_clean(value) or 0)


def parse_debug(value: str) -> int:
    """``OLLAMA_DEBUG``: 1/true → DEBUG, 2 → TRACE, else INFO."""
    v = _clean(value).lower()
    if v.isdigit():
        return int(v)
    return 1 if parse_bool(v) else 0


def parse_origins(value: str) -> tuple[str, ...]:
    return tuple(o.strip() for o in _clean(value).split(",") if o.strip())


def parse_path(value: str) -> Path:
    return Path(_clean(value)).expanduser()


@dataclass(frozen=True)
class Var:
    """One environment variable: its name, default text, parser, help, and the field it fills."""

    name: str
    field: str
    default: str
    parser: Callable[[str], Any]
    help: str


def _default_models() -> str:
    return str(Path.home() / ".ollama" / "models")


VARS: tuple[Var, ...] = (
    Var("OLLAMA_HOST", "host", "127.0.0.1:11434", parse_host, "IP Address for the server (default 127.0.0.1:11434)"),
    Var("OLLAMA_MODELS", "models", "", parse_path, "The path to the models directory (default ~/.ollama/models)"),
    Var("OLLAMA_KEEP_ALIVE", "keep_alive", "5m", parse_env_duration, "The duration that models stay loaded in memory (default \"5m\")"),
    Var("OLLAMA_CONTEXT_LENGTH", "context_length", "0", parse_int, "Context length to use unless otherwise specified (default: 4096)"),
    Var("OLLAMA_NUM_PARALLEL", "num_parallel", "1", parse_int, "Maximum number of parallel requests per model (default 1)"),
    Var("OLLAMA_MAX_LOADED_MODELS", "max_loaded_models", "0", parse_int, "Maximum number of loaded models (default 3 on CPU)"),
    Var("OLLAMA_MAX_QUEUE", "max_queue", "512", parse_int, "Maximum number of queued requests (default 512)"),
    Var("OLLAMA_ORIGINS", "origins", "", parse_origins, "A comma separated list of allowed origins"),
    Var("OLLAMA_DEBUG", "debug", "0", parse_debug, "Show additional debug information (e.g. OLLAMA_DEBUG=1)"),
    Var("OLLAMA_NOPRUNE", "noprune", "", parse_bool, "Do not prune model blobs on startup"),
    Var("OLLAMA_LOAD_TIMEOUT", "load_timeout", "5m", parse_env_duration, "How long to allow model loads to stall before giving up (default \"5m\")"),
    Var("HF_ENDPOINT", "hf_endpoint", "https://huggingface.co", lambda v: _clean(v).rstrip("/"), "Hugging Face Hub used for hf.co/... pulls (default https://huggingface.co)"),
    Var("HF_TOKEN", "hf_token", "", _clean, "Hugging Face access token for private or gated hf.co/... repos (sent to HF_ENDPOINT only)"),
    Var("OLLAMA_NUM_THREADS", "num_threads", "0", parse_int, "pollama: CPU threads per runner (default: all cores)"),
    Var("POLLAMA_MAX_BODY", "max_body", "33554432", parse_int, "pollama: largest request body accepted, in bytes (default 32 MiB)"),
    Var("POLLAMA_REQUEST_TIMEOUT", "request_timeout", "0", parse_env_duration, "pollama: server-side deadline for one generation; 0 = none"),
    Var("POLLAMA_SHUTDOWN_TIMEOUT", "shutdown_timeout", "10s", parse_env_duration, "pollama: on SIGTERM, how long running requests may finish before they end with an error (default \"10s\")"),
)


@dataclass(frozen=True)
class Settings:
    """Everything configurable, read once at start-up."""

    host: Host = field(default_factory=lambda: parse_host(""))
    models: Path = field(default_factory=lambda: Path(_default_models()))
    keep_alive: float = 300.0  # seconds; negative = forever
    context_length: int = 0  # 0 = automatic (4096 on CPU)
    num_parallel: int = 1
    max_loaded_models: int = 0  # 0 = 3 on CPU
    max_queue: int = 512
    origins: tuple[str, ...] = ()
    debug: int = 0
    noprune: bool = False
    load_timeout: float = 300.0
    num_threads: int = 0
    hf_endpoint: str = "https://huggingface.co"
    hf_token: str = ""
    max_body: int = 32 * 1024 * 1024
    request_timeout: float = 0.0
    shutdown_timeout: float = 10.0

    @property
    def default_num_ctx(self) -> int:
        return self.context_length if self.context_length > 0 else 4096

    @property
    def loaded_model_limit(self) -> int:
        return self.max_loaded_models if self.max_loaded_models > 0 else 3

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every declared variable from ``environ`` (default: the process environment)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for var in VARS:
        raw = env.get(var.name)
        if raw is None or _clean(raw) == "":
            if var.name == "OLLAMA_MODELS":
                values[var.field] = Path(_default_models())
            continue
        values[var.field] = var.parser(raw)
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known})


def help_table() -> str:
    """The ``Environment Variables:`` block that ``pollama serve --help`` prints."""
    lines = ["Environment Variables:"]
    for var in VARS:
        lines.append(f"      {var.name:<27} {var.help}")
    return "\n".join(lines)
