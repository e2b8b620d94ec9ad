"""OpenAI-compatible request bodies (reference §2.16) as pydantic models.

Only fields pollama reads are declared; unknown fields (``n``, ``user``, ``logit_bias``,
``store`` …) are ignored, as Ollama ignores them. Fields whose shape Ollama checks with its own
error text (message ``content``, Responses ``input`` items, embedding ``input``, ``stop`` on
completions) are typed loosely here and checked in the translators, so the client sees Ollama's
exact message. :func:`parse_request` turns a pydantic failure into
:class:`~pollama.errors.InvalidRequest`, which the route renders in OpenAI's error envelope.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pollama.errors import InvalidRequest


class WireModel(BaseModel):
    """Base for request bodies: unknown fields are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")


M = TypeVar("M", bound=WireModel)


def parse_request(model: type[M], body: Any) -> M:
    """Validate a decoded JSON body into ``model``; raise :class:`InvalidRequest` on failure.

    >>> parse_request(EmbeddingRequest, {"model": "m", "input": "hi", "extra": 1}).input
    'hi'
    >>> try:
    ...     parse_request(ChatCompletionRequest, {"temperature": "hot"})
    ... except InvalidRequest as exc:
    ...     print(exc.message[:56])
    invalid value for 'temperature': Input should be a valid
    """
    if not isinstance(body, dict):
        raise InvalidRequest("invalid request body: expected a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequest(validation_message(exc)) from exc


def validation_message(exc: ValidationError) -> str:
    """One line naming the first offending field, e.g. ``invalid value for 'stream': …``."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"invalid value for '{where}': {first['msg']}"


# --- /v1/chat/completions -------------------------------------------------------------------


class FunctionCall(WireModel):
    """``function`` of an assistant tool call; ``arguments`` is a JSON string (object tolerated)."""

    name: str = ""
    arguments: str | dict[str, Any] = ""


class ToolCall(WireModel):
    """An assistant tool call in request history."""

    id: str = ""
    type: str = "function"
    function: FunctionCall = FunctionCall()


class ChatMessage(WireModel):
    """One chat message; ``content`` is a string, a list of parts, or null with ``tool_calls``."""

    role: str
    content: Any = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning: str | None = None


class StreamOptions(WireModel):
    """``stream_options``; only ``include_usage`` has an effect."""

    include_usage: bool = False


class JsonSchemaFormat(WireModel):
    """``response_format.json_schema``."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str | None = None
    schema_: Any = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(WireModel):
    """``response_format``: ``text``, ``json_object`` or ``json_schema``."""

    type: str = ""
    json_schema: JsonSchemaFormat | None = None


class Reasoning(WireModel):
    """``reasoning`` object (chat completions and Responses)."""

    effort: str | None = None
    summary: str | None = None
    generate_summary: str | None = None


class ChatCompletionRequest(WireModel):
    """POST /v1/chat/completions."""

    model: str = ""
    messages: list[ChatMessage] = Field(default_factory=list)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    seed: int | None = None
    stop: str | list[Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    reasoning: Reasoning | None = None
    reasoning_effort: str | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None


# --- /v1/completions ------------------------------------------------------------------------


class CompletionRequest(WireModel):
    """POST /v1/completions. ``echo``, ``n`` and ``best_of`` are ignored, as in Ollama."""

    model: str = ""
    prompt: str | list[str] = ""
    suffix: str = ""
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None
    stop: Any = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: int | None = None


# --- /v1/embeddings -------------------------------------------------------------------------


class EmbeddingRequest(WireModel):
    """POST /v1/embeddings; ``input`` is checked by the translator (Ollama's messages)."""

    model: str = ""
    input: Any = None
    encoding_format: str | None = None
    dimensions: int | None = None


# --- /v1/responses --------------------------------------------------------------------------


class ResponsesText(WireModel):
    """``text``; ``format`` is kept as given so it can be echoed back."""

    format: dict[str, Any] | None = None


class ResponsesRequest(WireModel):
    """POST /v1/responses (stateless subset: ``previous_response_id`` etc. are ignored)."""

    model: str = ""
    input: str | list[dict[str, Any]] = ""
    instructions: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    reasoning: Reasoning | None = None
    text: ResponsesText | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    truncation: str | None = None
    background: bool = False
    stream: bool = False
