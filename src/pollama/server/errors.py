"""The one table that maps domain errors to HTTP statuses, and the native error body."""

from __future__ import annotations

from pollama import errors as e


class BodyTooLarge(e.InvalidRequest):
    """A request body over the server's size limit (HTTP 413)."""


STATUS: list[tuple[type[BaseException], int]] = [
    (BodyTooLarge, 413),
    (e.ModelNotFound, 404),
    (e.BlobNotFound, 404),
    (e.ServerBusy, 503),
    (e.ServerShuttingDown, 503),
    (e.RequestTimeout, 504),
    (e.RequestCanceled, 499),
    (e.InvalidOption, 400),  # Ollama answers 500; a client's type error is a 400
    (e.InvalidRequest, 400),
    (e.InsufficientMemory, 500),
    (e.RunnerError, 500),
    (e.RegistryError, 500),
    (e.PollamaError, 500),
]


def status_for(exc: BaseException) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def message_for(exc: BaseException) -> str:
    if isinstance(exc, e.PollamaError):
        return exc.message
    return f"internal error: {type(exc).__name__}: {exc}"
