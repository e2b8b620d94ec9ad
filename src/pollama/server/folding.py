"""Fold a native chunk stream into the one object a non-streaming request gets (reference §2.2, §2.3)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any


async def fold_chunks(first: dict[str, Any], rest: AsyncIterator[dict[str, Any]], fold: str | None) -> dict[str, Any]:
    """Concatenate text fields (``fold`` names ``response`` or ``message``), gather tool calls
    and logprobs, and keep the final chunk's metrics."""
    items = [first]
    async for c in rest:
        items.append(c)
    final = dict(items[-1])
    if fold == "response":
        final["response"] = "".join(i.get("response", "") for i in items)
        for key in ("thinking",):
            joined = "".join(i.get(key, "") for i in items)
            if joined:
                final[key] = joined
        lp = [x for i in items for x in i.get("logprobs", [])]
        if lp:
            final["logprobs"] = lp
    elif fold == "message":
        msg = dict(final.get("message", {"role": "assistant"}))
        msg["content"] = "".join(i.get("message", {}).get("content", "") for i in items)
        thinking = "".join(i.get("message", {}).get("thinking", "") or "" for i in items)
        if thinking:
            msg["thinking"] = thinking
        calls = [tc for i in items for tc in (i.get("message", {}).get("tool_calls") or [])]
        if calls:
            msg["tool_calls"] = calls
        final["message"] = msg
        lp = [x for i in items for x in i.get("logprobs", [])]
        if lp:
            final["logprobs"] = lp
    return final
