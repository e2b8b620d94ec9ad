"""Tables of Responses API ↔ native pairs for pollama.openai.responses (reference §2.16)."""

from __future__ import annotations

from typing import Any

import pytest

from pollama.errors import InvalidRequest
from pollama.openai.responses import (
    ResponsesStreamTranslator,
    native_chat_to_response,
    responses_request_to_native,
)
from pollama.openai.schema import ResponsesRequest, parse_request
from pollama.openai.wire import sse_event

PNG = "iVBORw0KGgo="


def native(body: dict[str, Any]) -> dict[str, Any]:
    return responses_request_to_native(parse_request(ResponsesRequest, {"model": "m", **body}))


REQUESTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "string input, instructions, defaults",
        {"input": "hi", "instructions": "be brief"},
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ],
            "stream": False,
            "options": {"temperature": 1.0},
        },
    ),
    (
        "options, text.format json_schema, reasoning effort, stream",
        {
            "input": "hi",
            "max_output_tokens": 50,
            "temperature": 0.3,
            "top_p": 0.8,
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
            "reasoning": {"effort": "high"},
            "stream": True,
            "previous_response_id": "ignored",
        },
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "options": {"temperature": 0.3, "top_p": 0.8, "num_predict": 50},
            "format": {"type": "object"},
            "think": "high",
        },
    ),
    (
        "message items: parts joined, developer → system, images",
        {
            "input": [
                {"type": "message", "role": "developer", "content": "sys"},
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "look "},
                        {
                            "type": "input_image",
                            "image_url": f"data:image/jpeg;base64,{PNG}",
                            "detail": "auto",
                        },
                        {"type": "input_text", "text": "here"},
                    ],
                },
            ]
        },
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "look here", "images": [PNG]},
            ],
            "stream": False,
            "options": {"temperature": 1.0},
        },
    ),
    (
        "reasoning + function_call + output round trip; tools flattened",
        {
            "input": [
                {"role": "user", "content": "weather?"},
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [],
                    "encrypted_content": "thinking...",
                },
                {
                    "type": "function_call",
                    "call_id": "call_1",
                    "name": "get_weather",
                    "arguments": '{"city":"Paris"}',
                },
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
                {
                    "type": "function_call_output",
                    "call_id": "call_x",
                    "output": [
                        {"type": "input_text", "text": "a"},
                        {"type": "output_text", "text": "b"},
                    ],
                },
            ],
            "tools": [
                {
                    "type": "function",
                    "name": "get_weather",
                    "description": "d",
                    "parameters": {"type": "object"},
                    "strict": True,
                },
                {
                    "type": "namespace",
                    "name": "fs",
                    "tools": [{"type": "function", "name": "read"}],
                },
                {"type": "web_search"},
            ],
        },
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "function": {
                                "index": 0,
                                "name": "get_weather",
                                "arguments": {"city": "Paris"},
                            },
                        }
                    ],
                    "thinking": "thinking...",
                },
                {
                    "role": "tool",
                    "content": "sunny",
                    "tool_name": "get_weather",
                    "tool_call_id": "call_1",
                },
                {"role": "tool", "content": "ab", "tool_call_id": "call_x"},
            ],
            "stream": False,
            "options": {"temperature": 1.0},
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "d",
                        "parameters": {"type": "object"},
                    },
                },
                {"type": "function", "function": {"name": "fs.read"}},
            ],
        },
    ),
    (
        "assistant text replayed between a call and its output merges into the call message",
        {
            "input": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "output_text", "text": "calling"}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": ""},
                {"role": "assistant", "content": "still here"},
                {"type": "function_call_output", "call_id": "c1", "output": "done"},
            ],
            "tool_choice": "none",
            "tools": [{"type": "function", "name": "f"}],
        },
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": "calling\nstill here",
                    "tool_calls": [
                        {"id": "c1", "function": {"index": 0, "name": "f", "arguments": {}}}
                    ],
                },
                {"role": "tool", "content": "done", "tool_name": "f", "tool_call_id": "c1"},
            ],
            "stream": False,
            "options": {"temperature": 1.0},
        },
    ),
]


@pytest.mark.parametrize(("name", "body", "expected"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_responses_request_to_native(
    name: str, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert native(body) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input": [{"content": "x"}]}, "input item missing required 'type' field"),
        ({"input": [{"type": "mystery"}]}, 'unknown input item type: "mystery"'),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "file inputs are not currently supported",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_video"}]}]},
            "unknown content type: input_video",
        ),
        (
            {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{"}]},
            "failed to parse function call arguments",
        ),
        (
            {"input": "x", "reasoning": {"effort": "huge"}},
            'invalid reasoning value: "huge" (must be "minimal", "low", "medium", "high", '
            '"xhigh", "ultra", "max", or "none")',
        ),
    ],
)
def test_responses_request_errors(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        native(body)
    assert info.value.message == message


REQ = parse_request(ResponsesRequest, {"model": "m", "input": "hi"})
USAGE = {
    "input_tokens": 7,
    "output_tokens": 3,
    "total_tokens": 10,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens_details": {"reasoning_tokens": 0},
}


def response(
    output: list[dict[str, Any]],
    status: str = "completed",
    usage: Any = USAGE,
    completed_at: Any = 1704067200,
) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1700000000,
        "completed_at": completed_at,
        "status": status,
        "incomplete_details": None,
        "model": "m",
        "previous_response_id": None,
        "instructions": None,
        "output": output,
        "error": None,
        "tools": [],
        "tool_choice": "auto",
        "truncation": "disabled",
        "parallel_tool_calls": True,
        "text": {"format": {"type": "text"}},
        "top_p": 1.0,
        "presence_penalty": 0,
        "frequency_penalty": 0,
        "top_logprobs": 0,
        "temperature": 1.0,
        "reasoning": None,
        "usage": usage,
        "max_output_tokens": None,
        "max_tool_calls": None,
        "store": False,
        "background": False,
        "service_tier": "default",
        "metadata": {},
        "safety_identifier": None,
        "prompt_cache_key": None,
    }


FINAL = {
    "model": "m",
    "created_at": "2024-01-01T00:00:00Z",
    "done": True,
    "done_reason": "stop",
    "prompt_eval_count": 7,
    "eval_count": 3,
}
TEXT = {"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}
MESSAGE_ITEM = {
    "id": "msg_1",
    "type": "message",
    "status": "completed",
    "role": "assistant",
    "content": [TEXT],
}
REASONING_ITEM = {
    "id": "rs_resp_1",
    "type": "reasoning",
    "summary": [{"type": "summary_text", "text": "hmm"}],
    "encrypted_content": "hmm",
}
CALL = {"id": "call_1", "function": {"index": 0, "name": "f", "arguments": {"a": 1}}}
CALL_ITEM = {
    "id": "fc_resp_1_0",
    "type": "function_call",
    "status": "completed",
    "call_id": "call_1",
    "name": "f",
    "arguments": '{"a":1}',
}


@pytest.mark.parametrize(
    ("message", "output"),
    [
        ({"role": "assistant", "content": "Hello"}, [MESSAGE_ITEM]),
        (
            {"role": "assistant", "content": "Hello", "thinking": "hmm"},
            [REASONING_ITEM, MESSAGE_ITEM],
        ),
        ({"role": "assistant", "content": "", "tool_calls": [CALL]}, [CALL_ITEM]),
    ],
)
def test_native_chat_to_response(message: dict[str, Any], output: list[dict[str, Any]]) -> None:
    assert native_chat_to_response(
        {**FINAL, "message": message}, REQ, "resp_1", "msg_1", 1700000000
    ) == response(output)


def test_response_echoes_request_parameters() -> None:
    req = parse_request(
        ResponsesRequest,
        {
            "model": "m",
            "input": "x",
            "instructions": "sys",
            "temperature": 0.5,
            "top_p": 0.9,
            "max_output_tokens": 9,
            "reasoning": {"effort": "low"},
            "text": {"format": {"type": "json_schema", "name": "n", "schema": {}}},
            "tools": [{"type": "function", "name": "f"}],
            "tool_choice": "required",
        },
    )
    out = native_chat_to_response(
        {**FINAL, "message": {"content": "Hello"}}, req, "resp_1", "msg_1", 1700000000, 1700000005
    )
    assert out == {
        **response([MESSAGE_ITEM], completed_at=1700000005),
        "instructions": "sys",
        "temperature": 0.5,
        "top_p": 0.9,
        "max_output_tokens": 9,
        "reasoning": {"effort": "low", "summary": None},
        "text": {"format": {"type": "json_schema", "name": "n", "schema": {}}},
        "tools": [{"type": "function", "name": "f"}],
        "tool_choice": "required",
    }


def chunk(content: str = "", **message: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "created_at": "2024-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": content, **message},
        "done": False,
    }


IN_PROGRESS = response([], status="in_progress", usage=None, completed_at=None)


def test_stream_reasoning_then_text() -> None:
    translator = ResponsesStreamTranslator(REQ, "resp_1", "msg_1", 1700000000)
    chunks = [
        chunk(thinking="hm"),
        chunk(thinking="m"),
        chunk("Hel"),
        chunk("lo"),
        {**FINAL, "message": {"role": "assistant", "content": ""}},
    ]
    events = [e for c in chunks for e in translator.feed(c)]
    part0 = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    ids = {"item_id": "msg_1", "output_index": 1, "content_index": 0}
    expected = [
        {"type": "response.created", "response": IN_PROGRESS},
        {"type": "response.in_progress", "response": IN_PROGRESS},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"id": "rs_resp_1", "type": "reasoning", "summary": []},
        },
        {
            "type": "response.reasoning_summary_text.delta",
            "item_id": "rs_resp_1",
            "output_index": 0,
            "summary_index": 0,
            "delta": "hm",
        },
        {
            "type": "response.reasoning_summary_text.delta",
            "item_id": "rs_resp_1",
            "output_index": 0,
            "summary_index": 0,
            "delta": "m",
        },
        {
            "type": "response.reasoning_summary_text.done",
            "item_id": "rs_resp_1",
            "output_index": 0,
            "summary_index": 0,
            "text": "hmm",
        },
        {"type": "response.output_item.done", "output_index": 0, "item": REASONING_ITEM},
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {
                "id": "msg_1",
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            },
        },
        {"type": "response.content_part.added", **ids, "part": part0},
        {"type": "response.output_text.delta", **ids, "delta": "Hel", "logprobs": []},
        {"type": "response.output_text.delta", **ids, "delta": "lo", "logprobs": []},
        {"type": "response.output_text.done", **ids, "text": "Hello", "logprobs": []},
        {"type": "response.content_part.done", **ids, "part": TEXT},
        {"type": "response.output_item.done", "output_index": 1, "item": MESSAGE_ITEM},
        {"type": "response.completed", "response": response([REASONING_ITEM, MESSAGE_ITEM])},
    ]
    assert events == [{**e, "sequence_number": n} for n, e in enumerate(expected)]
    assert translator.finished


def test_stream_function_call_closes_open_text_and_drops_later_text() -> None:
    translator = ResponsesStreamTranslator(REQ, "resp_1", "msg_1", 1700000000)
    chunks = [
        chunk("Hello"),
        chunk("", tool_calls=[CALL]),
        chunk("ignored"),
        {**FINAL, "message": {"content": ""}},
    ]
    events = [e for c in chunks for e in translator.feed(c)]
    ids = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    call_ids = {"item_id": "fc_resp_1_0", "output_index": 1}
    added_call = {**CALL_ITEM, "status": "in_progress", "arguments": ""}
    expected = [
        {"type": "response.created", "response": IN_PROGRESS},
        {"type": "response.in_progress", "response": IN_PROGRESS},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {
                "id": "msg_1",
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            },
        },
        {"type": "response.content_part.added", **ids, "part": {**TEXT, "text": ""}},
        {"type": "response.output_text.delta", **ids, "delta": "Hello", "logprobs": []},
        {"type": "response.output_text.done", **ids, "text": "Hello", "logprobs": []},
        {"type": "response.content_part.done", **ids, "part": TEXT},
        {"type": "response.output_item.done", "output_index": 0, "item": MESSAGE_ITEM},
        {"type": "response.output_item.added", "output_index": 1, "item": added_call},
        {"type": "response.function_call_arguments.delta", **call_ids, "delta": '{"a":1}'},
        {"type": "response.function_call_arguments.done", **call_ids, "arguments": '{"a":1}'},
        {"type": "response.output_item.done", "output_index": 1, "item": CALL_ITEM},
        {"type": "response.completed", "response": response([MESSAGE_ITEM, CALL_ITEM])},
    ]
    assert events == [{**e, "sequence_number": n} for n, e in enumerate(expected)]


def test_stream_error_event() -> None:
    translator = ResponsesStreamTranslator(REQ, "resp_1", "msg_1", 1700000000)
    events = translator.feed({"error": "boom"})
    assert events[-1] == {
        "type": "error",
        "sequence_number": 2,
        "code": None,
        "message": "boom",
        "param": None,
    }
    assert translator.finished and translator.feed(FINAL) == []


def test_sse_event_framing() -> None:
    assert (
        sse_event({"type": "response.output_text.delta", "delta": "é"})
        == (
            "event: response.output_text.delta\n"
            'data: {"type":"response.output_text.delta","delta":"é"}\n\n'
        ).encode()
    )
