"""generate and chat: resolve the model, fit the prompt, run it, and shape Ollama's responses.

Both operations return an async iterator of native response dicts (the streaming chunks; the last
one has ``done: true``). The server decides whether to stream them or fold them into one object.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import random
import string
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pollama.api.types import ChatRequest, GenerateRequest, Message
from pollama.engine.streams import Notes, StreamRegistry
from pollama.engine.timefmt import rfc3339_utc_now
from pollama.errors import (
    ContextOverflow,
    InvalidRequest,
    ModelNotFound,
    RunnerError,
    UnsupportedCapability,
)
from pollama.engine.parsers import OutputParser, ThinkingParser, ToolCallParser
from pollama.engine.structured import check_tools, runner_schema, tool_choice_schema, tool_names
from pollama.runner.base import CompletionRequest, RunnerSpec
from pollama.sched.memory import estimate_model_memory
from pollama.sched.scheduler import Loaded
from pollama.store.model import Model
from pollama.templates.prompt import TemplateSource, render_chat, render_suffix
from pollama.types.duration import parse_keep_alive
from pollama.types.options import LEGACY_OPTIONS, RUNNER_OPTIONS, default_options, merge_options

log = logging.getLogger("pollama.engine")

VALID_ROLES = ("system", "user", "assistant", "tool")
THINK_LEVELS = ("high", "medium", "low", "max")


@dataclass
class Prepared:
    """A request resolved against its model: options, runner spec, messages."""

    model: Model
    options: dict[str, Any]
    spec: RunnerSpec
    keep_alive: float | None
    started: float = field(default_factory=time.perf_counter)
    notes: Notes = field(default_factory=Notes)  # truncation etc., known before the first chunk


def _done_reason(stop_type: str) -> str:
    return "length" if stop_type == "limit" else "stop"


def _validate_format(fmt: Any) -> dict[str, Any] | None:
    """``format`` → the runner's ``json_schema`` (validated up front, see engine/structured.py)."""
    return runner_schema(fmt)


def _check_images(images: list[str] | None, where: str) -> None:
    """Images travel as base64 in JSON; anything else is refused as Go's decoder does."""
    for i, img in enumerate(images or []):
        try:
            base64.b64decode(img, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest(f"illegal base64 data in {where} image {i}") from None


def _validate_think(think: Any) -> bool | str | None:
    if think is None or isinstance(think, bool):
        return think
    if isinstance(think, str):
        if think in THINK_LEVELS:
            return think
        raise InvalidRequest(f'invalid think value: "{think}" (must be "high", "medium", "low", "max", true, or false)')
    raise InvalidRequest(f"think must be a boolean or string ({think!r})")


class InferenceMixin:
    """Methods of :class:`pollama.engine.Engine` that run the model."""

    # provided by Engine
    settings: Any
    scheduler: Any
    streams: StreamRegistry
    runner_verbose: bool

    def resolve(self, name: str, not_found: str | None = None) -> Model:
        raise NotImplementedError  # provided by Engine

    # ---- preparation -------------------------------------------------------------------

    def prepare(self, model: Model, options: dict[str, Any] | None, keep_alive: Any) -> Prepared:
        if model.model_path is None:
            raise InvalidRequest(f"{model.name.display} has no model layer")
        defaults = {**default_options(), "num_ctx": self.settings.default_num_ctx}
        opts, ignored = merge_options(defaults, model.params, options)
        for key in ignored:
            if key not in LEGACY_OPTIONS:
                log.warning("invalid option provided: %s", key)
        num_ctx = int(opts["num_ctx"])
        train = model.train_ctx
        if num_ctx < 4:
            num_ctx = 4
        requested = (options or {}).get("num_ctx") is not None
        if train and num_ctx > train and not requested:
            num_ctx = train  # the server default (or a Modelfile's) is capped, as Ollama does
        if train and num_ctx > train:
            raise InvalidRequest(
                f"num_ctx {num_ctx} exceeds the model's trained context length of {train} tokens; "
                f"use a value of at most {train}"
            )
        opts["num_ctx"] = num_ctx
        threads = int(opts.get("num_thread") or 0) or self.settings.num_threads
        spec = RunnerSpec(
            model_path=model.model_path,
            num_ctx=num_ctx,
            num_parallel=max(1, self.settings.num_parallel),
            num_thread=threads,
            num_batch=int(opts.get("num_batch") or 512),
            adapters=tuple(model.adapters),
            embedding=True,  # one runner per model serves generation and embeddings, as in Ollama
        )
        return Prepared(model=model, options=opts, spec=spec, keep_alive=parse_keep_alive(keep_alive))

    def _acquire(self, p: Prepared) -> Any:
        m = p.model
        info = {"name": m.name.display, "model": m.name.display, "digest": m.digest, "details": m.details()}
        try:
            estimate = estimate_model_memory(m.gguf, m.model_path.stat().st_size if m.model_path else 0,
                                             p.spec.num_ctx, p.spec.num_parallel)
        except OSError:
            estimate = 0
        return self.scheduler.acquire(str(p.spec.model_path), p.spec, info, p.keep_alive, estimate)

    def _template_source(self, model: Model, override: str | None = None) -> TemplateSource:
        md = model.gguf.metadata
        tokens = md.get("tokenizer.ggml.tokens")

        def tok(key: str) -> str:
            i = md.get(key)
            if isinstance(i, int) and isinstance(tokens, list) and 0 <= i < len(tokens):
                return str(tokens[i])
            return ""

        return TemplateSource(
            go=override if override is not None else model.template,
            jinja=model.jinja_template,
            bos_token=tok("tokenizer.ggml.bos_token_id"),
            adds_bos=md.get("tokenizer.ggml.add_bos_token") is True,
            eos_token=tok("tokenizer.ggml.eos_token_id"),
        )

    # ---- load / unload -----------------------------------------------------------------

    async def _load_or_unload(self, p: Prepared, req_model: str, chat: bool) -> dict[str, Any]:
        if p.keep_alive == 0:
            await self.scheduler.unload(str(p.spec.model_path))
            reason = "unload"
        else:
            async with self._acquire(p):
                pass
            reason = "load"
        out: dict[str, Any] = {"model": req_model, "created_at": rfc3339_utc_now()}
        if chat:
            out["message"] = {"role": "assistant", "content": ""}
        else:
            out["response"] = ""
        out.update({"done": True, "done_reason": reason})
        return out

    # ---- generate ----------------------------------------------------------------------

    async def generate(self, req: GenerateRequest) -> AsyncIterator[dict[str, Any]]:
        """Validate eagerly (errors before the first byte), then return the chunk stream."""
        if not req.model.strip():
            raise ModelNotFound("", "model '' not found")
        model = self.resolve(req.model)
        p = self.prepare(model, req.options, req.keep_alive)
        fmt = _validate_format(req.format)
        think = _effective_think(_validate_think(req.think), model, fmt)
        if req.raw and (req.template or req.system or req.context):
            raise InvalidRequest("raw mode does not support template, system, or context")
        if req.think and "thinking" not in model.capabilities():
            raise UnsupportedCapability(f'"{req.model}" does not support thinking')
        if "completion" not in model.capabilities():
            raise UnsupportedCapability(f'"{req.model}" does not support generate')
        if req.suffix and "insert" not in model.capabilities():
            raise UnsupportedCapability(f"{model.name.full} does not support insert")
        _check_images(req.images, "images")
        if req.images and "vision" not in model.capabilities():
            raise UnsupportedCapability(f"{model.name.full} does not support images")
        if not 0 <= req.top_logprobs <= 20:
            raise InvalidRequest("top_logprobs must be between 0 and 20")
        if not req.prompt and not req.suffix:
            return _once(await self._load_or_unload(p, req.model, chat=False))

        src = self._template_source(model, req.template)
        if req.raw:
            text = req.prompt
        elif req.suffix:
            text = render_suffix(src, req.prompt, req.suffix)
        else:
            msgs: list[dict[str, Any]] = []
            system = req.system if req.system is not None else model.system
            if system:
                msgs.append({"role": "system", "content": system})
            if not req.context:
                msgs.extend(model.messages)
            msgs.append({"role": "user", "content": req.prompt})
            text = render_chat(src, msgs, think=think)
        parser = self._thinking_parser(model, src, think, text, fmt, req.raw)
        return self.streams.wrap(self._run(p, req.model, text, fmt=fmt, context=req.context, chat=False,
                                           want_context=not req.raw, truncate=req.truncate, logprobs=req.logprobs,
                                           top_logprobs=req.top_logprobs, src=src, parser=OutputParser(parser, None)),
                                 p.notes)

    # ---- chat --------------------------------------------------------------------------

    async def chat(self, req: ChatRequest) -> AsyncIterator[dict[str, Any]]:
        if not req.model.strip():
            raise InvalidRequest("model is required")
        model = self.resolve(req.model)
        p = self.prepare(model, req.options, req.keep_alive)
        fmt = _validate_format(req.format)
        requested_think = _validate_think(req.think)
        think = _effective_think(requested_think, model, fmt)
        tools = check_tools(req.tools)
        if req.tool_choice == "none":
            tools = []
        forced = tool_choice_schema(tools, req.tool_choice) if tools else None
        if forced is not None and fmt is not None:
            raise InvalidRequest('format cannot be combined with tool_choice "required" or a named function')
        for i, m in enumerate(req.messages):
            role = m.role.lower()
            if role not in VALID_ROLES:
                raise InvalidRequest(f"invalid role '{m.role}' in message {i}: must be one of system, user, assistant, tool")
        if "completion" not in model.capabilities():
            raise UnsupportedCapability(f'"{req.model}" does not support chat')
        if tools and "tools" not in model.capabilities():
            raise UnsupportedCapability(f"{model.name.full} does not support tools")
        if requested_think and "thinking" not in model.capabilities():
            raise UnsupportedCapability(f'"{req.model}" does not support thinking')
        for i, m in enumerate(req.messages):
            _check_images(m.images, f"message {i}")
        if any(m.images for m in req.messages) and "vision" not in model.capabilities():
            raise UnsupportedCapability(f"{model.name.full} does not support images")
        if not 0 <= req.top_logprobs <= 20:
            raise InvalidRequest("top_logprobs must be between 0 and 20")
        if not req.messages:
            return _once(await self._load_or_unload(p, req.model, chat=True))
        msgs = list(model.messages) + [_message_dict(m) for m in req.messages]
        if model.system and (not req.messages or req.messages[0].role.lower() != "system"):
            msgs.insert(0, {"role": "system", "content": model.system})
        src = self._template_source(model)
        return self.streams.wrap(
            self._run_chat(p, req, msgs, src, fmt if forced is None else forced, think, tools, forced is not None),
            p.notes)

    async def _run_chat(self, p: Prepared, req: ChatRequest, msgs: list[dict[str, Any]], src: TemplateSource,
                        fmt: dict[str, Any] | None, think: bool | str | None, tools: list[dict[str, Any]],
                        forced: bool) -> AsyncIterator[dict[str, Any]]:
        async with self._acquire(p) as entry:
            text = await self._fit_messages(entry, p, msgs, src, tools or None, think, req.truncate)
            thinking = self._thinking_parser(p.model, src, think, text, fmt, False)
            calls = ToolCallParser(src.tool_call_tag(), tool_names(tools), forced=forced) if tools else None
            async for chunk in self._stream(entry, p, req.model, text, fmt=fmt, context=None, chat=True,
                                            want_context=False, truncate=req.truncate, logprobs=req.logprobs,
                                            top_logprobs=req.top_logprobs, src=src,
                                            parser=OutputParser(thinking, calls)):
                yield chunk

    @staticmethod
    def _thinking_parser(model: Model, src: TemplateSource, think: bool | str | None, text: str,
                         fmt: Any, raw: bool) -> ThinkingParser | None:
        """A parser for the model's think tags when thinking is on (and output is not constrained)."""
        if raw or fmt is not None or not think or "thinking" not in model.capabilities():
            return None
        tags = src.think_tags()
        return ThinkingParser(tags, in_thinking=text.rstrip().endswith(tags[0]))

    async def _fit_messages(self, entry: Loaded, p: Prepared, msgs: list[dict[str, Any]], src: TemplateSource,
                            tools: Any, think: Any, truncate: bool | None) -> str:
        """Drop the oldest non-system messages until the prompt fits ``num_ctx`` (§9.4)."""
        num_ctx = p.options["num_ctx"]
        t = think
        text = render_chat(src, msgs, tools=tools, think=t)
        if truncate is False or surely_fits(text, num_ctx):
            return text
        n = len(await entry.runner.tokenize(text))
        start = 0
        last_user = len(msgs) - 1
        while n >= num_ctx and start < last_user:
            start += 1
            kept = [m for m in msgs[:start] if m.get("role") == "system"] + msgs[start:]
            text = render_chat(src, kept, tools=tools, think=t)
            n = len(await entry.runner.tokenize(text))
        if start:
            log.warning("dropped %d oldest message(s) to fit the prompt into num_ctx=%d", start, num_ctx)
            p.notes.truncated().dropped_messages = start
        return text

    # ---- running -----------------------------------------------------------------------

    async def _run(self, p: Prepared, req_model: str, text: str, **kw: Any) -> AsyncIterator[dict[str, Any]]:
        async with self._acquire(p) as entry:
            async for chunk in self._stream(entry, p, req_model, text, **kw):
                yield chunk

    async def _stream(self, entry: Loaded, p: Prepared, req_model: str, text: str, *, fmt: Any,
                      context: list[int] | None, chat: bool, want_context: bool, truncate: bool | None,
                      logprobs: bool, top_logprobs: int, src: TemplateSource,
                      parser: OutputParser | None = None) -> AsyncIterator[dict[str, Any]]:
        load_ns = int((time.perf_counter() - p.started) * 1e9)
        runner = entry.runner
        opts = p.options
        num_ctx = opts["num_ctx"]
        completion = None
        context_task: asyncio.Future[list[int]] | None = None
        tokens: list[int] = []
        try:
            if src.adds_bos and src.bos_token and text.startswith(src.bos_token):
                text = text[len(src.bos_token):]  # the tokenizer adds BOS itself; don't double it
            num_keep = int(opts.get("num_keep", 4))
            num_predict = int(opts.get("num_predict", -1))
            prompt: list[int] | str
            if context or not surely_fits(text, num_ctx):
                tokens = await runner.tokenize(text)
                if context:
                    tokens = list(context) + tokens
                tokens = self._fit_tokens(tokens, num_ctx, num_keep, truncate, p.notes)
                remaining = num_ctx - len(tokens)
                prompt = tokens
                n_predict = remaining if num_predict < 0 else min(num_predict, remaining)
            else:
                # The prompt fits whatever it tokenizes to: llama.cpp tokenizes it itself (one
                # round trip less before the first token) and stops at the end of the context.
                # The prompt's tokens are only needed for ``context``, at the end: counted meanwhile.
                prompt = text
                n_predict = num_predict if num_predict >= 0 else -1  # -1: until the context is full
                if want_context:
                    context_task = asyncio.ensure_future(runner.tokenize(text))
            creq = CompletionRequest(
                prompt=prompt, n_predict=n_predict, sampling=_sampling(opts, num_ctx),
                stop=list(opts.get("stop") or []), n_keep=num_keep,
                n_probs=(top_logprobs or 1) if logprobs else 0,
            )
            creq.json_schema = fmt
            parser = parser or OutputParser(None, None)
            generated: list[int] = []
            n_calls = 0
            completion = runner.completion(creq)
            async for c in completion:
                generated.extend(c.tokens)
                events = parser.feed(c.content) if c.content else []
                if c.done:
                    events += parser.flush()
                probs = _logprobs(c.probs, top_logprobs) if logprobs and c.probs else None
                for out in _event_chunks(events, req_model, chat, probs, n_calls):
                    n_calls += len(out.get("message", {}).get("tool_calls") or [])
                    yield out
                    probs = None
                if probs:
                    yield _text_chunk(req_model, chat, "", "", probs)
                if c.done:
                    final: dict[str, Any] = {"model": req_model, "created_at": rfc3339_utc_now()}
                    if chat:
                        final["message"] = {"role": "assistant", "content": ""}
                    else:
                        final["response"] = ""
                    final["done"] = True
                    final["done_reason"] = _done_reason(c.stop_type)
                    if want_context:
                        if context_task is not None:
                            tokens = await context_task
                        final["context"] = tokens + generated
                    final.update(_metrics(p, load_ns, c))
                    final = _drop_zero(final)
                    _add_extensions(final, p.notes, c)
                    log.debug("prompt: %d tokens, %d evaluated, %d reused from the prompt cache",
                              c.prompt_n + c.cache_n, c.prompt_n, c.cache_n)
                    yield final
                    return
        except RunnerError:
            if not runner.alive():
                self.scheduler.mark_dead(entry)
            raise
        finally:
            if context_task is not None:
                if not context_task.done():
                    context_task.cancel()
                elif not context_task.cancelled():
                    context_task.exception()  # retrieved: a failed count is not reported twice
            if completion is not None:  # close the runner's stream now, not when it is collected
                await completion.aclose()  # type: ignore[attr-defined]

    def _fit_tokens(self, tokens: list[int], num_ctx: int, num_keep: int, truncate: bool | None,
                    notes: Notes | None = None) -> list[int]:
        if len(tokens) < num_ctx:
            return tokens
        if truncate is False:
            raise ContextOverflow(len(tokens), num_ctx)
        keep = max(0, min(num_keep, num_ctx // 2))
        tail = num_ctx - 1 - keep
        log.warning("truncating input prompt from %d to %d tokens (num_ctx=%d)", len(tokens), keep + tail, num_ctx)
        if notes is not None:
            t = notes.truncated()
            t.prompt_tokens, t.kept_tokens = len(tokens), keep + tail
        return tokens[:keep] + tokens[len(tokens) - tail:]


def surely_fits(text: str, num_ctx: int) -> bool:
    """True when ``text`` fits ``num_ctx`` whatever it tokenizes to, so counting can be skipped.

    Every token of llama.cpp's tokenizers (BPE, SentencePiece, WordPiece; special tokens too)
    stands for at least one byte of the text, and at most three more are added (BOS, EOS, and
    SentencePiece's leading space): the UTF-8 length plus 3 bounds the count.
    """
    return len(text) * 4 + 3 < num_ctx or len(text.encode("utf-8", "surrogatepass")) + 3 < num_ctx


def _effective_think(think: bool | str | None, model: Model, fmt: Any) -> bool | str | None:
    """Thinking defaults to on for models that can think (§3.3); constrained output skips it.

    Deviation: Ollama runs a thinking model with ``format`` in two passes (unconstrained reasoning,
    then constrained content). pollama constrains from the first token and does not think then.
    """
    if fmt is not None:
        return False if think is not None or "thinking" in model.capabilities() else None
    if think is None and "thinking" in model.capabilities():
        return True
    return think


def _text_chunk(model: str, chat: bool, content: str, thinking: str,
                probs: list[dict[str, Any]] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "created_at": rfc3339_utc_now()}
    if chat:
        out["message"] = {"role": "assistant", "content": content}
        if thinking:
            out["message"]["thinking"] = thinking
    else:
        out["response"] = content
        if thinking:
            out["thinking"] = thinking
    out["done"] = False
    if probs:
        out["logprobs"] = probs
    return out


def _event_chunks(events: list[Any], model: str, chat: bool, probs: list[dict[str, Any]] | None,
                  first_index: int) -> list[dict[str, Any]]:
    """Parser events → native chunks: text (content and thinking together), each tool call alone."""
    out: list[dict[str, Any]] = []
    content = thinking = ""
    index = first_index

    def flush_text() -> None:
        nonlocal content, thinking
        if content or thinking:
            out.append(_text_chunk(model, chat, content, thinking, None))
            content = thinking = ""

    for kind, value in events:
        if kind == "content":
            content += value
        elif kind == "thinking":
            thinking += value
        else:
            flush_text()
            call = {"id": tool_call_id(), "function": {"index": index, "name": value["name"],
                                                       "arguments": value["arguments"]}}
            index += 1
            out.append({"model": model, "created_at": rfc3339_utc_now(),
                        "message": {"role": "assistant", "content": "", "tool_calls": [call]}, "done": False})
    flush_text()
    if out and probs:
        out[0]["logprobs"] = probs
    return out


def _sampling(opts: dict[str, Any], num_ctx: int) -> dict[str, Any]:
    s: dict[str, Any] = {
        "temperature": opts["temperature"], "top_k": opts["top_k"], "top_p": opts["top_p"],
        "min_p": opts["min_p"], "typical_p": opts["typical_p"], "repeat_penalty": opts["repeat_penalty"],
        "repeat_last_n": num_ctx if opts["repeat_last_n"] == -1 else opts["repeat_last_n"],
        "presence_penalty": opts["presence_penalty"], "frequency_penalty": opts["frequency_penalty"],
    }
    seed = int(opts.get("seed", -1))
    if seed >= 0:
        s["seed"] = seed & 0xFFFFFFFF
    return s


def _metrics(p: Prepared, load_ns: int, c: Any) -> dict[str, Any]:
    return {
        "total_duration": int((time.perf_counter() - p.started) * 1e9),
        "load_duration": load_ns,
        "prompt_eval_count": c.prompt_n,
        "prompt_eval_duration": int(c.prompt_ms * 1e6),
        "eval_count": c.predicted_n,
        "eval_duration": int(c.predicted_ms * 1e6),
    }


def _add_extensions(final: dict[str, Any], notes: Notes, c: Any) -> None:
    """pollama's additions to the final chunk (documented in docs/concurrency.md)."""
    if c.cache_n:
        final["prompt_cache_count"] = c.cache_n  # prompt tokens reused from the slot's KV cache
    t = notes.truncation
    if t is not None:
        final["truncated"] = {k: v for k, v in vars(t).items() if v}


def _logprobs(probs: list[dict[str, Any]], top: int) -> list[dict[str, Any]]:
    out = []
    for p in probs:
        item: dict[str, Any] = {"token": p.get("token", ""), "logprob": p.get("logprob", 0.0)}
        if p.get("bytes") is not None:
            item["bytes"] = p["bytes"]
        if top:
            item["top_logprobs"] = [
                {"token": t.get("token", ""), "logprob": t.get("logprob", 0.0), **({"bytes": t["bytes"]} if t.get("bytes") is not None else {})}
                for t in (p.get("top_logprobs") or [])[:top]
            ]
        out.append(item)
    return out


def _drop_zero(d: dict[str, Any]) -> dict[str, Any]:
    for k in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"):
        if not d.get(k):
            d.pop(k, None)
    return d


def _message_dict(m: Message) -> dict[str, Any]:
    d: dict[str, Any] = {"role": m.role.lower(), "content": m.content}
    if m.thinking:
        d["thinking"] = m.thinking
    if m.images:
        d["images"] = m.images
    if m.tool_calls:
        d["tool_calls"] = [tc.model_dump(exclude_none=True) for tc in m.tool_calls]
    if m.tool_name:
        d["tool_name"] = m.tool_name
    if m.tool_call_id:
        d["tool_call_id"] = m.tool_call_id
    return d


def tool_call_id() -> str:
    return "call_" + "".join(random.choices(string.ascii_lowercase + string.digits, k=8))


async def _once(item: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    yield item


__all__ = ["InferenceMixin", "Prepared", "RUNNER_OPTIONS"]
