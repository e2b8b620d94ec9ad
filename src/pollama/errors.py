"""Domain exceptions.

Each error carries structured fields and a ``message`` that is the exact text Ollama puts on the
wire (clients match on it). Nothing here knows HTTP: ``server/errors.py`` holds the one table that
maps these classes to status codes.
"""

from __future__ import annotations


class PollamaError(Exception):
    """Base class. ``message`` is what a client sees."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(PollamaError):
    """The request is malformed or asks for something impossible (HTTP 400)."""


class InvalidModelName(InvalidRequest):
    """A model name that does not parse (reference §6)."""

    def __init__(self, name: str, message: str = "invalid model name") -> None:
        super().__init__(message)
        self.name = name


class UnsupportedCapability(InvalidRequest):
    """The model lacks a capability the request needs (tools, thinking, insert, images …)."""


class ModelNotFound(PollamaError):
    """No manifest for the name (HTTP 404). ``message`` follows the endpoint's own wording."""

    def __init__(self, name: str, message: str | None = None) -> None:
        super().__init__(message or f"model '{name}' not found")
        self.name = name


class BlobNotFound(PollamaError):
    """A blob the manifest or the request names is not in the store (HTTP 404)."""

    def __init__(self, digest: str) -> None:
        super().__init__(f'blob "{digest}" not found')
        self.digest = digest


class DigestMismatch(InvalidRequest):
    """Bytes whose SHA-256 differs from the digest they were announced with."""

    def __init__(self, expected: str, got: str, message: str | None = None) -> None:
        super().__init__(message or f'digest mismatch, expected "{expected}", got "{got}"')
        self.expected = expected
        self.got = got


class InvalidOption(PollamaError):
    """An option of the wrong type. Ollama answers these with 500, and so do we."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class ContextOverflow(InvalidRequest):
    """The prompt does not fit the context and truncation is off."""

    def __init__(self, prompt_tokens: int, num_ctx: int) -> None:
        super().__init__(
            "the prompt is longer than the context length currently available to the model; "
            "shorten the prompt, adjust the context length in settings, or use a model with a "
            f"longer context length (prompt: {prompt_tokens} tokens, context: {num_ctx} tokens)"
        )
        self.prompt_tokens = prompt_tokens
        self.num_ctx = num_ctx


class ServerBusy(PollamaError):
    """The pending queue is full (HTTP 503)."""

    def __init__(self) -> None:
        super().__init__("server busy, please try again.  maximum pending requests exceeded")


class ServerShuttingDown(PollamaError):
    """The server is shutting down: no new requests, and in-flight ones past the grace period end (HTTP 503)."""

    def __init__(self) -> None:
        super().__init__("server is shutting down")


class RequestTimeout(PollamaError):
    """The server-side deadline (``POLLAMA_REQUEST_TIMEOUT``) passed before the request finished (HTTP 504)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"request timed out after {seconds:g}s (POLLAMA_REQUEST_TIMEOUT)")
        self.seconds = seconds


class RequestCanceled(PollamaError):
    """The client went away while the request waited (HTTP 499)."""

    def __init__(self) -> None:
        super().__init__("request canceled")


class InsufficientMemory(PollamaError):
    """A model cannot be loaded even with everything else evicted (HTTP 500)."""

    def __init__(self, required: int, available: int) -> None:
        gib = 1024**3
        super().__init__(
            f"model requires more system memory ({required / gib:.1f} GiB) "
            f"than is available ({available / gib:.1f} GiB)"
        )
        self.required = required
        self.available = available


class RunnerError(PollamaError):
    """The runner process failed: it crashed, exited, or answered with an error (HTTP 500)."""


class RegistryError(PollamaError):
    """A registry answered with an error or something that is not a valid reply (HTTP 500)."""


class GGUFError(InvalidRequest):
    """A file that is not a valid GGUF, or whose metadata is out of bounds."""


class ModelfileError(InvalidRequest):
    """A Modelfile that does not parse; the message names the line."""
