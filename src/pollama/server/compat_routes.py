"""OpenAI- and Anthropic-compatible routes: thin adapters over the native engine (reference §2.16, §2.17).

Each handler parses the body with the compatibility schema, translates it to a native request with
the pure functions in :mod:`pollama.openai` / :mod:`pollama.anthropic`, makes one engine call and
translates the result back. Errors, before or during a stream, are rendered in the route's own
envelope: OpenAI's ``{"error": {"message", "type", "param", "code"}}`` under ``/v1/`` and
Anthropic's ``{"type": "error", "error": {...}}`` under ``/v1/messages``.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from pollama.anthropic import translate as anth
from pollama.anthropic.schema import MessagesRequest
from pollama.api.types import ChatRequest, EmbedRequest, GenerateRequest
from pollama.engine import Engine
from pollama.errors import InvalidModelName, ModelNotFound, PollamaError
from pollama.openai import responses as oresp
from pollama.openai import translate as oai
from pollama.openai.schema import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    ResponsesRequest,
    parse_request,
)
from pollama.openai.wire import sse_encode, sse_event
from pollama.server.errors import message_for, status_for
from pollama.server.folding import fold_chunks
from pollama.server.openapi import body_doc
from pollama.server.streaming import DisconnectAwareStream, aclose_quietly, unless_gone
from pollama.types.names import ModelName

log = logging.getLogger("pollama.server")

SSE = "text/event-stream"
JSON = dict[str, Any]
BodyReader = Callable[[Request], Awaitable[Any]]


# ---- error envelopes ---------------------------------------------------------------------------


def is_anthropic(path: str) -> bool:
    return path == "/v1/messages" or path.startswith("/v1/messages/")


def is_compat(path: str) -> bool:
    return path.startswith("/v1/") or path == "/v1"


def compat_error_body(path: str, status: int, message: str) -> JSON:
    """The error body for ``path``'s API (OpenAI or Anthropic) with ``status``."""
    if is_anthropic(path):
        return anth.anthropic_error_for_status(status, message)
    return oai.openai_error_for_status(status, message)


def compat_error_response(path: str, exc: BaseException) -> JSONResponse:
    status = status_for(exc)
    if status >= 500 and not isinstance(exc, PollamaError):
        log.exception("unhandled error", exc_info=exc)
    return JSONResponse(compat_error_body(path, status, message_for(exc)), status_code=status)


# ---- streaming ----------------------------------------------------------------------------------


async def _first(request: Request, chunks: AsyncIterator[JSON]) -> JSON:
    """The first native chunk, produced before the response starts (so errors get a status);
    a client that leaves meanwhile cancels the request."""
    try:
        first: JSON = await unless_gone(request, anext(chunks), chunks)
        return first
    except StopAsyncIteration:
        raise PollamaError("no response") from None


async def _fold(request: Request, first: JSON, chunks: AsyncIterator[JSON], field: str) -> JSON:
    folded: JSON = await unless_gone(request, fold_chunks(first, chunks, field), chunks)
    return folded


def _sse(first: JSON, chunks: AsyncIterator[JSON], feed: Callable[[JSON], list[Any]],
         frame: Callable[[Any], bytes]) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        try:
            for item in feed(first):
                yield frame(item)
            async for chunk in chunks:
                for item in feed(chunk):
                    yield frame(item)
        except Exception as exc:  # mid-stream: the error is the stream's last event
            if not isinstance(exc, PollamaError):
                log.exception("error mid-stream")
            for item in feed({"error": message_for(exc)}):
                yield frame(item)
        finally:
            await aclose_quietly(chunks)

    return DisconnectAwareStream(body(), media_type=SSE, headers={"Cache-Control": "no-cache"})


def _openai_frame(item: Any) -> bytes:
    return sse_encode(item)


def _named_frame(item: Any) -> bytes:
    return sse_event(item)


# ---- routes -------------------------------------------------------------------------------------


def compat_router(engine: Engine, read_body: BodyReader, schemas: dict[str, Any]) -> APIRouter:
    """The ``/v1`` routes. ``read_body`` enforces the server's size limit and decodes JSON."""
    router = APIRouter()

    def native_chat(body: JSON) -> ChatRequest:
        return ChatRequest.parse_body(body)

    @router.post("/v1/chat/completions", openapi_extra=body_doc(ChatCompletionRequest, schemas))
    async def chat_completions(request: Request) -> Response:
        req = parse_request(ChatCompletionRequest, await read_body(request))
        chunks = await engine.chat(native_chat(oai.chat_request_to_native(req)))
        rid, created = f"chatcmpl-{random.randint(0, 999)}", int(time.time())
        first = await _first(request, chunks)
        if req.stream:
            include = bool(req.stream_options and req.stream_options.include_usage)
            tr = oai.ChatStreamTranslator(req.model, rid, created, include)
            return _sse(first, chunks, tr.feed, _openai_frame)
        final = await _fold(request, first, chunks, "message")
        return JSONResponse(oai.native_chat_to_completion(final, req.model, rid, created))

    @router.post("/v1/completions", openapi_extra=body_doc(CompletionRequest, schemas))
    async def completions(request: Request) -> Response:
        req = parse_request(CompletionRequest, await read_body(request))
        chunks = await engine.generate(GenerateRequest.parse_body(oai.completion_request_to_native(req)))
        rid, created = f"cmpl-{random.randint(0, 999)}", int(time.time())
        first = await _first(request, chunks)
        if req.stream:
            include = bool(req.stream_options and req.stream_options.include_usage)
            tr = oai.CompletionStreamTranslator(req.model, rid, created, include)
            return _sse(first, chunks, tr.feed, _openai_frame)
        final = await _fold(request, first, chunks, "response")
        return JSONResponse(oai.native_generate_to_completion(final, req.model, rid, created))

    @router.get("/v1/models")
    async def models() -> Response:
        return JSONResponse(oai.native_tags_to_models(engine.list_models()))

    @router.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> Response:
        try:
            wanted = ModelName.parse(model_id)
        except InvalidModelName:
            raise ModelNotFound(model_id, f'model "{model_id}" not found') from None
        for m in engine.list_models()["models"]:
            if ModelName.parse(m["model"]) == wanted:
                return JSONResponse(oai.model_to_openai(model_id, m.get("modified_at")))
        raise ModelNotFound(model_id, f'model "{model_id}" not found')

    @router.post("/v1/embeddings", openapi_extra=body_doc(EmbeddingRequest, schemas))
    async def embeddings(request: Request) -> Response:
        req = parse_request(EmbeddingRequest, await read_body(request))
        native = await engine.embed(EmbedRequest.parse_body(oai.embedding_request_to_native(req)))
        return JSONResponse(oai.native_embed_to_embeddings(native, req.model, req.encoding_format))

    @router.post("/v1/responses", openapi_extra=body_doc(ResponsesRequest, schemas))
    async def responses(request: Request) -> Response:
        req = parse_request(ResponsesRequest, await read_body(request))
        chunks = await engine.chat(native_chat(oresp.responses_request_to_native(req)))
        rid, item = f"resp_{secrets.token_hex(12)}", f"msg_{secrets.token_hex(12)}"
        created = int(time.time())
        first = await _first(request, chunks)
        if req.stream:
            tr = oresp.ResponsesStreamTranslator(req, rid, item, created)
            return _sse(first, chunks, tr.feed, _named_frame)
        final = await _fold(request, first, chunks, "message")
        return JSONResponse(oresp.native_chat_to_response(final, req, rid, item, created, int(time.time())))

    @router.post("/v1/messages", openapi_extra=body_doc(MessagesRequest, schemas))
    async def messages(request: Request) -> Response:
        req = parse_request(MessagesRequest, await read_body(request))
        body = anth.messages_request_to_native(req)
        if body.get("think") is not None and _cannot_think(engine, req.model):
            body.pop("think")  # relaxed on this endpoint, as in Ollama
        chunks = await engine.chat(native_chat(body))
        mid = f"msg_{secrets.token_hex(12)}"
        first = await _first(request, chunks)
        if req.stream:
            tr = anth.MessagesStreamTranslator(req.model, mid, anth.estimate_input_tokens(req))
            return _sse(first, chunks, tr.feed, _named_frame)
        final = await _fold(request, first, chunks, "message")
        return JSONResponse(anth.native_chat_to_message(final, req.model, mid))

    return router


def _cannot_think(engine: Engine, name: str) -> bool:
    try:
        return "thinking" not in engine.resolve(name).capabilities()
    except PollamaError:
        return False  # the chat call reports the missing model in its own words
