"""Thinking and tool-call parsing over arbitrary chunk boundaries (engine/parsers.py)."""

from __future__ import annotations

import doctest

import pytest

from pollama.engine import embed, parsers, structured
from pollama.engine.parsers import OutputParser, ThinkingParser, ToolCallParser


def run(parser: OutputParser | ThinkingParser | ToolCallParser, text: str, step: int) -> list[tuple[str, object]]:
    events = []
    for i in range(0, len(text), step):
        events += parser.feed(text[i:i + step])
    events += parser.flush()
    merged: list[tuple[str, object]] = []
    for kind, value in events:
        if merged and kind != "tool_call" and merged[-1][0] == kind:
            merged[-1] = (kind, str(merged[-1][1]) + str(value))
        else:
            merged.append((kind, value))
    return merged


@pytest.mark.parametrize("module", [parsers, structured, embed])
def test_doctests(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("step", [1, 2, 3, 7, 100])
def test_thinking_split_at_any_boundary(step: int) -> None:
    text = "  <think>step one\nstep two</think>\n\nThe answer is 4."
    assert run(ThinkingParser(("<think>", "</think>")), text, step) == [
        ("thinking", "step one\nstep two"), ("content", "The answer is 4.")]


def test_thinking_when_prompt_opened_the_tag_and_unterminated() -> None:
    assert run(ThinkingParser(("<think>", "</think>"), in_thinking=True), "still thinking", 4) == [
        ("thinking", "still thinking")]
    assert run(ThinkingParser(("<think>", "</think>")), "no tags <think> here", 3) == [
        ("content", "no tags <think> here")]


@pytest.mark.parametrize("step", [1, 5, 1000])
def test_two_tool_calls_and_text(step: int) -> None:
    text = ('Checking.<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call>\n'
            '<tool_call>{"name": "b", "parameters": "{\\"y\\": [1, 2]}"}</tool_call>')
    assert run(ToolCallParser("<tool_call>", {"a", "b"}), text, step) == [
        ("content", "Checking."), ("tool_call", {"name": "a", "arguments": {"x": 1}}),
        ("tool_call", {"name": "b", "arguments": {"y": [1, 2]}})]


def test_brace_tag_only_when_output_starts_with_json() -> None:
    names = {"f"}
    assert run(ToolCallParser("{", names), ' [{"name": "f", "arguments": {}}]', 2) == [
        ("tool_call", {"name": "f", "arguments": {}})]
    assert run(ToolCallParser("{", names), 'Use {"name": "f"} please', 2) == [("content", 'Use {"name": "f"} please')]
    # nested shape {"f": {...}} and an unknown name (kept as content)
    assert run(ToolCallParser("{", names), '{"f": {"q": "x"}}', 3) == [("tool_call", {"name": "f", "arguments": {"q": "x"}})]
    assert run(ToolCallParser("{", names), '{"name": "g", "arguments": {}}', 3) == [("content", '{"name": "g", "arguments": {}}')]


def test_incomplete_call_is_flushed_as_content() -> None:
    text = 'ok <tool_call>{"name": "f", "argu'
    assert run(ToolCallParser("<tool_call>", {"f"}), text, 4) == [("content", 'ok <tool_call>{"name": "f", "argu')]


def test_thinking_then_tool_call() -> None:
    p = OutputParser(ThinkingParser(("<think>", "</think>")), ToolCallParser("<tool_call>", {"f"}))
    out = run(p, '<think>need f</think><tool_call>{"name":"f","arguments":{"k":true}}</tool_call>', 3)
    assert out == [("thinking", "need f"), ("tool_call", {"name": "f", "arguments": {"k": True}})]


def test_forced_mode_parses_bare_json() -> None:
    p = ToolCallParser("<tool_call>", {"f"}, forced=True)
    assert run(p, '{"name": "f", "arguments": {"a": 1}}', 4) == [("tool_call", {"name": "f", "arguments": {"a": 1}})]


def test_tool_choice_schema() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}},
             {"type": "function", "function": {"name": "g"}}]
    req = structured.tool_choice_schema(tools, "required")
    assert [o["properties"]["name"]["const"] for o in req["anyOf"]] == ["f", "g"]
    named = structured.tool_choice_schema(tools, {"type": "function", "function": {"name": "g"}})
    assert named["properties"]["name"] == {"const": "g"}
    assert structured.tool_choice_schema(tools, "auto") is None
    bad = [{"function": {"name": "h", "parameters": {"type": "object", "properties": {"a": {"type": "nope"}}}}}]
    with pytest.raises(structured.InvalidRequest, match="invalid JSON schema in tools"):
        structured.tool_choice_schema(bad, "required")
