"""Constrained decoding: ``format``, tool definitions and ``tool_choice`` (reference §3.1, §3.2).

llama.cpp turns a ``json_schema`` into a grammar with llguidance. When llguidance cannot compile
the schema, llama.cpp logs the error and generates **unconstrained** text. pollama compiles every
schema up front with the same library and answers a schema it cannot enforce with a 400 that
quotes the compiler (which names the offending keyword, pointer or pattern), never with an
unconstrained answer.

Whitespace is fixed (llguidance's ``whitespace_flexible: false``): with flexible whitespace a small
model can spend its whole ``num_predict`` on newlines inside the object and never close it.

>>> runner_schema("json")
{'x-guidance': {'whitespace_flexible': False}}
>>> runner_schema({"type": "object", "not": {"type": "string"}})
Traceback (most recent call last):
...
pollama.errors.InvalidRequest: invalid JSON schema in format: Unimplemented keys: ["not"]
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from pollama.errors import InvalidRequest

THINK_LEVELS = ("high", "medium", "low", "max")


@lru_cache(maxsize=256)
def _compile_error(schema_json: str) -> str | None:
    """llguidance's complaint about a schema, or None when it compiles."""
    from llguidance import LLMatcher

    grammar = "%llguidance {}\nstart: %json " + schema_json
    err = LLMatcher.validate_grammar(grammar)
    if not err:
        return None
    text = str(err)
    marker = "failed to compile JSON schema: "
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip()[:1].isdigit() and "%llguidance" not in ln]
    return " ".join(ln.strip() for ln in lines if ln.strip() != "^")[:500] or "cannot be compiled"


def check_schema(schema: Any, where: str) -> dict[str, Any]:
    """Return ``schema`` if the engine can enforce it, else raise InvalidRequest naming ``where``."""
    if not isinstance(schema, dict):
        raise InvalidRequest(f"invalid JSON schema in {where}: expected an object")
    try:
        text = json.dumps(schema, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidRequest(f"invalid JSON schema in {where}: {e}") from None
    err = _compile_error(text)
    if err:
        raise InvalidRequest(f"invalid JSON schema in {where}: {err}")
    return schema


def normalize_format(fmt: Any) -> Any:
    """``format``: absent, ``""``, ``"json"`` or a JSON Schema object (reference §3.1)."""
    if fmt is None or fmt == "" or fmt == "null":
        return None
    if fmt == "json" or isinstance(fmt, dict):
        return fmt
    raise InvalidRequest(f'invalid format: {fmt!r}; expected "json" or a valid JSON Schema object')


def runner_schema(fmt: Any) -> dict[str, Any] | None:
    """The ``json_schema`` to send to the runner for a request's ``format`` (validated)."""
    fmt = normalize_format(fmt)
    if fmt is None:
        return None
    if fmt == "json":
        return {"x-guidance": dict(COMPACT)}
    return _compact(check_schema(fmt, "format"))


COMPACT = {"whitespace_flexible": False}


def _compact(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with llguidance's fixed-whitespace option (a caller's own ``x-guidance`` wins)."""
    if "x-guidance" in schema:
        return schema
    return {"x-guidance": dict(COMPACT), **schema}


# ---- tools -------------------------------------------------------------------------------------


def check_tools(tools: Any) -> list[dict[str, Any]]:
    """Validate ``tools``; return them. Each needs ``function.name``; parameters must compile."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise InvalidRequest("invalid tools: expected an array")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidRequest(f"invalid tool at index {i}: expected an object")
        kind = tool.get("type", "function")
        if kind != "function":
            raise InvalidRequest(f'invalid tool at index {i}: unsupported type "{kind}"')
        fn = tool.get("function")
        if not isinstance(fn, dict):
            raise InvalidRequest(f"invalid tool at index {i}: missing function")
        name = fn.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InvalidRequest(f"invalid tool at index {i}: function.name must be a non-empty string")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise InvalidRequest(f"invalid tool at index {i}: function.parameters must be an object")
    return tools


def tool_names(tools: list[dict[str, Any]]) -> list[str]:
    return [str(t["function"]["name"]) for t in tools]


def _call_schema(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool["function"]
    params = fn.get("parameters") or {"type": "object"}
    if not params.get("properties") and params.get("type", "object") == "object":
        params = {"type": "object", "properties": {}}
    return {
        "type": "object",
        "properties": {"name": {"const": fn["name"]}, "arguments": params},
        "required": ["name", "arguments"],
    }


def tool_choice_schema(tools: list[dict[str, Any]], choice: Any) -> dict[str, Any] | None:
    """A schema that forces a call for ``tool_choice`` ``"required"`` or a named function.

    ``None``/``"auto"`` leave the model free; ``"none"`` is handled by the caller (tools dropped).
    """
    if choice in (None, "auto", "none"):
        return None
    if choice == "required":
        if not tools:
            raise InvalidRequest('tool_choice "required" needs at least one tool')
        options = [_call_schema(t) for t in tools]
        schema = options[0] if len(options) == 1 else {"anyOf": options}
    elif isinstance(choice, dict):
        fn = choice.get("function") if isinstance(choice.get("function"), dict) else choice
        name = fn.get("name") if isinstance(fn, dict) else None
        match = [t for t in tools if t["function"]["name"] == name]
        if not match:
            raise InvalidRequest(f'invalid tool_choice: no tool named "{name}"')
        schema = _call_schema(match[0])
    else:
        raise InvalidRequest(f'invalid tool_choice: {json.dumps(choice)} (must be "none", "auto", "required" or a function)')
    return _compact(check_schema(schema, "tools"))
