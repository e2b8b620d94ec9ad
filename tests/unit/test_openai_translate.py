"""Tables of OpenAI ↔ native pairs for pollama.openai.translate (reference §2.16)."""

from __future__ import annotations

from typing import Any

import pytest

from pollama.errors import InvalidRequest
from pollama.openai.schema import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    parse_request,
)
from pollama.openai.translate import (
    ChatStreamTranslator,
    CompletionStreamTranslator,
    chat_request_to_native,
    completion_request_to_native,
    embedding_request_to_native,
    model_to_openai,
    native_chat_to_completion,
    native_embed_to_embeddings,
    native_generate_to_completion,
    native_tags_to_models,
    openai_error,
    openai_error_for_status,
    sse_encode,
)

PNG = "iVBORw0KGgo="  # valid base64
DEFAULT_OPTS = {"temperature": 1.0, "top_p": 1.0}
USER_HI = [{"role": "user", "content": "hi"}]


def chat(body: dict[str, Any]) -> dict[str, Any]:
    return chat_request_to_native(parse_request(ChatCompletionRequest, {"model": "m", **body}))


# --- chat requests --------------------------------------------------------------------------

CHAT_REQUESTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "minimal: OpenAI defaults for temperature and top_p, no stream",
        {"messages": USER_HI},
        {"model": "m", "messages": USER_HI, "stream": False, "options": DEFAULT_OPTS},
    ),
    (
        "all sampling options",
        {
            "messages": USER_HI,
            "stream": True,
            "temperature": 0.2,
            "top_p": 0.9,
            "seed": 42,
            "stop": "\n",
            "max_tokens": 10,
            "frequency_penalty": 0.5,
            "presence_penalty": -0.5,
            "n": 1,
            "user": "u",
            "logit_bias": {"1": 2},
        },
        {
            "model": "m",
            "messages": USER_HI,
            "stream": True,
            "options": {
                "stop": ["\n"],
                "num_predict": 10,
                "temperature": 0.2,
                "seed": 42,
                "frequency_penalty": 0.5,
                "presence_penalty": -0.5,
                "top_p": 0.9,
            },
        },
    ),
    (
        "stop list drops non-strings; max_completion_tokens wins over max_tokens",
        {"messages": USER_HI, "stop": ["a", 1, "b"], "max_tokens": 5, "max_completion_tokens": 7},
        {
            "model": "m",
            "messages": USER_HI,
            "stream": False,
            "options": {"stop": ["a", "b"], "num_predict": 7, **DEFAULT_OPTS},
        },
    ),
    (
        "roles: developer becomes system, roles lowercased",
        {
            "messages": [
                {"role": "developer", "content": "be nice"},
                {"role": "User", "content": "x"},
            ]
        },
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be nice"},
                {"role": "user", "content": "x"},
            ],
            "stream": False,
            "options": DEFAULT_OPTS,
        },
    ),
    (
        "content parts: text joined, data-URL images and audio gathered",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                        {"type": "text", "text": "this?"},
                        {"type": "image_url", "image_url": f"data:;base64,{PNG}"},
                        {"type": "input_audio", "input_audio": {"data": PNG, "format": "wav"}},
                    ],
                }
            ]
        },
        {
            "model": "m",
            "messages": [{"role": "user", "content": "what is\nthis?", "images": [PNG, PNG, PNG]}],
            "stream": False,
            "options": DEFAULT_OPTS,
        },
    ),
    (
        "tool round trip: arguments string → object, tool_name looked up by tool_call_id",
        {
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "reasoning": "need a tool",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {"id": "call_2", "function": {"name": "noargs", "arguments": ""}},
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_2", "name": "explicit", "content": "ok"},
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
        },
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": "",
                    "thinking": "need a tool",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "function": {
                                "index": 0,
                                "name": "get_weather",
                                "arguments": {"city": "Paris"},
                            },
                        },
                        {
                            "id": "call_2",
                            "function": {"index": 1, "name": "noargs", "arguments": {}},
                        },
                    ],
                },
                {
                    "role": "tool",
                    "content": "sunny",
                    "tool_name": "get_weather",
                    "tool_call_id": "call_1",
                },
                {
                    "role": "tool",
                    "content": "ok",
                    "tool_name": "explicit",
                    "tool_call_id": "call_2",
                },
            ],
            "stream": False,
            "options": DEFAULT_OPTS,
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
        },
    ),
    (
        "tool_choice required passes through as an extension field",
        {"messages": USER_HI, "tools": [{"type": "function"}], "tool_choice": "required"},
        {
            "model": "m",
            "messages": USER_HI,
            "stream": False,
            "options": DEFAULT_OPTS,
            "tools": [{"type": "function"}],
            "tool_choice": "required",
        },
    ),
    (
        "tool_choice naming a function",
        {
            "messages": USER_HI,
            "tools": [{"type": "function"}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
        },
        {
            "model": "m",
            "messages": USER_HI,
            "stream": False,
            "options": DEFAULT_OPTS,
            "tools": [{"type": "function"}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
        },
    ),
    (
        "tool_choice none drops the tools",
        {"messages": USER_HI, "tools": [{"type": "function"}], "tool_choice": "none"},
        {"model": "m", "messages": USER_HI, "stream": False, "options": DEFAULT_OPTS},
    ),
    (
        "response_format json_object",
        {"messages": USER_HI, "response_format": {"type": "json_object"}},
        {
            "model": "m",
            "messages": USER_HI,
            "stream": False,
            "options": DEFAULT_OPTS,
            "format": "json",
        },
    ),
    (
        "response_format json_schema",
        {
            "messages": USER_HI,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": True},
            },
        },
        {
            "model": "m",
            "messages": USER_HI,
            "stream": False,
            "options": DEFAULT_OPTS,
            "format": {"type": "object"},
        },
    ),
    (
        "response_format text means no constraint",
        {"messages": USER_HI, "response_format": {"type": "text"}},
        {"model": "m", "messages": USER_HI, "stream": False, "options": DEFAULT_OPTS},
    ),
    (
        "reasoning_effort minimal → low; logprobs",
        {"messages": USER_HI, "reasoning_effort": "minimal", "logprobs": True, "top_logprobs": 3},
        {
            "model": "m",
            "messages": USER_HI,
            "stream": False,
            "options": DEFAULT_OPTS,
            "think": "low",
            "logprobs": True,
            "top_logprobs": 3,
        },
    ),
    (
        "reasoning.effort none → think false (wins over reasoning_effort)",
        {"messages": USER_HI, "reasoning": {"effort": "none"}, "reasoning_effort": "high"},
        {
            "model": "m",
            "messages": USER_HI,
            "stream": False,
            "options": DEFAULT_OPTS,
            "think": False,
        },
    ),
    (
        "reasoning_effort xhigh → max",
        {"messages": USER_HI, "reasoning_effort": "xhigh"},
        {
            "model": "m",
            "messages": USER_HI,
            "stream": False,
            "options": DEFAULT_OPTS,
            "think": "max",
        },
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "expected"), CHAT_REQUESTS, ids=[c[0] for c in CHAT_REQUESTS]
)
def test_chat_request_to_native(name: str, body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert chat(body) == expected


CHAT_REQUEST_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"messages": []}, "[] is too short - 'messages'"),
    (
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": "https://x/y.png"}]}
            ]
        },
        "image URLs are not currently supported, please use base64 encoded data instead",
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": "data:image/gif;base64,AA=="}],
                }
            ]
        },
        "invalid image input",
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": "data:image/png;base64,%%%"}],
                }
            ]
        },
        "invalid image input",
    ),
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "invalid message format"),
    ({"messages": [{"role": "user", "content": ["plain"]}]}, "invalid message format"),
    ({"messages": [{"role": "user", "content": None}]}, "invalid message content type: <nil>"),
    ({"messages": [{"role": "user", "content": 3}]}, "invalid message content type: float64"),
    (
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{bad"}}],
                }
            ]
        },
        "invalid tool call arguments",
    ),
    (
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}],
                }
            ]
        },
        "invalid tool call arguments",
    ),
    (
        {"messages": USER_HI, "reasoning_effort": "extreme"},
        'invalid reasoning value: "extreme" (must be "minimal", "low", "medium", "high", '
        '"xhigh", "ultra", "max", or "none")',
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
        "invalid input_audio format: missing data",
    ),
]


@pytest.mark.parametrize(("body", "message"), CHAT_REQUEST_ERRORS)
def test_chat_request_errors(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        chat(body)
    assert info.value.message == message


def test_schema_rejects_bad_types_as_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="invalid value for 'stream'"):
        parse_request(
            ChatCompletionRequest, {"model": "m", "messages": USER_HI, "stream": "yes please"}
        )
    with pytest.raises(InvalidRequest, match="expected a JSON object"):
        parse_request(ChatCompletionRequest, [1, 2])


# --- chat responses -------------------------------------------------------------------------

FINAL_BASE = {
    "model": "llama3.2:latest",
    "created_at": "2024-01-01T00:00:00.123456789Z",
    "done": True,
    "total_duration": 5,
    "prompt_eval_count": 7,
    "eval_count": 3,
}
USAGE_7_3 = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
TOOL_CALL_NATIVE = {
    "id": "call_ab12cd34",
    "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}},
}
TOOL_CALL_OPENAI = {
    "id": "call_ab12cd34",
    "index": 0,
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"c"}'},
}
LOGPROB = {"token": "Hi", "logprob": -0.1, "top_logprobs": [{"token": "Hi", "logprob": -0.1}]}

CHAT_RESPONSES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "plain text, stop",
        {**FINAL_BASE, "message": {"role": "assistant", "content": "Hello"}, "done_reason": "stop"},
        {"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"},
    ),
    (
        "length, with reasoning and logprobs",
        {
            **FINAL_BASE,
            "message": {"role": "assistant", "content": "Hi", "thinking": "hmm"},
            "done_reason": "length",
            "logprobs": [LOGPROB],
        },
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi", "reasoning": "hmm"},
            "finish_reason": "length",
            "logprobs": {"content": [LOGPROB]},
        },
    ),
    (
        "tool calls turn stop into tool_calls",
        {
            **FINAL_BASE,
            "message": {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL_NATIVE]},
            "done_reason": "stop",
        },
        {
            "index": 0,
            "message": {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL_OPENAI]},
            "finish_reason": "tool_calls",
        },
    ),
    (
        "tool calls keep length",
        {
            **FINAL_BASE,
            "message": {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL_NATIVE]},
            "done_reason": "length",
        },
        {
            "index": 0,
            "message": {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL_OPENAI]},
            "finish_reason": "length",
        },
    ),
]


@pytest.mark.parametrize(
    ("name", "native", "choice"), CHAT_RESPONSES, ids=[c[0] for c in CHAT_RESPONSES]
)
def test_native_chat_to_completion(
    name: str, native: dict[str, Any], choice: dict[str, Any]
) -> None:
    assert native_chat_to_completion(native, "llama3.2", "chatcmpl-123", 1700000000) == {
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "llama3.2",
        "system_fingerprint": "fp_ollama",
        "choices": [choice],
        "usage": USAGE_7_3,
    }


# --- chat streaming -------------------------------------------------------------------------

ENV = {
    "id": "chatcmpl-7",
    "object": "chat.completion.chunk",
    "created": 1700000000,
    "model": "m",
    "system_fingerprint": "fp_ollama",
}


def delta(d: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {**ENV, "choices": [{"index": 0, "delta": d, "finish_reason": finish, **extra}]}


def native_chunk(content: str = "", **message: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "created_at": "2024-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": content, **message},
        "done": False,
    }


DONE_STOP = {**FINAL_BASE, "message": {"role": "assistant", "content": ""}, "done_reason": "stop"}

CHAT_STREAMS: list[tuple[str, bool, list[dict[str, Any]], list[Any]]] = [
    (
        "text, no usage",
        False,
        [native_chunk("Hel"), native_chunk("lo"), DONE_STOP],
        [
            delta({"role": "assistant", "content": "Hel"}),
            delta({"content": "lo"}),
            delta({}, "stop"),
            "[DONE]",
        ],
    ),
    (
        "thinking then content (a mixed chunk is split), usage chunk",
        True,
        [
            native_chunk("", thinking="let me"),
            native_chunk("A", thinking=" see"),
            {
                **FINAL_BASE,
                "message": {"role": "assistant", "content": "!"},
                "done_reason": "length",
            },
        ],
        [
            delta({"role": "assistant", "content": "", "reasoning": "let me"}),
            delta({"reasoning": " see"}),
            delta({"content": "A"}),
            delta({"content": "!"}),
            delta({}, "length"),
            {**ENV, "choices": [], "usage": USAGE_7_3},
            "[DONE]",
        ],
    ),
    (
        "tool call delta, finish becomes tool_calls",
        True,
        [native_chunk("", tool_calls=[TOOL_CALL_NATIVE]), DONE_STOP],
        [
            delta({"role": "assistant", "content": "", "tool_calls": [TOOL_CALL_OPENAI]}),
            delta({}, "tool_calls"),
            {**ENV, "choices": [], "usage": USAGE_7_3},
            "[DONE]",
        ],
    ),
    (
        "a lone done chunk is still sent, with the role",
        False,
        [{**FINAL_BASE, "message": {"role": "assistant", "content": "all"}, "done_reason": "stop"}],
        [delta({"role": "assistant", "content": "all"}), delta({}, "stop"), "[DONE]"],
    ),
    (
        "logprobs ride on the content chunk",
        False,
        [{**native_chunk("Hi"), "logprobs": [LOGPROB]}, DONE_STOP],
        [
            delta({"role": "assistant", "content": "Hi"}, logprobs={"content": [LOGPROB]}),
            delta({}, "stop"),
            "[DONE]",
        ],
    ),
    (
        "a native error line ends the stream",
        False,
        [native_chunk("x"), {"error": "runner crashed"}, DONE_STOP],
        [
            delta({"role": "assistant", "content": "x"}),
            {
                "error": {
                    "message": "runner crashed",
                    "type": "api_error",
                    "param": None,
                    "code": None,
                }
            },
        ],
    ),
]


@pytest.mark.parametrize(
    ("name", "usage", "chunks", "expected"), CHAT_STREAMS, ids=[c[0] for c in CHAT_STREAMS]
)
def test_chat_stream(
    name: str, usage: bool, chunks: list[dict[str, Any]], expected: list[Any]
) -> None:
    translator = ChatStreamTranslator("m", "chatcmpl-7", 1700000000, include_usage=usage)
    out = [item for chunk in chunks for item in translator.feed(chunk)]
    assert out == expected
    assert translator.finished


def test_sse_encode_is_compact_and_keeps_unicode() -> None:
    assert sse_encode({"a": "é", "b": [1, 2]}) == 'data: {"a":"é","b":[1,2]}\n\n'.encode()
    assert sse_encode("[DONE]") == b"data: [DONE]\n\n"


# --- completions ----------------------------------------------------------------------------

COMPLETION_REQUESTS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {"prompt": "Once"},
        {
            "model": "m",
            "prompt": "Once",
            "stream": False,
            "options": {
                "temperature": 1.0,
                "frequency_penalty": 0.0,
                "presence_penalty": 0.0,
                "top_p": 1.0,
            },
        },
    ),
    (
        {
            "prompt": ["Once"],
            "suffix": "end",
            "max_tokens": 5,
            "temperature": 0,
            "top_p": 0,
            "seed": 1,
            "stop": ["x", "y"],
            "stream": True,
            "logprobs": 2,
            "echo": True,
        },
        {
            "model": "m",
            "prompt": "Once",
            "stream": True,
            "options": {
                "stop": ["x", "y"],
                "num_predict": 5,
                "temperature": 0.0,
                "seed": 1,
                "frequency_penalty": 0.0,
                "presence_penalty": 0.0,
                "top_p": 1.0,
            },
            "suffix": "end",
            "logprobs": True,
            "top_logprobs": 2,
        },
    ),
]


@pytest.mark.parametrize(("body", "expected"), COMPLETION_REQUESTS)
def test_completion_request_to_native(body: dict[str, Any], expected: dict[str, Any]) -> None:
    req = parse_request(CompletionRequest, {"model": "m", **body})
    assert completion_request_to_native(req) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"prompt": "x", "stop": ["a", 1]}, "invalid type for 'stop' field: float64"),
        ({"prompt": ["a", "b"]}, "prompt must be a string or a list of exactly one string"),
    ],
)
def test_completion_request_errors(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        completion_request_to_native(parse_request(CompletionRequest, {"model": "m", **body}))
    assert info.value.message == message


def test_native_generate_to_completion() -> None:
    native = {**FINAL_BASE, "response": "Hello", "done_reason": "length", "context": [1, 2]}
    assert native_generate_to_completion(native, "m", "cmpl-5", 1700000000) == {
        "id": "cmpl-5",
        "object": "text_completion",
        "created": 1700000000,
        "model": "m",
        "system_fingerprint": "fp_ollama",
        "choices": [{"text": "Hello", "index": 0, "finish_reason": "length"}],
        "usage": USAGE_7_3,
    }


CMPL_ENV = {
    "id": "cmpl-5",
    "object": "text_completion",
    "created": 1700000000,
    "model": "m",
    "system_fingerprint": "fp_ollama",
}
ZERO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_completion_stream_with_usage() -> None:
    translator = CompletionStreamTranslator("m", "cmpl-5", 1700000000, include_usage=True)
    chunks = [
        {"model": "m", "created_at": "2024-01-01T00:00:00Z", "response": "Hi", "done": False},
        {**FINAL_BASE, "response": "", "done_reason": "stop"},
    ]
    out = [item for c in chunks for item in translator.feed(c)]
    assert out == [
        {
            **CMPL_ENV,
            "choices": [{"text": "Hi", "index": 0, "finish_reason": None}],
            "usage": ZERO_USAGE,
        },
        {
            **CMPL_ENV,
            "choices": [{"text": "", "index": 0, "finish_reason": "stop"}],
            "usage": ZERO_USAGE,
        },
        {**CMPL_ENV, "choices": [], "usage": USAGE_7_3},
        "[DONE]",
    ]


def test_completion_stream_without_usage() -> None:
    translator = CompletionStreamTranslator("m", "cmpl-5", 1700000000)
    out = translator.feed({**FINAL_BASE, "response": "Hi", "done_reason": "stop"})
    assert out == [
        {**CMPL_ENV, "choices": [{"text": "Hi", "index": 0, "finish_reason": "stop"}]},
        "[DONE]",
    ]


# --- embeddings -----------------------------------------------------------------------------

EMBED_REQUESTS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"input": "hello"}, {"model": "m", "input": "hello"}),
    ({"input": ""}, {"model": "m", "input": [""]}),
    (
        {"input": ["a", "b"], "dimensions": 4, "encoding_format": "BASE64"},
        {"model": "m", "input": ["a", "b"], "dimensions": 4},
    ),
]


@pytest.mark.parametrize(("body", "expected"), EMBED_REQUESTS)
def test_embedding_request_to_native(body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert (
        embedding_request_to_native(parse_request(EmbeddingRequest, {"model": "m", **body}))
        == expected
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "invalid input"),
        ({"input": None}, "invalid input"),
        ({"input": []}, "invalid input"),
        ({"input": [[1, 2, 3]]}, "invalid input type"),
        ({"input": [1, 2, 3]}, "invalid input type"),
        (
            {"input": "x", "encoding_format": "int8"},
            "Invalid value for 'encoding_format' = int8. Supported values: ['float', 'base64'].",
        ),
    ],
)
def test_embedding_request_errors(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        embedding_request_to_native(parse_request(EmbeddingRequest, {"model": "m", **body}))
    assert info.value.message == message


EMBED_NATIVE = {"model": "m", "embeddings": [[1.0, 0.0], [0.5, -2.0]], "prompt_eval_count": 4}


@pytest.mark.parametrize(
    ("encoding", "vectors"),
    [
        (None, [[1.0, 0.0], [0.5, -2.0]]),
        ("float", [[1.0, 0.0], [0.5, -2.0]]),
        # struct.pack("<2f", 1.0, 0.0) and ("<2f", 0.5, -2.0), base64-encoded
        ("base64", ["AACAPwAAAAA=", "AAAAPwAAAMA="]),
    ],
)
def test_native_embed_to_embeddings(encoding: str | None, vectors: list[Any]) -> None:
    assert native_embed_to_embeddings(EMBED_NATIVE, "m", encoding) == {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": vectors[0], "index": 0},
            {"object": "embedding", "embedding": vectors[1], "index": 1},
        ],
        "model": "m",
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }


# --- models ---------------------------------------------------------------------------------


def test_native_tags_to_models() -> None:
    tags = {
        "models": [
            {
                "name": "llama3.2:latest",
                "model": "llama3.2:latest",
                "modified_at": "2024-05-10T08:06:48.639712648-07:00",
                "size": 1,
                "digest": "d",
                "details": {},
            },
            {"name": "me/mine:v1", "model": "me/mine:v1", "modified_at": "2024-01-01T00:00:00Z"},
            {
                "name": "hf.co/bartowski/SmolLM2-GGUF:Q4_K_M",
                "model": "hf.co/bartowski/SmolLM2-GGUF:Q4_K_M",
                "modified_at": "2024-01-01T00:00:00Z",
            },
        ]
    }
    assert native_tags_to_models(tags) == {
        "object": "list",
        "data": [
            {
                "id": "llama3.2:latest",
                "object": "model",
                "created": 1715353608,
                "owned_by": "library",
            },
            {"id": "me/mine:v1", "object": "model", "created": 1704067200, "owned_by": "me"},
            {
                "id": "hf.co/bartowski/SmolLM2-GGUF:Q4_K_M",
                "object": "model",
                "created": 1704067200,
                "owned_by": "bartowski",
            },
        ],
    }
    assert native_tags_to_models({"models": []}) == {"object": "list", "data": []}


def test_model_to_openai_keeps_the_id_verbatim() -> None:
    assert model_to_openai("Llama3.2", "2024-01-01T00:00:00Z") == {
        "id": "Llama3.2",
        "object": "model",
        "created": 1704067200,
        "owned_by": "library",
    }


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            400,
            {
                "error": {
                    "message": "m",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            },
        ),
        (404, {"error": {"message": "m", "type": "not_found_error", "param": None, "code": None}}),
        (500, {"error": {"message": "m", "type": "api_error", "param": None, "code": None}}),
        (503, {"error": {"message": "m", "type": "api_error", "param": None, "code": None}}),
    ],
)
def test_openai_error_for_status(status: int, body: dict[str, Any]) -> None:
    assert openai_error_for_status(status, "m") == body


def test_openai_error_fields() -> None:
    assert openai_error("nope", code="model_not_found", param="model") == {
        "error": {
            "message": "nope",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
