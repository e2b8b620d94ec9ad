"""Turn a conversation into the prompt text a model expects.

Order of preference (reference §0, §9.5): the model's Go ``TEMPLATE`` layer when it has one, else
the GGUF's Jinja ``tokenizer.chat_template``, else the raw text of the messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pollama.templates.jinja import render_jinja


@dataclass
class TemplateSource:
    go: str | None = None
    jinja: str | None = None
    bos_token: str = ""
    eos_token: str = ""
    adds_bos: bool = False  # the tokenizer prepends BOS itself


def render_chat(
    src: TemplateSource,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    think: bool | None = None,
    think_level: str | None = None,
) -> str:
    """Render ``messages`` (dicts with role/content/…) with an open assistant turn at the end."""
    if src.go is not None:
        from pollama.templates.ollama import render_messages

        return render_messages(src.go, messages, tools=tools,
                               think=think_level if think_level and think is not False else think)
    if src.jinja:
        return render_jinja(
            src.jinja, messages, tools=tools, bos_token=src.bos_token, eos_token=src.eos_token,
            extra={"enable_thinking": bool(think)} if think is not None else None,
        )
    return "\n\n".join(str(m.get("content", "")) for m in messages if m.get("content"))


def render_suffix(src: TemplateSource, prompt: str, suffix: str) -> str:
    """Fill-in-the-middle: needs a Go template that uses ``.Suffix``."""
    from pollama.templates.ollama import render_generate

    return render_generate(src.go or "{{ .Prompt }}", prompt, suffix=suffix)
