"""Tables of Anthropic Messages ↔ native pairs for pollama.anthropic.translate (§2.17)."""

from __future__ import annotations

from typing import Any

import pytest

from pollama.anthropic.schema import MessagesRequest, parse_request
from pollama.anthropic.translate import (
    MessagesStreamTranslator,
    anthropic_error,
    anthropic_error_for_status,
    estimate_input_tokens,
    messages_request_to_native,
    native_chat_to_message,
)
from pollama.errors import InvalidRequest
from pollama.openai.wire import sse_event

PNG = "iVBORw0KGgo="
HI = [{"role": "user", "content": "hi"}]


def native(body: dict[str, Any]) -> dict[str, Any]:
    req = parse_request(MessagesRequest, {"model": "m", "max_tokens": 100, **body})
    return messages_request_to_native(req)


REQUESTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "minimal: max_tokens → num_predict, no sampling defaults",
        {"messages": HI},
        {"model": "m", "messages": HI, "stream": False, "options": {"num_predict": 100}},
    ),
    (
        "system blocks concatenated; sampling; stop_sequences; stream",
        {
            "system": [{"type": "text", "text": "You are "}, {"type": "text", "text": "terse."}],
            "messages": HI,
            "temperature": 0.5,
            "top_p": 0.9,
            "top_k": 40,
            "stop_sequences": ["END"],
            "stream": True,
            "metadata": {"user_id": "u"},
        },
        {
            "model": "m",
            "messages": [{"role": "system", "content": "You are terse."}, *HI],
            "stream": True,
            "options": {
                "num_predict": 100,
                "temperature": 0.5,
                "top_p": 0.9,
                "top_k": 40,
                "stop": ["END"],
            },
        },
    ),
    (
        "blocks: text joined, image, thinking, tool_use; tool_result before user text",
        {
            "system": "sys",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is "},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                        {"type": "text", "text": "this?"},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "look it up", "signature": "sig"},
                        {"type": "text", "text": "Checking."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "lookup",
                            "input": {"q": "png"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "thanks"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "content": [{"type": "text", "text": "an image"}],
                            "is_error": False,
                        },
                    ],
                },
            ],
        },
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "What is this?", "images": [PNG]},
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "thinking": "look it up",
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "function": {"index": 0, "name": "lookup", "arguments": {"q": "png"}},
                        }
                    ],
                },
                {"role": "tool", "content": "an image", "tool_call_id": "toolu_1"},
                {"role": "user", "content": "thanks"},
            ],
            "stream": False,
            "options": {"num_predict": 100},
        },
    ),
    (
        "tools with input_schema; tool_choice any → required; thinking enabled",
        {
            "messages": HI,
            "tools": [
                {
                    "name": "get_weather",
                    "description": "Weather",
                    "input_schema": {"type": "object", "properties": {}},
                },
                {"type": "web_search_20250305", "name": "web_search"},
            ],
            "tool_choice": {"type": "any"},
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        },
        {
            "model": "m",
            "messages": HI,
            "stream": False,
            "options": {"num_predict": 100},
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Weather",
                        "parameters": {"type": "object", "properties": {}},
                    },
                }
            ],
            "tool_choice": "required",
            "think": True,
        },
    ),
    (
        "tool_choice tool names a function; thinking disabled beats output_config",
        {
            "messages": HI,
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "f"},
            "thinking": {"type": "disabled"},
            "output_config": {"effort": "high"},
        },
        {
            "model": "m",
            "messages": HI,
            "stream": False,
            "options": {"num_predict": 100},
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "think": False,
        },
    ),
    (
        "tool_choice none drops tools; output_config xhigh → high",
        {
            "messages": HI,
            "tools": [{"name": "f"}],
            "tool_choice": {"type": "none"},
            "output_config": {"effort": "xhigh"},
        },
        {
            "model": "m",
            "messages": HI,
            "stream": False,
            "options": {"num_predict": 100},
            "think": "high",
        },
    ),
]


@pytest.mark.parametrize(("name", "body", "expected"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_messages_request_to_native(
    name: str, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert native(body) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "", "messages": HI}, "model is required"),
        ({"max_tokens": 0, "messages": HI}, "max_tokens is required and must be positive"),
        ({"messages": []}, "messages is required"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "url", "url": "https://x"}}
                        ],
                    }
                ]
            },
            "invalid image source type: url. Only base64 images are supported.",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "name": "f", "input": {}}],
                    }
                ]
            },
            "tool_use block missing required 'id' field",
        ),
        (
            {
                "messages": [
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "input": {}}]}
                ]
            },
            "tool_use block missing required 'name' field",
        ),
    ],
)
def test_messages_request_errors(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        native(body)
    assert info.value.message == message


def test_estimate_input_tokens() -> None:
    req = parse_request(
        MessagesRequest,
        {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x" * 40}]},
    )
    assert estimate_input_tokens(req) == 11  # (len("user") + 40) // 4


# --- responses ------------------------------------------------------------------------------

FINAL = {
    "model": "m",
    "created_at": "2024-01-01T00:00:00Z",
    "done": True,
    "prompt_eval_count": 7,
    "eval_count": 3,
}
CALL = {
    "id": "call_ab12cd34",
    "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}},
}


@pytest.mark.parametrize(
    ("message", "done_reason", "content", "stop_reason"),
    [
        (
            {"role": "assistant", "content": "Hello"},
            "stop",
            [{"type": "text", "text": "Hello"}],
            "end_turn",
        ),
        (
            {"role": "assistant", "content": "Hel"},
            "length",
            [{"type": "text", "text": "Hel"}],
            "max_tokens",
        ),
        (
            {"role": "assistant", "content": "x"},
            "unload",
            [{"type": "text", "text": "x"}],
            "stop_sequence",
        ),
        (
            {
                "role": "assistant",
                "content": "Let me check.",
                "thinking": "hmm",
                "tool_calls": [CALL, {"function": {"name": "g"}}],
            },
            "stop",
            [
                {"type": "thinking", "thinking": "hmm"},
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "call_ab12cd34",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_01abc_1", "name": "g", "input": {}},
            ],
            "tool_use",
        ),
    ],
)
def test_native_chat_to_message(
    message: dict[str, Any], done_reason: str, content: list[Any], stop_reason: str
) -> None:
    native_final = {**FINAL, "message": message, "done_reason": done_reason}
    assert native_chat_to_message(native_final, "claude-ish", "msg_01abc") == {
        "id": "msg_01abc",
        "type": "message",
        "role": "assistant",
        "model": "claude-ish",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 7, "output_tokens": 3},
    }


def chunk(content: str = "", **message: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "created_at": "2024-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": content, **message},
        "done": False,
    }


def start(input_tokens: int) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "m",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 0},
        },
    }


def delta(index: int, **d: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": d}


STREAMS: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]] = [
    (
        "thinking, text, tool call",
        [
            chunk(thinking="Let "),
            chunk(thinking="me see"),
            chunk("Checking"),
            chunk("", tool_calls=[CALL]),
            {**FINAL, "message": {"role": "assistant", "content": ""}, "done_reason": "stop"},
        ],
        [
            start(5),
            {"type": "ping"},
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": ""},
            },
            delta(0, type="thinking_delta", thinking="Let "),
            delta(0, type="thinking_delta", thinking="me see"),
            {"type": "content_block_stop", "index": 0},
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "text", "text": ""},
            },
            delta(1, type="text_delta", text="Checking"),
            {"type": "content_block_stop", "index": 1},
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {
                    "type": "tool_use",
                    "id": "call_ab12cd34",
                    "name": "get_weather",
                    "input": {},
                },
            },
            delta(2, type="input_json_delta", partial_json='{"city":"Paris"}'),
            {"type": "content_block_stop", "index": 2},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"input_tokens": 7, "output_tokens": 3},
            },
            {"type": "message_stop"},
        ],
    ),
    (
        "text ending in the done chunk, max_tokens",
        [
            chunk("Hel"),
            {**FINAL, "message": {"role": "assistant", "content": "lo"}, "done_reason": "length"},
        ],
        [
            start(5),
            {"type": "ping"},
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            delta(0, type="text_delta", text="Hel"),
            delta(0, type="text_delta", text="lo"),
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
                "usage": {"input_tokens": 7, "output_tokens": 3},
            },
            {"type": "message_stop"},
        ],
    ),
    (
        "a single done chunk with a known prompt count",
        [{**FINAL, "message": {"role": "assistant", "content": "ok"}, "done_reason": "stop"}],
        [
            start(7),
            {"type": "ping"},
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            delta(0, type="text_delta", text="ok"),
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"input_tokens": 7, "output_tokens": 3},
            },
            {"type": "message_stop"},
        ],
    ),
    (
        "a native error ends the stream",
        [chunk("x"), {"error": "runner crashed"}, FINAL],
        [
            start(5),
            {"type": "ping"},
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            delta(0, type="text_delta", text="x"),
            {"type": "error", "error": {"type": "api_error", "message": "runner crashed"}},
        ],
    ),
]


@pytest.mark.parametrize(("name", "chunks", "expected"), STREAMS, ids=[s[0] for s in STREAMS])
def test_stream(name: str, chunks: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    translator = MessagesStreamTranslator("m", "msg_1", estimated_input_tokens=5)
    assert [e for c in chunks for e in translator.feed(c)] == expected
    assert translator.finished


def test_stream_framing() -> None:
    assert (
        sse_event({"type": "message_stop"})
        == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
        (500, "api_error"),
    ],
)
def test_anthropic_error_for_status(status: int, kind: str) -> None:
    assert anthropic_error_for_status(status, "m") == {
        "type": "error",
        "error": {"type": kind, "message": "m"},
    }


def test_anthropic_error_with_request_id() -> None:
    assert anthropic_error("bad", request_id="req_01") == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "bad"},
        "request_id": "req_01",
    }
