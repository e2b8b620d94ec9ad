"""Pure translation between OpenAI's wire shapes and Ollama's native ones (reference §2.16).

Requests become native ``/api/chat``, ``/api/generate`` and ``/api/embed`` bodies (plain dicts);
native responses and streamed chunks become OpenAI objects. Nothing here does I/O or knows HTTP:
bad input raises :class:`~pollama.errors.InvalidRequest` with Ollama's exact message, and the route
renders it with :func:`openai_error_for_status`. The Responses API lives in
:mod:`pollama.openai.responses`.

Deliberate deviations from Ollama, all additive:

* The parts of a message with list ``content`` stay one native message: text parts are joined with
  ``"\\n"`` and images are gathered into ``images``. (Ollama makes one message per part, which
  breaks chat templates that require alternating roles.)
* ``tool_choice`` is passed on as the pollama extension field ``tool_choice``; ``"none"`` drops the
  tools. ``max_completion_tokens`` is accepted next to ``max_tokens``.
* ``/v1/completions`` also accepts a ``prompt`` that is a list holding exactly one string.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

from pollama.errors import InvalidModelName, InvalidRequest
from pollama.openai.schema import (
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
    EmbeddingRequest,
    ResponseFormat,
    ToolCall,
)
from pollama.openai.wire import (
    DONE,
    arguments_json,
    b64_is_valid,
    go_type_name,
    image_from_data_url,
    sse_encode,
    unix_seconds,
)
from pollama.types.names import ModelName

__all__ = [
    "DONE",
    "SYSTEM_FINGERPRINT",
    "ChatStreamTranslator",
    "CompletionStreamTranslator",
    "chat_request_to_native",
    "completion_request_to_native",
    "embedding_request_to_native",
    "model_to_openai",
    "native_chat_to_completion",
    "native_embed_to_embeddings",
    "native_generate_to_completion",
    "native_tags_to_models",
    "native_tool_calls_to_openai",
    "native_usage",
    "openai_error",
    "openai_error_for_status",
    "openai_error_type",
    "sse_encode",
    "think_from_effort",
    "tool_choice_to_native",
]

SYSTEM_FINGERPRINT = "fp_ollama"

JSON = dict[str, Any]
StreamItem = JSON | str
"""What stream translators emit: an SSE payload object, or the ``[DONE]`` sentinel."""


# --- errors ---------------------------------------------------------------------------------


def openai_error_type(status: int) -> str:
    """OpenAI error ``type`` for an HTTP status, as Ollama picks it (§2.16).

    >>> [openai_error_type(s) for s in (400, 404, 500, 503)]
    ['invalid_request_error', 'not_found_error', 'api_error', 'api_error']
    """
    if status == 400:
        return "invalid_request_error"
    if status == 404:
        return "not_found_error"
    return "api_error"


def openai_error(
    message: str,
    type: str = "invalid_request_error",  # noqa: A002 - the wire field is called "type"
    code: str | None = None,
    param: str | None = None,
) -> JSON:
    """The OpenAI error envelope ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def openai_error_for_status(status: int, message: str) -> JSON:
    """The envelope for an error the route answers with ``status`` (the status is kept)."""
    return openai_error(message, openai_error_type(status))


# --- shared request pieces ------------------------------------------------------------------

_EFFORT_TO_THINK: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "max": "max",
    "xhigh": "max",
    "ultra": "max",
}


def think_from_effort(effort: str | None) -> bool | str | None:
    """OpenAI ``reasoning_effort`` → native ``think`` (None: leave the model's default).

    >>> [think_from_effort(e) for e in (None, "", "none", "minimal", "high", "xhigh")]
    [None, None, False, 'low', 'high', 'max']
    """
    if not effort:
        return None
    if effort not in _EFFORT_TO_THINK:
        raise InvalidRequest(
            f'invalid reasoning value: {json.dumps(effort)} (must be "minimal", "low", '
            '"medium", "high", "xhigh", "ultra", "max", or "none")'
        )
    return _EFFORT_TO_THINK[effort]


def _stop_list(stop: Any, *, strict: bool) -> list[str] | None:
    """``stop`` as a string or list → list of strings; ``strict`` rejects non-string elements."""
    if isinstance(stop, str):
        return [stop]
    if not isinstance(stop, list):
        return None
    stops: list[str] = []
    for item in stop:
        if isinstance(item, str):
            stops.append(item)
        elif strict:
            raise InvalidRequest(f"invalid type for 'stop' field: {go_type_name(item)}")
    return stops


def tool_choice_to_native(choice: Any) -> str | JSON | None:
    """Normalise an OpenAI ``tool_choice`` for the native extension field (None: omit it).

    >>> tool_choice_to_native({"type": "function", "function": {"name": "f"}})
    {'type': 'function', 'function': {'name': 'f'}}
    >>> tool_choice_to_native("bogus") is None
    True
    """
    if choice in ("none", "auto", "required"):
        return str(choice)
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else choice.get("name")
        if isinstance(name, str) and name:
            return {"type": "function", "function": {"name": name}}
    return None


def _apply_tools(body: JSON, tools: list[JSON] | None, choice: Any) -> None:
    """Put ``tools`` and the normalised ``tool_choice`` on a native body; ``"none"`` drops both."""
    native_choice = tool_choice_to_native(choice)
    if not tools or native_choice == "none":
        return
    body["tools"] = tools
    if native_choice is not None:
        body["tool_choice"] = native_choice


# --- /v1/chat/completions: request ----------------------------------------------------------


def chat_request_to_native(req: ChatCompletionRequest) -> JSON:
    """A chat-completions request → the native ``/api/chat`` body.

    Raises :class:`InvalidRequest` with Ollama's messages (empty ``messages``, bad content parts,
    image URLs, unparsable tool-call arguments, unknown reasoning effort).
    """
    if not req.messages:
        raise InvalidRequest("[] is too short - 'messages'")
    messages = [_chat_message_to_native(m, req.messages) for m in req.messages]
    body: JSON = {
        "model": req.model,
        "messages": messages,
        "stream": req.stream,
        "options": _chat_options(req),
    }
    fmt = _format_from_response_format(req.response_format)
    if fmt is not None:
        body["format"] = fmt
    _apply_tools(body, req.tools, req.tool_choice)
    effort = req.reasoning.effort if req.reasoning is not None else req.reasoning_effort
    think = think_from_effort(effort)
    if think is not None:
        body["think"] = think
    if req.logprobs:
        body["logprobs"] = True
    if req.top_logprobs:
        body["top_logprobs"] = req.top_logprobs
    return body


def _chat_options(req: ChatCompletionRequest) -> JSON:
    """Sampling options; temperature and top_p default to 1.0 as OpenAI's do (§2.16)."""
    options: JSON = {}
    stop = _stop_list(req.stop, strict=False)
    if stop is not None:
        options["stop"] = stop
    max_tokens = (
        req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    )
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    options["temperature"] = req.temperature if req.temperature is not None else 1.0
    if req.seed is not None:
        options["seed"] = req.seed
    if req.frequency_penalty is not None:
        options["frequency_penalty"] = req.frequency_penalty
    if req.presence_penalty is not None:
        options["presence_penalty"] = req.presence_penalty
    options["top_p"] = req.top_p if req.top_p is not None else 1.0
    return options


def _format_from_response_format(rf: ResponseFormat | None) -> Any:
    """``json_object`` → ``"json"``; ``json_schema`` → its schema; anything else → None."""
    if rf is None:
        return None
    kind = rf.type.strip().lower()
    if kind == "json_object":
        return "json"
    if kind == "json_schema" and rf.json_schema is not None:
        return rf.json_schema.schema_
    return None


def _chat_message_to_native(msg: ChatMessage, history: list[ChatMessage]) -> JSON:
    """One OpenAI message → one native message (see the module note on content parts)."""
    role = msg.role.lower()
    if role == "developer":
        role = "system"
    out: JSON = {"role": role, "content": ""}
    images: list[str] = []
    if isinstance(msg.content, str):
        out["content"] = msg.content
    elif isinstance(msg.content, list):
        out["content"], images = _content_parts_to_native(msg.content)
    elif not (msg.content is None and msg.tool_calls is not None):
        raise InvalidRequest(f"invalid message content type: {go_type_name(msg.content)}")
    if msg.reasoning:
        out["thinking"] = msg.reasoning
    if images:
        out["images"] = images
    if msg.tool_calls:
        out["tool_calls"] = _tool_calls_to_native(msg.tool_calls)
    if role == "tool":
        name = msg.name or (_tool_name_for(msg.tool_call_id, history) if msg.tool_call_id else "")
        if name:
            out["tool_name"] = name
    if msg.tool_call_id:
        out["tool_call_id"] = msg.tool_call_id
    return out


def _content_parts_to_native(parts: list[Any]) -> tuple[str, list[str]]:
    """Content parts → (text parts joined by newlines, base64 images and audio clips)."""
    texts: list[str] = []
    images: list[str] = []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str):
                raise InvalidRequest("invalid message format")
            images.append(image_from_data_url(url))
        elif kind == "input_audio":
            images.append(_audio_part(part.get("input_audio")))
        else:
            raise InvalidRequest("invalid message format")
    return "\n".join(texts), images


def _audio_part(audio: Any) -> str:
    """The base64 payload of an ``input_audio`` part (sent to the model like an image)."""
    if not isinstance(audio, dict):
        raise InvalidRequest("invalid input_audio format")
    data = audio.get("data")
    if not isinstance(data, str):
        raise InvalidRequest("invalid input_audio format: missing data")
    if not b64_is_valid(data):
        raise InvalidRequest("invalid input_audio base64 data")
    return data


def _tool_calls_to_native(calls: list[ToolCall]) -> list[JSON]:
    """Assistant tool calls: ``arguments`` JSON string → object (empty string → ``{}``)."""
    native: list[JSON] = []
    for index, call in enumerate(calls):
        args: Any = call.function.arguments
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except ValueError:
                raise InvalidRequest("invalid tool call arguments") from None
        if not isinstance(args, dict):
            raise InvalidRequest("invalid tool call arguments")
        item: JSON = {"id": call.id} if call.id else {}
        item["function"] = {"index": index, "name": call.function.name, "arguments": args}
        native.append(item)
    return native


def _tool_name_for(call_id: str, history: list[ChatMessage]) -> str:
    """The function name of the (last) assistant tool call with ``call_id``, or ``""``."""
    for msg in reversed(history):
        for call in msg.tool_calls or []:
            if call.id == call_id:
                return call.function.name
    return ""


# --- /v1/chat/completions: responses --------------------------------------------------------


def native_usage(native: JSON) -> JSON:
    """``usage`` from a native final chunk's ``prompt_eval_count`` and ``eval_count``."""
    prompt = int(native.get("prompt_eval_count") or 0)
    completion = int(native.get("eval_count") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def native_tool_calls_to_openai(calls: list[JSON]) -> list[JSON]:
    """Native tool calls → OpenAI ones, ``arguments`` as a compact JSON string."""
    out: list[JSON] = []
    for position, call in enumerate(calls):
        function = call.get("function") or {}
        out.append(
            {
                "id": call.get("id") or f"call_{position}",
                "index": function.get("index", position),
                "type": "function",
                "function": {
                    "name": function.get("name", ""),
                    "arguments": arguments_json(function.get("arguments")),
                },
            }
        )
    return out


def _finish_reason(done_reason: str | None, tool_calls: bool) -> str | None:
    """Native ``done_reason`` → ``finish_reason``; ``stop`` becomes ``tool_calls`` after calls."""
    if done_reason == "stop" and tool_calls:
        return "tool_calls"
    return done_reason or None


def _logprobs(native: JSON) -> JSON | None:
    """``{"content": [...]}`` from a native chunk's ``logprobs``, or None when there are none."""
    entries = native.get("logprobs")
    return {"content": entries} if entries else None


def native_chat_to_completion(
    native_final: JSON, model: str, request_id: str, created: int
) -> JSON:
    """A non-streamed native chat response → a ``chat.completion`` object."""
    msg = native_final.get("message") or {}
    calls = native_tool_calls_to_openai(msg.get("tool_calls") or [])
    message: JSON = {"role": "assistant", "content": msg.get("content", "")}
    if msg.get("thinking"):
        message["reasoning"] = msg["thinking"]
    if calls:
        message["tool_calls"] = calls
    choice: JSON = {
        "index": 0,
        "message": message,
        "finish_reason": _finish_reason(native_final.get("done_reason"), bool(calls)),
    }
    logprobs = _logprobs(native_final)
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [choice],
        "usage": native_usage(native_final),
    }


class _StreamTranslator:
    """What both stream translators share: the envelope, the end state, and an error line."""

    OBJECT = ""

    def __init__(
        self, model: str, request_id: str, created: int, include_usage: bool = False
    ) -> None:
        self.model = model
        self.request_id = request_id
        self.created = created
        self.include_usage = include_usage
        self._finished = False

    @property
    def finished(self) -> bool:
        """True once the done chunk (or an error) has been translated."""
        return self._finished

    def feed(self, chunk: JSON) -> list[StreamItem]:
        """Translate one native chunk; a native ``{"error": ...}`` line ends the stream."""
        if self._finished:
            return []
        if "error" in chunk:
            self._finished = True
            return [openai_error(str(chunk["error"]), "api_error")]
        if chunk.get("done"):
            self._finished = True
        return self._translate(chunk)

    def _translate(self, chunk: JSON) -> list[StreamItem]:
        raise NotImplementedError

    def _envelope(self, choices: list[JSON]) -> JSON:
        return {
            "id": self.request_id,
            "object": self.OBJECT,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        }


class ChatStreamTranslator(_StreamTranslator):
    """Native ``/api/chat`` stream chunks → ``chat.completion.chunk`` payloads.

    Feed chunks in order; each :meth:`feed` returns the payloads to send (encode each with
    :func:`sse_encode`). The first delta carries ``role``; a chunk holding both thinking and
    content is split in two, reasoning first; the native done chunk becomes a separate finish
    chunk with an empty delta, then the usage chunk (``include_usage``), then ``[DONE]``. A native
    ``{"error": ...}`` line becomes an OpenAI error payload and ends the stream.
    """

    OBJECT = "chat.completion.chunk"

    def __init__(
        self, model: str, request_id: str, created: int, include_usage: bool = False
    ) -> None:
        super().__init__(model, request_id, created, include_usage)
        self._first_sent = False
        self._tool_call_sent = False

    def _translate(self, chunk: JSON) -> list[StreamItem]:
        out: list[StreamItem] = []
        done = bool(chunk.get("done"))
        msg = chunk.get("message") or {}
        if not (done and self._first_sent and _is_empty_trailer(msg, chunk)):
            out.extend(self._content_chunks(msg, _logprobs(chunk)))
            self._first_sent = True
        if done:
            out.extend(self._closing(chunk))
        return out

    def _content_chunks(self, msg: JSON, logprobs: JSON | None) -> list[StreamItem]:
        role: JSON = {} if self._first_sent else {"role": "assistant"}
        content = msg.get("content", "")
        thinking = msg.get("thinking") or ""
        calls = native_tool_calls_to_openai(msg.get("tool_calls") or [])
        if calls:
            self._tool_call_sent = True
        tail: JSON = {"tool_calls": calls} if calls else {}
        if thinking and (content or calls):
            return [
                self._chunk({**role, "reasoning": thinking}, None, logprobs),
                self._chunk({"content": content, **tail}, None, None),
            ]
        reasoning: JSON = {"reasoning": thinking} if thinking else {}
        return [self._chunk({**role, "content": content, **reasoning, **tail}, None, logprobs)]

    def _closing(self, final: JSON) -> list[StreamItem]:
        reason = final.get("done_reason") or "stop"
        if reason == "stop" and self._tool_call_sent:
            reason = "tool_calls"
        out: list[StreamItem] = [self._chunk({}, reason, None)]
        if self.include_usage:
            out.append({**self._envelope([]), "usage": native_usage(final)})
        out.append(DONE)
        return out

    def _chunk(self, delta: JSON, finish_reason: str | None, logprobs: JSON | None) -> JSON:
        choice: JSON = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        if logprobs is not None:
            choice["logprobs"] = logprobs
        return self._envelope([choice])



def _is_empty_trailer(msg: JSON, chunk: JSON) -> bool:
    """A done chunk with nothing to say (it is not forwarded as a content delta)."""
    return not (
        msg.get("content") or msg.get("thinking") or msg.get("tool_calls") or chunk.get("logprobs")
    )


# --- /v1/completions ------------------------------------------------------------------------


def completion_request_to_native(req: CompletionRequest) -> JSON:
    """A legacy completions request → the native ``/api/generate`` body (§2.16)."""
    options: JSON = {}
    stop = _stop_list(req.stop, strict=True)
    if stop is not None:
        options["stop"] = stop
    if req.max_tokens is not None:
        options["num_predict"] = req.max_tokens
    options["temperature"] = req.temperature if req.temperature is not None else 1.0
    if req.seed is not None:
        options["seed"] = req.seed
    options["frequency_penalty"] = req.frequency_penalty
    options["presence_penalty"] = req.presence_penalty
    options["top_p"] = req.top_p if req.top_p else 1.0
    body: JSON = {
        "model": req.model,
        "prompt": _single_prompt(req.prompt),
        "stream": req.stream,
        "options": options,
    }
    if req.suffix:
        body["suffix"] = req.suffix
    if req.logprobs is not None and req.logprobs > 0:
        body["logprobs"] = True
        body["top_logprobs"] = req.logprobs
    return body


def _single_prompt(prompt: str | list[str]) -> str:
    """The prompt string; a list is accepted only when it holds exactly one string."""
    if isinstance(prompt, str):
        return prompt
    if len(prompt) == 1:
        return prompt[0]
    raise InvalidRequest("prompt must be a string or a list of exactly one string")


def _completion_choice(native: JSON) -> JSON:
    choice: JSON = {
        "text": native.get("response", ""),
        "index": 0,
        "finish_reason": native.get("done_reason") or None,
    }
    logprobs = _logprobs(native)
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return choice


def native_generate_to_completion(
    native_final: JSON, model: str, request_id: str, created: int
) -> JSON:
    """A non-streamed native generate response → a ``text_completion`` object."""
    return {
        "id": request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [_completion_choice(native_final)],
        "usage": native_usage(native_final),
    }


class CompletionStreamTranslator(_StreamTranslator):
    """Native ``/api/generate`` stream chunks → ``text_completion`` chunk payloads.

    Every native chunk (the done one included) becomes one chunk. With ``include_usage`` each
    chunk carries a zero ``usage`` and one more chunk with ``choices: []`` carries the real usage.
    ``[DONE]`` ends the stream.
    """

    OBJECT = "text_completion"

    def _translate(self, chunk: JSON) -> list[StreamItem]:
        payload = self._envelope([_completion_choice(chunk)])
        if self.include_usage:
            payload["usage"] = native_usage({})
        out: list[StreamItem] = [payload]
        if chunk.get("done"):
            if self.include_usage:
                out.append({**self._envelope([]), "usage": native_usage(chunk)})
            out.append(DONE)
        return out


# --- /v1/embeddings -------------------------------------------------------------------------


def embedding_request_to_native(req: EmbeddingRequest) -> JSON:
    """An embeddings request → the native ``/api/embed`` body. Token arrays are refused."""
    fmt = req.encoding_format
    if fmt and fmt.lower() not in ("float", "base64"):
        raise InvalidRequest(
            f"Invalid value for 'encoding_format' = {fmt}. Supported values: ['float', 'base64']."
        )
    inputs = [""] if req.input == "" else req.input
    if inputs is None or inputs == []:
        raise InvalidRequest("invalid input")
    if not isinstance(inputs, (str, list)) or (
        isinstance(inputs, list) and not all(isinstance(item, str) for item in inputs)
    ):
        raise InvalidRequest("invalid input type")
    body: JSON = {"model": req.model, "input": inputs}
    if req.dimensions:
        body["dimensions"] = req.dimensions
    return body


def _float32_base64(vector: list[float]) -> str:
    """Little-endian float32 bytes, base64-encoded (OpenAI's ``encoding_format: base64``)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def native_embed_to_embeddings(
    native: JSON, model: str, encoding_format: str | None = None
) -> JSON:
    """A native ``/api/embed`` response → an OpenAI embedding list."""
    as_base64 = (encoding_format or "").lower() == "base64"
    data = [
        {
            "object": "embedding",
            "embedding": _float32_base64(vector) if as_base64 else vector,
            "index": index,
        }
        for index, vector in enumerate(native.get("embeddings") or [])
    ]
    tokens = int(native.get("prompt_eval_count") or 0)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# --- /v1/models -----------------------------------------------------------------------------


def _namespace(model_id: str) -> str:
    try:
        return ModelName.parse(model_id).namespace
    except InvalidModelName:
        return ""


def model_to_openai(model_id: str, modified_at: str | None) -> JSON:
    """One OpenAI model object; ``owned_by`` is the name's namespace (``library`` by default).

    >>> model_to_openai("me/m:1", "2024-01-01T00:00:00Z")
    {'id': 'me/m:1', 'object': 'model', 'created': 1704067200, 'owned_by': 'me'}
    """
    return {
        "id": model_id,
        "object": "model",
        "created": unix_seconds(modified_at),
        "owned_by": _namespace(model_id),
    }


def native_tags_to_models(tags: JSON) -> JSON:
    """A native ``/api/tags`` response → ``{"object": "list", "data": [...]}`` (never null)."""
    return {
        "object": "list",
        "data": [
            model_to_openai(m.get("model") or m.get("name", ""), m.get("modified_at"))
            for m in tags.get("models") or []
        ],
    }
