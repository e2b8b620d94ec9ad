"""Pure translation between Anthropic's Messages API and Ollama's native chat (reference §2.17).

:func:`messages_request_to_native` builds the native ``/api/chat`` body;
:func:`native_chat_to_message` builds the non-streamed ``message``;
:class:`MessagesStreamTranslator` turns native chunks into the SSE event sequence (frame each
event with :func:`pollama.openai.wire.sse_event`); :func:`anthropic_error` builds the error body.
Bad input raises :class:`~pollama.errors.InvalidRequest` with Ollama's message.

Notes for the route: thinking is *relaxed* on this endpoint (a model that cannot think must have
``think`` dropped silently, not answered with 400). Deviations from Ollama, all additive:
``tool_choice`` is mapped onto the native ``tool_choice`` extension (``any`` → ``"required"``,
``tool`` → a named function, ``none`` drops the tools); a ``ping`` event follows
``message_start``; ``stop_sequence: null`` is present as in Anthropic's own API; built-in
``web_search_*`` tools are dropped (no cloud search locally).
"""

from __future__ import annotations

import json
from typing import Any

from pollama.anthropic.schema import MessageParam, MessagesRequest
from pollama.errors import InvalidRequest
from pollama.openai.wire import b64_is_valid, dumps

__all__ = [
    "MessagesStreamTranslator",
    "anthropic_error",
    "anthropic_error_for_status",
    "anthropic_error_type",
    "estimate_input_tokens",
    "messages_request_to_native",
    "native_chat_to_message",
]

JSON = dict[str, Any]

# --- errors ---------------------------------------------------------------------------------

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    """Anthropic error ``type`` for an HTTP status (anything unlisted is ``api_error``)."""
    return _ERROR_TYPES.get(status, "api_error")


def anthropic_error(
    message: str,
    type: str = "invalid_request_error",  # noqa: A002 - the wire field is called "type"
    request_id: str | None = None,
) -> JSON:
    """``{"type": "error", "error": {"type", "message"}}`` plus ``request_id`` when given."""
    body: JSON = {"type": "error", "error": {"type": type, "message": message}}
    if request_id:
        body["request_id"] = request_id
    return body


def anthropic_error_for_status(status: int, message: str, request_id: str | None = None) -> JSON:
    """The error body for a route answering with ``status``."""
    return anthropic_error(message, anthropic_error_type(status), request_id)


# --- request --------------------------------------------------------------------------------


def messages_request_to_native(req: MessagesRequest) -> JSON:
    """A Messages request → the native ``/api/chat`` body.

    ``max_tokens`` is always ``num_predict``; no OpenAI-style sampling defaults are added.
    """
    if not req.model:
        raise InvalidRequest("model is required")
    if req.max_tokens <= 0:
        raise InvalidRequest("max_tokens is required and must be positive")
    if not req.messages:
        raise InvalidRequest("messages is required")
    messages = _system_messages(req.system)
    for msg in req.messages:
        messages.extend(_message_to_native(msg))
    options: JSON = {"num_predict": req.max_tokens}
    if req.temperature is not None:
        options["temperature"] = req.temperature
    if req.top_p is not None:
        options["top_p"] = req.top_p
    if req.top_k is not None:
        options["top_k"] = req.top_k
    if req.stop_sequences:
        options["stop"] = req.stop_sequences
    body: JSON = {
        "model": req.model,
        "messages": messages,
        "stream": req.stream,
        "options": options,
    }
    _apply_tools(body, req.tools or [], req.tool_choice)
    think = _think(req)
    if think is not None:
        body["think"] = think
    return body


def _system_messages(system: str | list[JSON] | None) -> list[JSON]:
    """``system`` (string or text blocks, concatenated) → a leading system message, if any."""
    if isinstance(system, list):
        system = "".join(
            b["text"] for b in system if b.get("type") == "text" and isinstance(b.get("text"), str)
        )
    return [{"role": "system", "content": system}] if system else []


def _think(req: MessagesRequest) -> bool | str | None:
    """``thinking.type`` → bool; else ``output_config.effort`` → level (``xhigh`` → high)."""
    if req.thinking is not None and req.thinking.type in ("enabled", "disabled"):
        return req.thinking.type == "enabled"
    if req.output_config is not None:
        effort = req.output_config.effort.strip().lower()
        effort = "high" if effort == "xhigh" else effort
        if effort in ("low", "medium", "high", "max"):
            return effort
    return None


def _apply_tools(body: JSON, tools: list[JSON], choice: JSON | None) -> None:
    """``tools`` with ``input_schema`` → native tools, plus the ``tool_choice`` extension."""
    choice = choice or {}
    kind = choice.get("type")
    native = [
        _tool_to_native(t) for t in tools if not str(t.get("type", "")).startswith("web_search")
    ]
    if not native or kind == "none":
        return
    body["tools"] = native
    if kind == "auto":
        body["tool_choice"] = "auto"
    elif kind == "any":
        body["tool_choice"] = "required"
    elif kind == "tool" and choice.get("name"):
        body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}


def _tool_to_native(tool: JSON) -> JSON:
    function: JSON = {"name": tool.get("name", "")}
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("input_schema") is not None:
        function["parameters"] = tool["input_schema"]
    return {"type": "function", "function": function}


def _message_to_native(msg: MessageParam) -> list[JSON]:
    """One turn → native messages. In a user turn, tool results come before its text."""
    role = msg.role.lower()
    blocks: list[JSON] = (
        [{"type": "text", "text": msg.content}] if isinstance(msg.content, str) else msg.content
    )
    text: list[str] = []
    images: list[str] = []
    calls: list[JSON] = []
    thinking = ""
    results: list[JSON] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            text.append(block["text"])
        elif kind == "image":
            images.append(_image_data(block.get("source")))
        elif kind in ("tool_use", "server_tool_use"):
            calls.append(_tool_use_to_call(block, len(calls), strict=kind == "tool_use"))
        elif kind in ("tool_result", "web_search_tool_result"):
            results.append(_tool_result_to_native(block))
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking = block["thinking"]
    main: list[JSON] = []
    if text or images or calls or thinking:
        message: JSON = {"role": role, "content": "".join(text)}
        if thinking:
            message["thinking"] = thinking
        if images:
            message["images"] = images
        if calls:
            message["tool_calls"] = calls
        main.append(message)
    return results + main if role == "user" else main + results


def _image_data(source: Any) -> str:
    """A base64 image source → its data; other source types are refused as Ollama does."""
    if not isinstance(source, dict):
        raise InvalidRequest("invalid image source")
    if source.get("type") != "base64":
        raise InvalidRequest(
            f"invalid image source type: {source.get('type', '')}. "
            "Only base64 images are supported."
        )
    data = source.get("data")
    if not isinstance(data, str) or not b64_is_valid(data):
        raise InvalidRequest("invalid base64 image data")
    return data


def _tool_use_to_call(block: JSON, index: int, *, strict: bool) -> JSON:
    if strict and not block.get("id"):
        raise InvalidRequest("tool_use block missing required 'id' field")
    if strict and not block.get("name"):
        raise InvalidRequest("tool_use block missing required 'name' field")
    arguments = block.get("input")
    return {
        "id": block.get("id", ""),
        "function": {
            "index": index,
            "name": block.get("name", ""),
            "arguments": arguments if isinstance(arguments, dict) else {},
        },
    }


def _tool_result_to_native(block: JSON) -> JSON:
    """``tool_result`` (string or text/image blocks) → a native ``tool`` message."""
    content = block.get("content")
    text = ""
    images: list[str] = []
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts: list[str] = []
        for item in content:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "text" and isinstance(item.get("text"), str):
                parts.append(item["text"])
            elif item.get("type") == "image":
                images.append(_image_data(item.get("source")))
            elif item.get("type") == "web_search_result":
                parts.append(f"- {item.get('title', '')}: {item.get('url', '')}\n")
        text = "".join(parts)
    elif content is not None:
        text = dumps(content)
    message: JSON = {"role": "tool", "content": text}
    if images:
        message["images"] = images
    message["tool_call_id"] = block.get("tool_use_id", "")
    return message


def estimate_input_tokens(req: MessagesRequest) -> int:
    """A rough input-token count (characters / 4) for ``message_start`` before the real one."""
    total = len(json.dumps(req.system)) if req.system else 0
    for msg in req.messages:
        total += len(msg.role) + len(
            msg.content if isinstance(msg.content, str) else dumps(msg.content)
        )
    for tool in req.tools or []:
        total += len(dumps(tool))
    tokens = total // 4
    return max(tokens, 1) if (req.messages or req.system) else tokens


# --- response -------------------------------------------------------------------------------


def _stop_reason(done_reason: str | None, tool_calls: bool) -> str | None:
    """``tool_use`` after calls; else stop → end_turn, length → max_tokens, else stop_sequence."""
    if tool_calls:
        return "tool_use"
    if not done_reason:
        return None
    return {"stop": "end_turn", "length": "max_tokens"}.get(done_reason, "stop_sequence")


def _usage(native: JSON) -> JSON:
    return {
        "input_tokens": int(native.get("prompt_eval_count") or 0),
        "output_tokens": int(native.get("eval_count") or 0),
    }


def _tool_use_block(call: JSON, fallback_id: str, with_input: bool) -> JSON:
    function = call.get("function") or {}
    return {
        "type": "tool_use",
        "id": call.get("id") or fallback_id,
        "name": function.get("name", ""),
        "input": (function.get("arguments") or {}) if with_input else {},
    }


def _fallback_tool_id(message_id: str, index: int) -> str:
    return f"toolu_{message_id.removeprefix('msg_')}_{index}"


def native_chat_to_message(native_final: JSON, model: str, message_id: str) -> JSON:
    """A non-streamed native chat response → an Anthropic ``message``.

    Content order: a ``thinking`` block, then ``text``, then the ``tool_use`` blocks.
    """
    msg = native_final.get("message") or {}
    content: list[JSON] = []
    if msg.get("thinking"):
        content.append({"type": "thinking", "thinking": msg["thinking"]})
    if msg.get("content"):
        content.append({"type": "text", "text": msg["content"]})
    calls = msg.get("tool_calls") or []
    content.extend(
        _tool_use_block(call, _fallback_tool_id(message_id, i), True)
        for i, call in enumerate(calls)
    )
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(native_final.get("done_reason"), bool(calls)),
        "stop_sequence": None,
        "usage": _usage(native_final),
    }


class MessagesStreamTranslator:
    """Native ``/api/chat`` stream chunks → Anthropic streaming events.

    ``message_start`` (usage.input_tokens = the native count, or ``estimated_input_tokens`` when
    the first chunk has none), ``ping``, then per block ``content_block_start`` /
    ``content_block_delta`` (``thinking_delta``, ``text_delta``, or one ``input_json_delta`` with
    the whole arguments JSON) / ``content_block_stop`` with increasing ``index``, then
    ``message_delta`` (stop_reason, usage) and ``message_stop``. Each event's ``type`` is also its
    SSE event name. A native ``{"error": ...}`` becomes an ``error`` event and ends the stream.
    """

    def __init__(self, model: str, message_id: str, estimated_input_tokens: int = 0) -> None:
        self.model = model
        self.message_id = message_id
        self.estimated_input_tokens = estimated_input_tokens
        self._started = False
        self._finished = False
        self._index = 0
        self._open: str | None = None  # "thinking" or "text" while such a block is open
        self._tool_calls = 0

    @property
    def finished(self) -> bool:
        """True once ``message_stop`` (or an error event) has been emitted."""
        return self._finished

    def feed(self, chunk: JSON) -> list[JSON]:
        """Translate one native chunk into zero or more events."""
        if self._finished:
            return []
        if "error" in chunk:
            self._finished = True
            return [anthropic_error(str(chunk["error"]), "api_error")]
        events: list[JSON] = []
        if not self._started:
            self._started = True
            events += [self._message_start(chunk), {"type": "ping"}]
        msg = chunk.get("message") or {}
        if msg.get("thinking"):
            events += self._block_delta(
                "thinking", {"type": "thinking_delta", "thinking": msg["thinking"]}
            )
        if msg.get("content"):
            events += self._block_delta("text", {"type": "text_delta", "text": msg["content"]})
        for call in msg.get("tool_calls") or []:
            events += self._tool_use(call)
        if chunk.get("done"):
            events += self._close_block()
            events += self._message_end(chunk)
        return events

    def _message_start(self, chunk: JSON) -> JSON:
        input_tokens = int(chunk.get("prompt_eval_count") or 0) or self.estimated_input_tokens
        return {
            "type": "message_start",
            "message": {
                "id": self.message_id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": 0},
            },
        }

    def _block_delta(self, kind: str, delta: JSON) -> list[JSON]:
        """A delta for a thinking or text block, opening it (and closing another) as needed."""
        events: list[JSON] = []
        if self._open != kind:
            events += self._close_block()
            self._open = kind
            empty: JSON = {"type": kind, kind: ""}
            events.append(
                {"type": "content_block_start", "index": self._index, "content_block": empty}
            )
        events.append({"type": "content_block_delta", "index": self._index, "delta": delta})
        return events

    def _close_block(self) -> list[JSON]:
        if self._open is None:
            return []
        event = {"type": "content_block_stop", "index": self._index}
        self._open = None
        self._index += 1
        return [event]

    def _tool_use(self, call: JSON) -> list[JSON]:
        """One complete tool call → start (empty input), one ``input_json_delta``, stop."""
        events = self._close_block()
        block = _tool_use_block(call, _fallback_tool_id(self.message_id, self._tool_calls), False)
        arguments = dumps((call.get("function") or {}).get("arguments") or {})
        events += [
            {"type": "content_block_start", "index": self._index, "content_block": block},
            {
                "type": "content_block_delta",
                "index": self._index,
                "delta": {"type": "input_json_delta", "partial_json": arguments},
            },
            {"type": "content_block_stop", "index": self._index},
        ]
        self._index += 1
        self._tool_calls += 1
        return events

    def _message_end(self, final: JSON) -> list[JSON]:
        self._finished = True
        return [
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": _stop_reason(final.get("done_reason"), self._tool_calls > 0),
                    "stop_sequence": None,
                },
                "usage": _usage(final),
            },
            {"type": "message_stop"},
        ]
