"""Ollama's wire schema for requests (pydantic), with Go-style decode errors.

Requests are validated into these models; unknown fields are kept (``extra="allow"``) and
ignored, as Ollama's Go decoder does. A field of the wrong type is reported with the message Go's
``encoding/json`` would give, e.g. ``json: cannot unmarshal string into Go struct field
GenerateRequest.stream of type bool``, because that is what Ollama clients see.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from pollama.errors import InvalidRequest

T = TypeVar("T", bound="WireModel")

# Strict scalars: JSON `"yes"` is not a bool and `"3"` is not an int, as in Go.
SBool = Annotated[bool, Strict()]
SInt = Annotated[int, Strict()]
SStr = Annotated[str, Strict()]

_GO_TYPES = {
    "bool_type": "bool", "bool_parsing": "bool", "string_type": "string", "int_type": "int", "string_type_strict": "string",
    "int_parsing": "int", "int_from_float": "int", "float_type": "float64", "float_parsing": "float64",
    "list_type": "array", "dict_type": "object", "model_type": "object", "model_attributes_type": "object",
}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


class WireModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @classmethod
    def parse_body(cls: type[T], body: Any) -> T:
        if not isinstance(body, dict):
            raise InvalidRequest(f"json: cannot unmarshal {_json_kind(body)} into Go value of type api.{cls.__name__}")
        try:
            return cls.model_validate(body)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            go = _GO_TYPES.get(err["type"])
            if go:
                raise InvalidRequest(
                    f"json: cannot unmarshal {_json_kind(err.get('input'))} into Go struct field "
                    f"{cls.__name__}.{loc} of type {go}"
                ) from None
            raise InvalidRequest(f"invalid request: {loc}: {err['msg']}") from None


class ToolCallFunction(WireModel):
    index: SInt | None = None
    name: str
    arguments: dict[str, Any] | str = {}


class ToolCall(WireModel):
    id: SStr | None = None
    type: SStr | None = None
    function: ToolCallFunction


class Message(WireModel):
    role: SStr
    content: SStr = ""
    thinking: SStr | None = None
    images: list[SStr] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: SStr | None = None
    tool_call_id: SStr | None = None


class GenerateRequest(WireModel):
    model: SStr = ""
    prompt: SStr = ""
    suffix: SStr = ""
    system: SStr | None = None
    template: SStr | None = None
    context: list[SInt] | None = None
    stream: SBool | None = None
    raw: SBool = False
    format: Any = None
    keep_alive: Any = None
    images: list[SStr] | None = None
    options: dict[str, Any] | None = None
    think: Any = None
    truncate: SBool | None = None
    shift: SBool | None = None
    logprobs: SBool = False
    top_logprobs: SInt = 0


class ChatRequest(WireModel):
    model: SStr = ""
    messages: list[Message] = []
    tools: list[dict[str, Any]] | None = None
    stream: SBool | None = None
    format: Any = None
    keep_alive: Any = None
    options: dict[str, Any] | None = None
    think: Any = None
    truncate: SBool | None = None
    shift: SBool | None = None
    logprobs: SBool = False
    top_logprobs: SInt = 0
    tool_choice: Any = None


class ModelRequest(WireModel):
    """show / delete / pull / push: ``model`` with the legacy ``name`` fallback."""

    model: SStr = ""
    name: SStr = ""
    verbose: SBool = False
    system: SStr | None = None
    template: SStr | None = None
    options: dict[str, Any] | None = None
    insecure: SBool = False
    stream: SBool | None = None

    @property
    def target(self) -> str:
        return (self.model or self.name).strip()


class CopyRequest(WireModel):
    source: SStr = ""
    destination: SStr = ""


class EmbedRequest(WireModel):
    model: SStr = ""
    input: Any = None
    truncate: SBool | None = None
    dimensions: SInt | None = None
    keep_alive: Any = None
    options: dict[str, Any] | None = None


class EmbeddingsRequest(WireModel):
    model: SStr = ""
    prompt: SStr = ""
    keep_alive: Any = None
    options: dict[str, Any] | None = None


class CreateRequest(WireModel):
    """``/api/create`` (reference §2.8). ``model`` falls back to the legacy ``name``."""

    model: SStr = ""
    name: SStr = ""
    from_: SStr | None = Field(default=None, alias="from")
    files: dict[str, Any] | None = None
    adapters: dict[str, Any] | None = None
    template: SStr | None = None
    system: SStr | None = None
    parameters: dict[str, Any] | None = None
    messages: list[Any] | None = None
    license: SStr | list[SStr] | None = None
    quantize: SStr | None = None
    quantization: SStr | None = None
    requires: SStr | None = None
    renderer: SStr | None = None
    parser: SStr | None = None
    modelfile: SStr | None = None  # legacy: the Modelfile text itself
    stream: SBool | None = None

    @property
    def target(self) -> str:
        return (self.model or self.name).strip()
