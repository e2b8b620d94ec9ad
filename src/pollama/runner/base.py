"""The runner contract: what the scheduler and engine need from an inference process.

A runner serves one model with fixed load-time settings (:class:`RunnerSpec`). Requests are
token-level: the engine renders and tokenizes the prompt, and the runner streams back pieces of
text with their token ids and, at the end, the counts and timings Ollama reports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class RunnerSpec:
    """Load-time settings. Two requests share a runner only when their specs are equal."""

    model_path: Path
    num_ctx: int
    num_parallel: int = 1
    num_thread: int = 0
    num_batch: int = 512
    adapters: tuple[Path, ...] = ()
    embedding: bool = False  # the runner also serves /embeddings (mean pooling); completions still work


@dataclass
class CompletionRequest:
    # token ids, or text the runner tokenizes itself (the engine sends text when it knows the
    # prompt fits the context; the runner then stops generating at the end of the context)
    prompt: list[int] | str
    n_predict: int
    sampling: dict[str, Any] = field(default_factory=dict)
    stop: list[str] = field(default_factory=list)
    json_schema: dict[str, Any] | None = None
    grammar: str | None = None
    n_probs: int = 0
    n_keep: int = 0


@dataclass
class CompletionChunk:
    """One streamed piece; the last one has ``done=True`` and the totals."""

    content: str = ""
    tokens: list[int] = field(default_factory=list)
    done: bool = False
    stop_type: str = ""  # eos | word | limit
    prompt_n: int = 0
    prompt_ms: float = 0.0
    cache_n: int = 0
    predicted_n: int = 0
    predicted_ms: float = 0.0
    truncated: bool = False
    probs: list[dict[str, Any]] = field(default_factory=list)


class Runner(Protocol):
    spec: RunnerSpec

    @property
    def pid(self) -> int | None: ...

    @property
    def memory_bytes(self) -> int: ...

    def alive(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def tokenize(self, text: str, add_special: bool = True) -> list[int]: ...

    async def detokenize(self, tokens: list[int]) -> str: ...

    def completion(self, req: CompletionRequest) -> AsyncIterator[CompletionChunk]: ...

    async def embed(self, inputs: list[str] | list[list[int]], normalize: bool = True) -> list[list[float]]:
        """One pooled vector per input (text or token ids), in order; one request for the batch."""
        ...
