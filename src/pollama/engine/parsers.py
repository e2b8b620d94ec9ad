"""Split streamed model output into thinking, content and tool calls (reference §3.2, §3.3).

Both parsers are incremental: :meth:`feed` takes the next piece of text and returns the events
that are certain so far; :meth:`flush` returns the rest at the end of the output. Text that might
be the start of a tag is held back until the next piece decides it.

**Thinking.** Output that starts (after whitespace) with the opening tag, or any output when the
prompt already ends with it, is reasoning until the closing tag; whitespace after the closing tag
is dropped.

>>> p = ThinkingParser(("<think>", "</think>"))
>>> p.feed("<thi") + p.feed("nk>hmm</th") + p.feed("ink>\\n\\nYes") + p.flush()
[('thinking', 'hmm'), ('content', 'Yes')]

**Tool calls** (Ollama's template-driven approach). The tag is the text that opens a call in the
template's ``{{ if .ToolCalls }}`` block (e.g. ``<tool_call>``), or ``{`` when there is none; then
calls are parsed only when the output starts with ``{`` or ``[``. Text before the tag streams as
content; after it, the output is buffered until a complete JSON value holds a call:
``{"name": <tool>, "arguments"|"parameters": {...}}`` (arguments may be a JSON string) or
``{<tool>: {...}}``, searched in nested objects and lists too. Each call is emitted as soon as its
JSON is complete; whatever cannot be read as a call is flushed as content at the end.

>>> t = ToolCallParser("<tool_call>", {"get_weather"})
>>> t.feed('Sure. <tool_') + t.feed('call>\\n{"name": "get_weather", "arguments": {"city": "Paris"}}')
[('content', 'Sure. '), ('tool_call', {'name': 'get_weather', 'arguments': {'city': 'Paris'}})]
>>> t.feed("\\n</tool_call>") + t.flush()
[]
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Literal

Event = tuple[Literal["content", "thinking", "tool_call"], Any]

_DECODER = json.JSONDecoder()


def _partial_tag_len(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkingParser:
    """Separate ``<think>…</think>`` reasoning from the answer, incrementally."""

    def __init__(self, tags: tuple[str, str], *, in_thinking: bool = False) -> None:
        self.open, self.close = tags
        self.state: Literal["start", "thinking", "after", "content"] = "thinking" if in_thinking else "start"
        self.buf = ""

    def feed(self, text: str) -> list[Event]:
        self.buf += text
        out: list[Event] = []
        while self.buf:
            if self.state == "start":
                stripped = self.buf.lstrip()
                if stripped.startswith(self.open):
                    self.buf = stripped[len(self.open):]
                    self.state = "thinking"
                elif self.open.startswith(stripped):
                    break  # could still become the opening tag
                else:
                    self.state = "content"
            elif self.state == "thinking":
                i = self.buf.find(self.close)
                if i >= 0:
                    if i:
                        out.append(("thinking", self.buf[:i]))
                    self.buf = self.buf[i + len(self.close):]
                    self.state = "after"
                    continue
                keep = _partial_tag_len(self.buf, self.close)
                piece = self.buf[: len(self.buf) - keep]
                if piece:
                    out.append(("thinking", piece))
                self.buf = self.buf[len(piece):]
                break
            elif self.state == "after":
                self.buf = self.buf.lstrip()
                if not self.buf:
                    break
                self.state = "content"
            else:
                out.append(("content", self.buf))
                self.buf = ""
        return out

    def flush(self) -> list[Event]:
        rest, self.buf = self.buf, ""
        if not rest:
            return []
        if self.state == "thinking":
            return [("thinking", rest)]
        if self.state == "after":
            rest = rest.lstrip()
        return [("content", rest)] if rest else []


def _find_calls(value: Any, names: set[str]) -> list[dict[str, Any]]:
    """Tool calls inside a decoded JSON value (see the module docstring for the shapes)."""
    if isinstance(value, list):
        return [c for item in value for c in _find_calls(item, names)]
    if not isinstance(value, dict):
        return []
    name = value.get("name")
    if isinstance(name, str) and name in names:
        args = value.get("arguments", value.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                args = None
        if isinstance(args, dict):
            return [{"name": name, "arguments": args}]
    for key, inner in value.items():
        if key in names and isinstance(inner, dict):
            return [{"name": key, "arguments": inner}]
    for inner in value.values():
        found = _find_calls(inner, names)
        if found:
            return found
    return []


class ToolCallParser:
    """Find tool calls in streamed output, by the template's tool-call tag."""

    def __init__(self, tag: str, names: Iterable[str], *, forced: bool = False) -> None:
        self.tag = tag or "{"
        self.names = set(names)
        self.close = "</" + self.tag[1:] if self.tag.startswith("<") and self.tag.endswith(">") else ""
        # "content": before any tag; "calls": after a tag, buffering JSON; "off": plain text only
        self.state: Literal["start", "content", "calls", "off"] = "calls" if forced else "start"
        self.buf = ""
        self.raw = ""  # everything buffered since the tag, flushed as content if no call comes
        self.found = 0

    def feed(self, text: str) -> list[Event]:
        self.buf += text
        out: list[Event] = []
        while self.buf:
            if self.state == "start":
                stripped = self.buf.lstrip()
                if not stripped:
                    break
                if self.tag == "{":
                    self.state = "calls" if stripped[0] in "{[" else "off"
                else:
                    self.state = "content"
            elif self.state == "off":
                out.append(("content", self.buf))
                self.buf = ""
            elif self.state == "content":
                i = self.buf.find(self.tag)
                if i >= 0:
                    if i:
                        out.append(("content", self.buf[:i]))
                    self.buf = self.buf[i + len(self.tag):]
                    self.raw = self.tag
                    self.state = "calls"
                    continue
                keep = _partial_tag_len(self.buf, self.tag)
                piece = self.buf[: len(self.buf) - keep]
                if piece:
                    out.append(("content", piece))
                self.buf = self.buf[len(piece):]
                break
            else:
                if not self._parse_calls(out):
                    break
        return out

    def _parse_calls(self, out: list[Event]) -> bool:
        """Consume one complete JSON value from the buffer; False when more text is needed."""
        text = self.buf
        skip = len(text) - len(text.lstrip())
        for marker in (self.close, self.tag if self.tag != "{" else ""):
            if marker and text[skip:].startswith(marker):
                self.raw += text[: skip + len(marker)]
                self.buf = text[skip + len(marker):]
                return True
        starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
        if not starts:
            return False
        start = min(starts)
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError:
            return False  # incomplete (or not JSON at all: decided at flush)
        calls = _find_calls(value, self.names)
        consumed = text[:end]
        self.buf = text[end:]
        if not calls:
            self.raw += consumed
            return True
        for call in calls:
            out.append(("tool_call", call))
        self.found += len(calls)
        self.raw = ""
        return True

    def flush(self) -> list[Event]:
        rest = self.raw + self.buf
        self.raw = self.buf = ""
        if self.state == "calls":
            leftover = rest
            for marker in (self.close, self.tag):
                if marker and self.found:
                    leftover = leftover.replace(marker, "")
            if self.found and not leftover.strip():
                return []
            return [("content", rest)] if rest else []
        return [("content", rest)] if rest else []


class OutputParser:
    """Thinking first, then tool calls in what remains: one stream of :data:`Event`."""

    def __init__(self, thinking: ThinkingParser | None, tools: ToolCallParser | None) -> None:
        self.thinking = thinking
        self.tools = tools

    def _content(self, events: list[Event], final: bool) -> list[Event]:
        out: list[Event] = []
        for kind, value in events:
            if kind == "content" and self.tools is not None:
                out.extend(self.tools.feed(value))
            else:
                out.append((kind, value))
        if final and self.tools is not None:
            out.extend(self.tools.flush())
        return out

    def feed(self, text: str) -> list[Event]:
        events: list[Event] = self.thinking.feed(text) if self.thinking else [("content", text)]
        return _merge(self._content(events, final=False))

    def flush(self) -> list[Event]:
        events = self.thinking.flush() if self.thinking else []
        return _merge(self._content(events, final=True))


def _merge(events: list[Event]) -> list[Event]:
    """Join adjacent text events of the same kind."""
    out: list[Event] = []
    for kind, value in events:
        if out and kind != "tool_call" and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + value)
        elif kind == "tool_call" or value:
            out.append((kind, value))
    return out
