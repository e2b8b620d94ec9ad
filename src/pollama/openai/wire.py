"""Small pure helpers shared by the OpenAI and Anthropic translations.

SSE framing, compact JSON, RFC 3339 → unix seconds, data-URL and base64 checks, and Go-style type
names for error messages that Ollama builds with ``%T``.

>>> sse_encode({"a": 1})
b'data: {"a":1}\\n\\n'
>>> sse_encode("[DONE]")
b'data: [DONE]\\n\\n'
>>> sse_event({"type": "ping"})
b'event: ping\\ndata: {"type":"ping"}\\n\\n'
>>> unix_seconds("2023-08-04T19:22:45.499127123Z")
1691176965
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any

from pollama.errors import InvalidRequest

DONE = "[DONE]"
"""The sentinel payload that ends an OpenAI chat or completion stream."""

_FRACTION = re.compile(r"(\.\d{6})\d+")


def dumps(obj: Any) -> str:
    """Compact JSON (no spaces, UTF-8 kept) as Go's ``json.Marshal`` writes it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def sse_encode(obj: dict[str, Any] | str) -> bytes:
    """Frame one OpenAI SSE event: ``data: <compact json>\\n\\n`` (a ``str`` is sent verbatim)."""
    payload = obj if isinstance(obj, str) else dumps(obj)
    return f"data: {payload}\n\n".encode()


def sse_event(obj: dict[str, Any]) -> bytes:
    """Frame a named SSE event ``event: <obj.type>\\ndata: <json>\\n\\n`` (Anthropic, Responses)."""
    return f"event: {obj['type']}\ndata: {dumps(obj)}\n\n".encode()


def unix_seconds(timestamp: str | None, default: int = 0) -> int:
    """Unix seconds of an RFC 3339 timestamp (nanosecond fractions allowed); else ``default``."""
    if not timestamp:
        return default
    text = _FRACTION.sub(r"\1", timestamp.strip()).replace("Z", "+00:00")
    try:
        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        return default


def b64_is_valid(data: str) -> bool:
    """True when ``data`` is standard, padded base64."""
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


_IMAGE_PREFIXES = tuple(f"data:image/{t};base64," for t in ("jpeg", "jpg", "png", "webp"))


def image_from_data_url(url: str) -> str:
    """Return the base64 payload of an image data URL, as native ``images`` entries carry it.

    Raises :class:`InvalidRequest` with Ollama's messages for http(s) URLs and anything else.
    """
    if url.startswith(("http://", "https://")):
        raise InvalidRequest(
            "image URLs are not currently supported, please use base64 encoded data instead"
        )
    for prefix in ("data:;base64,", *_IMAGE_PREFIXES):
        if url.startswith(prefix):
            data = url[len(prefix) :]
            if b64_is_valid(data):
                return data
            break
    raise InvalidRequest("invalid image input")


def go_type_name(value: Any) -> str:
    """The name Go's ``%T`` prints for a decoded JSON value (used in Ollama's error texts)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


def arguments_json(arguments: Any) -> str:
    """Tool-call arguments object → the JSON string OpenAI-style APIs carry."""
    return dumps(arguments if arguments is not None else {})
