"""Turn a conversation into the prompt text a model expects.

Order of preference (reference §0, §9.5): the model's Go ``TEMPLATE`` layer when it has one, else
the GGUF's Jinja ``tokenizer.chat_template``, else the raw text of the messages. This module also
answers the two questions output parsing needs about a template: which tag opens a tool call and
which tags surround thinking.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pollama.templates.jinja import render_jinja
from pollama.templates.ollama import OllamaTemplate

DEFAULT_THINK_TAGS = ("<think>", "</think>")


@lru_cache(maxsize=64)
def _parsed(source: str) -> OllamaTemplate:
    return OllamaTemplate.parse(source)


@dataclass
class TemplateSource:
    go: str | None = None
    jinja: str | None = None
    bos_token: str = ""
    eos_token: str = ""
    adds_bos: bool = False  # the tokenizer prepends BOS itself

    def tool_call_tag(self) -> str:
        """The text that opens a tool call in model output (``{`` when the template has none)."""
        if self.go is not None:
            return _parsed(self.go).tool_call_tag
        if self.jinja and "<tool_call>" in self.jinja:
            return "<tool_call>"
        return "{"

    def think_tags(self) -> tuple[str, str]:
        """The tags around reasoning in model output (inferred from a Go template, else ``<think>``)."""
        if self.go is not None:
            tags = _parsed(self.go).think_tags
            if tags:
                return tags
        return DEFAULT_THINK_TAGS


def render_chat(
    src: TemplateSource,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    think: bool | str | None = None,
) -> str:
    """Render ``messages`` (dicts with role/content/…) with an open assistant turn at the end."""
    if src.go is not None:
        return _parsed(src.go).render(messages, tools=tools, think=think)
    if src.jinja:
        return render_jinja(
            src.jinja, messages, tools=tools, bos_token=src.bos_token, eos_token=src.eos_token,
            extra={"enable_thinking": bool(think)} if think is not None else None,
        )
    return "\n\n".join(str(m.get("content", "")) for m in messages if m.get("content"))


def render_suffix(src: TemplateSource, prompt: str, suffix: str) -> str:
    """Fill-in-the-middle: needs a Go template that uses ``.Suffix``."""
    return _parsed(src.go or "{{ .Prompt }}").render([], prompt=prompt, suffix=suffix)
