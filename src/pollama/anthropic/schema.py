"""Anthropic ``POST /v1/messages`` request body (reference §2.17) as pydantic models.

Unknown fields (``metadata``, ``service_tier`` …) are ignored. Required fields default to empty
values here so the translator can answer with Ollama's exact messages (``model is required`` …).
Content blocks stay dicts: the translator checks them and names the faulty block.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pollama.openai.schema import WireModel, parse_request

__all__ = ["MessageParam", "MessagesRequest", "OutputConfig", "ThinkingConfig", "parse_request"]


class MessageParam(WireModel):
    """One conversation turn: ``content`` is a string or a list of content blocks."""

    role: str = "user"
    content: str | list[dict[str, Any]] = ""


class ThinkingConfig(WireModel):
    """``thinking``: ``{"type": "enabled"|"disabled", "budget_tokens": N}`` (budget ignored)."""

    type: str = ""
    budget_tokens: int | None = None


class OutputConfig(WireModel):
    """``output_config``; ``effort`` sets a think level when ``thinking`` is absent."""

    effort: str = ""


class MessagesRequest(WireModel):
    """POST /v1/messages."""

    model: str = ""
    max_tokens: int = 0
    messages: list[MessageParam] = Field(default_factory=list)
    system: str | list[dict[str, Any]] | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: ThinkingConfig | None = None
    output_config: OutputConfig | None = None
