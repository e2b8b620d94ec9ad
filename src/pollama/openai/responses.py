"""Pure translation for the stateless OpenAI Responses API, ``POST /v1/responses`` (§2.16).

A :class:`~pollama.openai.schema.ResponsesRequest` becomes a native ``/api/chat`` body; a native
final chat response becomes a ``response`` object; :class:`ResponsesStreamTranslator` turns native
stream chunks into the Responses event sequence (``response.created`` … ``response.completed``),
each a dict whose ``type`` is also its SSE event name (frame with
:func:`pollama.openai.wire.sse_event`).

Item ids are derived from the ids the caller passes (``rs_<response id>``,
``fc_<response id>_<n>``) so the output is deterministic. Deviations from Ollama: if text was
streamed before a tool call, its message item is closed before the function-call items (Ollama
leaves it open); ``text.format`` ``json_object`` maps to ``format: "json"``; tool results get a
``tool_name`` looked up from the matching ``function_call``; ``tool_choice`` is passed on like the
chat-completions extension; non-function tool types (``web_search`` …) are dropped.
"""

from __future__ import annotations

import json
from typing import Any

from pollama.errors import InvalidRequest
from pollama.openai.schema import ResponsesRequest
from pollama.openai.translate import (
    native_tool_calls_to_openai,
    think_from_effort,
    tool_choice_to_native,
)
from pollama.openai.wire import image_from_data_url, unix_seconds

__all__ = [
    "ResponsesStreamTranslator",
    "native_chat_to_response",
    "responses_request_to_native",
]

JSON = dict[str, Any]


# --- request --------------------------------------------------------------------------------


def responses_request_to_native(req: ResponsesRequest) -> JSON:
    """A Responses request → the native ``/api/chat`` body.

    ``instructions`` becomes a leading system message; ``temperature`` defaults to 1.0 while
    ``top_p`` is only set when given (as in Ollama); ``max_output_tokens`` → ``num_predict``.
    """
    messages: list[JSON] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    if isinstance(req.input, str):
        if req.input:
            messages.append({"role": "user", "content": req.input})
    else:
        messages.extend(_items_to_messages(req.input))
    options: JSON = {"temperature": req.temperature if req.temperature is not None else 1.0}
    if req.top_p is not None:
        options["top_p"] = req.top_p
    if req.max_output_tokens is not None:
        options["num_predict"] = req.max_output_tokens
    body: JSON = {
        "model": req.model,
        "messages": messages,
        "stream": req.stream,
        "options": options,
    }
    fmt = _format_from_text(req.text.format if req.text else None)
    if fmt is not None:
        body["format"] = fmt
    tools = [tool for t in req.tools or [] for tool in _tool_to_native(t)]
    choice = tool_choice_to_native(req.tool_choice)
    if tools and choice != "none":
        body["tools"] = tools
        if choice is not None:
            body["tool_choice"] = choice
    think = think_from_effort(req.reasoning.effort if req.reasoning else None)
    if think is not None:
        body["think"] = think
    return body


def _format_from_text(fmt: JSON | None) -> Any:
    """``text.format``: ``json_schema`` → its schema, ``json_object`` → ``"json"``, else None."""
    if not fmt:
        return None
    if fmt.get("type") == "json_schema":
        return fmt.get("schema")
    if fmt.get("type") == "json_object":
        return "json"
    return None


def _tool_to_native(tool: JSON, prefix: str = "") -> list[JSON]:
    """A flat Responses tool → native tools; ``namespace`` members are flattened to ``ns.name``."""
    kind = tool.get("type")
    if kind == "namespace":
        name = tool.get("name") or ""
        inner = f"{prefix}{name}." if name else prefix
        return [t for member in tool.get("tools") or [] for t in _tool_to_native(member, inner)]
    if kind != "function":
        return []
    function: JSON = {"name": prefix + str(tool.get("name", ""))}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    if tool.get("parameters") is not None:
        function["parameters"] = tool["parameters"]
    return [{"type": "function", "function": function}]


def _items_to_messages(items: list[JSON]) -> list[JSON]:
    """Responses input items → native messages.

    ``reasoning`` items attach to the next assistant message; ``function_call`` items join the
    preceding assistant message's ``tool_calls``; an assistant message replayed between a call
    and its output is merged into the call's message so the result follows the call.
    """
    messages: list[JSON] = []
    pending_thinking = ""
    call_names: dict[str, str] = {}
    for position, item in enumerate(items):
        kind = item.get("type") or ("message" if item.get("role") else "")
        if kind == "reasoning":
            pending_thinking = item.get("encrypted_content") or _summary_text(item)
        elif kind == "message":
            msg = _input_message(item)
            if msg["role"] == "assistant" and pending_thinking:
                msg["thinking"], pending_thinking = pending_thinking, ""
            following = items[position + 1] if position + 1 < len(items) else {}
            if not _merge_replayed_assistant(messages, msg, following):
                messages.append(msg)
        elif kind == "function_call":
            call = _function_call(item, messages)
            call_names[str(item.get("call_id", ""))] = call["function"]["name"]
            if pending_thinking:
                messages[-1]["thinking"], pending_thinking = pending_thinking, ""
        elif kind == "function_call_output":
            messages.append(_function_call_output(item, call_names))
        elif kind == "web_search_call":
            continue
        elif not kind:
            raise InvalidRequest("input item missing required 'type' field")
        else:
            raise InvalidRequest(f"unknown input item type: {json.dumps(kind)}")
    if pending_thinking:
        messages.append({"role": "assistant", "content": "", "thinking": pending_thinking})
    return messages


def _summary_text(item: JSON) -> str:
    return "".join(s.get("text", "") for s in item.get("summary") or [] if isinstance(s, dict))


def _input_message(item: JSON) -> JSON:
    role = str(item.get("role", "user")).lower()
    if role == "developer":
        role = "system"
    text, images = _content_to_native(item.get("content"))
    msg: JSON = {"role": role, "content": text}
    if images:
        msg["images"] = images
    return msg


def _content_to_native(content: Any) -> tuple[str, list[str]]:
    """Message content (string or parts) → (concatenated text, base64 images)."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise InvalidRequest("content must be a string or array")
    text: list[str] = []
    images: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            text.append(str(part.get("text", "")))
        elif kind == "input_image":
            if part.get("image_url"):
                images.append(image_from_data_url(str(part["image_url"])))
        elif kind == "input_file":
            raise InvalidRequest("file inputs are not currently supported")
        else:
            raise InvalidRequest(f"unknown content type: {kind}")
    return "".join(text), images


def _merge_replayed_assistant(messages: list[JSON], msg: JSON, following: JSON) -> bool:
    """Fold an assistant message into the previous one if it sits between a call and its output."""
    if msg["role"] != "assistant" or following.get("type") != "function_call_output":
        return False
    last = messages[-1] if messages else {}
    call_ids = {call.get("id") for call in last.get("tool_calls") or []}
    if last.get("role") != "assistant" or following.get("call_id") not in call_ids:
        return False
    if last["content"] and msg["content"]:
        last["content"] += "\n"
    last["content"] += msg["content"]
    if msg.get("images"):
        last["images"] = [*last.get("images", []), *msg["images"]]
    if msg.get("thinking"):
        last["thinking"] = msg["thinking"]
    return True


def _function_call(item: JSON, messages: list[JSON]) -> JSON:
    """Append a ``function_call`` item to the trailing assistant message (or a new one)."""
    raw = item.get("arguments") or ""
    try:
        arguments = json.loads(raw) if raw.strip() else {}
    except (AttributeError, ValueError):
        arguments = None
    if not isinstance(arguments, dict):
        raise InvalidRequest("failed to parse function call arguments")
    if not messages or messages[-1]["role"] != "assistant":
        messages.append({"role": "assistant", "content": ""})
    calls = messages[-1].setdefault("tool_calls", [])
    call: JSON = {
        "id": str(item.get("call_id", "")),
        "function": {
            "index": len(calls),
            "name": str(item.get("name", "")),
            "arguments": arguments,
        },
    }
    calls.append(call)
    return call


def _function_call_output(item: JSON, call_names: dict[str, str]) -> JSON:
    """A ``function_call_output`` item → a native ``tool`` message."""
    text, images = _content_to_native(item.get("output"))
    call_id = str(item.get("call_id", ""))
    msg: JSON = {"role": "tool", "content": text}
    if images:
        msg["images"] = images
    if call_names.get(call_id):
        msg["tool_name"] = call_names[call_id]
    msg["tool_call_id"] = call_id
    return msg


# --- response objects -----------------------------------------------------------------------


def _output_text(text: str) -> JSON:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str, status: str) -> JSON:
    content = [_output_text(text)] if status == "completed" else []
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _reasoning_item(item_id: str, thinking: str) -> JSON:
    return {
        "id": item_id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": thinking}],
        "encrypted_content": thinking,
    }


def _function_call_item(item_id: str, call: JSON, status: str) -> JSON:
    arguments = call["function"]["arguments"] if status == "completed" else ""
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call["id"],
        "name": call["function"]["name"],
        "arguments": arguments,
    }


def _usage(native: JSON) -> JSON:
    prompt = int(native.get("prompt_eval_count") or 0)
    output = int(native.get("eval_count") or 0)
    return {
        "input_tokens": prompt,
        "output_tokens": output,
        "total_tokens": prompt + output,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }


def _response_object(
    request: ResponsesRequest,
    response_id: str,
    status: str,
    output: list[JSON],
    usage: JSON | None,
    created_at: int,
    completed_at: int | None,
) -> JSON:
    """The full ``response`` object, echoing the request's parameters as OpenAI does."""
    reasoning = None
    if request.reasoning and (request.reasoning.effort or request.reasoning.summary):
        reasoning = {"effort": request.reasoning.effort, "summary": request.reasoning.summary}
    text_format = request.text.format if request.text and request.text.format else None
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "completed_at": completed_at,
        "status": status,
        "incomplete_details": None,
        "model": request.model,
        "previous_response_id": None,
        "instructions": request.instructions or None,
        "output": output,
        "error": None,
        "tools": request.tools or [],
        "tool_choice": request.tool_choice if request.tool_choice is not None else "auto",
        "truncation": request.truncation or "disabled",
        "parallel_tool_calls": True,
        "text": {"format": text_format or {"type": "text"}},
        "top_p": request.top_p if request.top_p is not None else 1.0,
        "presence_penalty": 0,
        "frequency_penalty": 0,
        "top_logprobs": 0,
        "temperature": request.temperature if request.temperature is not None else 1.0,
        "reasoning": reasoning,
        "usage": usage,
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": None,
        "store": False,
        "background": request.background,
        "service_tier": "default",
        "metadata": {},
        "safety_identifier": None,
        "prompt_cache_key": None,
    }


def native_chat_to_response(
    native_final: JSON,
    request: ResponsesRequest,
    response_id: str,
    item_id: str,
    created_at: int,
    completed_at: int | None = None,
) -> JSON:
    """A non-streamed native chat response → a completed ``response`` object.

    Output: a reasoning item when there was thinking, then either the function-call items or
    one message item. ``completed_at`` defaults to the native ``created_at``.
    """
    msg = native_final.get("message") or {}
    output: list[JSON] = []
    if msg.get("thinking"):
        output.append(_reasoning_item(f"rs_{response_id}", msg["thinking"]))
    calls = native_tool_calls_to_openai(msg.get("tool_calls") or [])
    if calls:
        output.extend(
            _function_call_item(f"fc_{response_id}_{i}", call, "completed")
            for i, call in enumerate(calls)
        )
    else:
        output.append(_message_item(item_id, msg.get("content", ""), "completed"))
    if completed_at is None:
        completed_at = unix_seconds(native_final.get("created_at"), created_at)
    return _response_object(
        request, response_id, "completed", output, _usage(native_final), created_at, completed_at
    )


# --- streaming ------------------------------------------------------------------------------


class ResponsesStreamTranslator:
    """Native ``/api/chat`` stream chunks → Responses streaming events.

    Order: ``response.created``, ``response.in_progress``; a reasoning item
    (``output_item.added``, ``reasoning_summary_text.delta``…, ``.done``, ``output_item.done``);
    a message item (``output_item.added``, ``content_part.added``, ``output_text.delta``…,
    ``output_text.done``, ``content_part.done``, ``output_item.done``); function-call items
    (``output_item.added``, ``function_call_arguments.delta``, ``.done``, ``output_item.done``);
    finally ``response.completed`` with the whole response and usage. Every event carries an
    increasing ``sequence_number``.
    """

    def __init__(
        self, request: ResponsesRequest, response_id: str, item_id: str, created_at: int
    ) -> None:
        self.request = request
        self.response_id = response_id
        self.item_id = item_id
        self.created_at = created_at
        self._sequence = 0
        self._started = False
        self._finished = False
        self._output: list[JSON] = []
        self._thinking: str | None = None
        self._text: str | None = None
        self._calls = 0

    @property
    def finished(self) -> bool:
        """True once ``response.completed`` (or an error event) has been emitted."""
        return self._finished

    def feed(self, chunk: JSON) -> list[JSON]:
        """Translate one native chunk into zero or more events."""
        if self._finished:
            return []
        events: list[JSON] = []
        if not self._started:
            self._started = True
            events.append(self._event("response.created", response=self._snapshot("in_progress")))
            events.append(
                self._event("response.in_progress", response=self._snapshot("in_progress"))
            )
        if "error" in chunk:
            self._finished = True
            events.append(self._event("error", code=None, message=str(chunk["error"]), param=None))
            return events
        msg = chunk.get("message") or {}
        if msg.get("thinking"):
            events.extend(self._reasoning_delta(msg["thinking"]))
        if msg.get("content") and not self._calls:  # text after a tool call is dropped
            events.extend(self._finish_reasoning())
            events.extend(self._text_delta(msg["content"]))
        if msg.get("tool_calls"):
            events.extend(self._finish_reasoning())
            events.extend(self._finish_text())
            events.extend(self._function_calls(msg["tool_calls"]))
        if chunk.get("done"):
            events.extend(self._complete(chunk))
        return events

    def _event(self, kind: str, **fields: Any) -> JSON:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _snapshot(
        self, status: str, usage: JSON | None = None, completed: int | None = None
    ) -> JSON:
        return _response_object(
            self.request,
            self.response_id,
            status,
            list(self._output),
            usage,
            self.created_at,
            completed,
        )

    def _reasoning_delta(self, thinking: str) -> list[JSON]:
        events: list[JSON] = []
        item_id = f"rs_{self.response_id}"
        if self._thinking is None:
            self._thinking = ""
            item = {"id": item_id, "type": "reasoning", "summary": []}
            events.append(
                self._event("response.output_item.added", output_index=len(self._output), item=item)
            )
        self._thinking += thinking
        events.append(
            self._event(
                "response.reasoning_summary_text.delta",
                item_id=item_id,
                output_index=len(self._output),
                summary_index=0,
                delta=thinking,
            )
        )
        return events

    def _finish_reasoning(self) -> list[JSON]:
        if self._thinking is None:
            return []
        item = _reasoning_item(f"rs_{self.response_id}", self._thinking)
        index = len(self._output)
        self._output.append(item)
        events = [
            self._event(
                "response.reasoning_summary_text.done",
                item_id=item["id"],
                output_index=index,
                summary_index=0,
                text=self._thinking,
            ),
            self._event("response.output_item.done", output_index=index, item=item),
        ]
        self._thinking = None
        return events

    def _text_delta(self, text: str) -> list[JSON]:
        events: list[JSON] = []
        index = len(self._output)
        if self._text is None:
            self._text = ""
            item = _message_item(self.item_id, "", "in_progress")
            events.append(self._event("response.output_item.added", output_index=index, item=item))
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=self.item_id,
                    output_index=index,
                    content_index=0,
                    part=_output_text(""),
                )
            )
        self._text += text
        events.append(
            self._event(
                "response.output_text.delta",
                item_id=self.item_id,
                output_index=index,
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return events

    def _finish_text(self) -> list[JSON]:
        if self._text is None:
            return []
        text, index = self._text, len(self._output)
        item = _message_item(self.item_id, text, "completed")
        self._output.append(item)
        self._text = None
        common = {"item_id": self.item_id, "output_index": index, "content_index": 0}
        return [
            self._event("response.output_text.done", **common, text=text, logprobs=[]),
            self._event("response.content_part.done", **common, part=_output_text(text)),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def _function_calls(self, native_calls: list[JSON]) -> list[JSON]:
        events: list[JSON] = []
        for call in native_tool_calls_to_openai(native_calls):
            item_id = f"fc_{self.response_id}_{self._calls}"
            self._calls += 1
            index = len(self._output)
            done_item = _function_call_item(item_id, call, "completed")
            arguments = done_item["arguments"]
            events += [
                self._event(
                    "response.output_item.added",
                    output_index=index,
                    item=_function_call_item(item_id, call, "in_progress"),
                ),
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item_id,
                    output_index=index,
                    delta=arguments,
                ),
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item_id,
                    output_index=index,
                    arguments=arguments,
                ),
                self._event("response.output_item.done", output_index=index, item=done_item),
            ]
            self._output.append(done_item)
        return events

    def _complete(self, final: JSON) -> list[JSON]:
        events = self._finish_reasoning() + self._finish_text()
        completed_at = unix_seconds(final.get("created_at"), self.created_at)
        response = self._snapshot("completed", _usage(final), completed_at)
        events.append(self._event("response.completed", response=response))
        self._finished = True
        return events
