"""Render a GGUF's Jinja chat template (``tokenizer.chat_template``) safely.

Templates come from downloaded files, so they run in jinja2's immutable sandbox: no attribute
access to Python internals, no mutation of the data passed in, ``range`` bounded. Output is capped
so a template cannot produce gigabytes. HF conventions: ``messages``, ``tools``,
``add_generation_prompt``, ``bos_token``, ``eos_token``, ``raise_exception``, ``strftime_now``.
"""

from __future__ import annotations

import datetime
import json
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from pollama.errors import InvalidRequest

MAX_OUTPUT = 16 << 20


class TemplateError(InvalidRequest):
    pass


def _raise(message: str) -> None:
    raise TemplateError(f"chat template error: {message}")


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False, **_: Any) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)


class _StrictSandbox(ImmutableSandboxedEnvironment):
    """Unsafe attribute access is an error, not a silent empty value."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise jinja2.exceptions.SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} is not allowed")


@lru_cache(maxsize=32)
def _compile(source: str) -> jinja2.Template:
    env = _StrictSandbox(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.ChainableUndefined)
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"chat template error: {e.message} (line {e.lineno})") from None


def render_jinja(
    source: str,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = True,
    bos_token: str = "",
    eos_token: str = "",
    extra: dict[str, Any] | None = None,
) -> str:
    template = _compile(source)
    ctx: dict[str, Any] = {
        "messages": messages, "add_generation_prompt": add_generation_prompt,
        "bos_token": bos_token, "eos_token": eos_token, **(extra or {}),
    }
    if tools:
        ctx["tools"] = tools
    out: list[str] = []
    size = 0
    try:
        for piece in template.generate(**ctx):
            size += len(piece)
            if size > MAX_OUTPUT:
                raise TemplateError("chat template error: rendered prompt exceeds 16 MiB")
            out.append(piece)
    except jinja2.exceptions.SecurityError as e:
        raise TemplateError(f"chat template error: {e}") from None
    except TemplateError:
        raise
    except Exception as e:  # a broken template is the model's fault, reported to the client
        raise TemplateError(f"chat template error: {type(e).__name__}: {e}") from None
    return "".join(out)
