"""The HTTP server: Ollama's native API (and, mounted beside it, the compatibility APIs).

Handlers are adapters: parse the body into a wire model, make one engine call, render. Errors
propagate to one handler that uses ``server/errors.py``'s table. Streams are NDJSON; the first
chunk is produced before the response starts, so an error that happens before any output (an
unknown model, a full queue, a runner that fails to load) gets its proper HTTP status — and
facts known by then (a truncated prompt) go into response headers. After that, an error becomes
the stream's last line, ``{"error": "..."}``.

A client that goes away cancels its generation at once, whether it is waiting in the queue, waiting
for a non-streamed answer, or reading a stream: the cancellation runs down the engine's generator
into the runner's HTTP stream, which closes, and llama.cpp stops that slot.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from pollama import OLLAMA_COMPAT_VERSION
from pollama.api.types import (
    ChatRequest,
    CreateRequest,
    CopyRequest,
    EmbeddingsRequest,
    EmbedRequest,
    GenerateRequest,
    ModelRequest,
)
from pollama.engine import Engine
from pollama.engine.streams import Notes
from pollama.errors import InvalidRequest, PollamaError
from pollama.server.compat_routes import compat_error_body, compat_error_response, compat_router, is_compat
from pollama.server.errors import BodyTooLarge, message_for, status_for
from pollama.server.folding import fold_chunks
from pollama.server.middleware import install_middleware
from pollama.server.openapi import body_doc, install_schemas
from pollama.server.streaming import DisconnectAwareStream, aclose_quietly as _aclose, unless_gone

log = logging.getLogger("pollama.server")

NDJSON = "application/x-ndjson"


async def read_json(request: Request, limit: int) -> Any:
    """Read and decode a JSON body, enforcing the size limit while reading."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"request body too large: {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body too large: exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidRequest("missing request body")
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise InvalidRequest("invalid character in request body: not valid UTF-8") from None
    except json.JSONDecodeError as e:
        raise InvalidRequest(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None


def error_response(exc: BaseException) -> JSONResponse:
    status = 413 if isinstance(exc, BodyTooLarge) else status_for(exc)
    if status >= 500 and not isinstance(exc, PollamaError):
        log.exception("unhandled error", exc_info=exc)
    return JSONResponse({"error": message_for(exc)}, status_code=status)


def _line(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


async def stream_or_fold(
    chunks: AsyncIterator[dict[str, Any]], stream: bool, fold: str | None, request: Request | None = None
) -> Response:
    """Stream NDJSON, or fold the chunks into the final object (``fold`` names the text field).

    With ``request``, a client that disconnects before the response starts cancels the work
    (:class:`RequestCanceled`) instead of leaving it queued or generating for nobody.
    """
    try:
        first = await unless_gone(request, anext(chunks), chunks)
    except StopAsyncIteration:
        return JSONResponse({"error": "no response"}, status_code=500)
    headers = notes_headers(getattr(chunks, "notes", None))
    if not stream:
        return JSONResponse(await unless_gone(request, fold_chunks(first, chunks, fold), chunks), headers=headers)

    async def body() -> AsyncIterator[bytes]:
        try:
            yield _line(first)
            async for c in chunks:
                yield _line(c)
        except Exception as exc:  # mid-stream: the error is the last line
            if not isinstance(exc, PollamaError):
                log.exception("error mid-stream")
            yield _line({"error": message_for(exc)})
        finally:
            await _aclose(chunks)

    return DisconnectAwareStream(body(), media_type=NDJSON, headers=headers)


def notes_headers(notes: Notes | None) -> dict[str, str]:
    """Response headers for what the engine learned before the first chunk (pollama extensions)."""
    t = notes.truncation if notes is not None else None
    if t is None:
        return {}
    parts = [f"{k}={v}" for k, v in vars(t).items() if v]
    return {"X-Pollama-Truncated": ", ".join(parts)}


def create_app(engine: Engine) -> FastAPI:
    settings = engine.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.close()

    app = FastAPI(title="pollama", version=OLLAMA_COMPAT_VERSION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.engine = engine
    install_middleware(app, settings)

    schemas: dict[str, Any] = {}

    def doc(model: Any) -> dict[str, Any]:
        return body_doc(model, schemas)

    @app.exception_handler(PollamaError)
    async def _domain(request: Request, exc: PollamaError) -> JSONResponse:
        if is_compat(request.url.path):
            return compat_error_response(request.url.path, exc)
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if is_compat(request.url.path):
            message = {404: "404 page not found", 405: "405 method not allowed"}.get(exc.status_code, str(exc.detail))
            return JSONResponse(compat_error_body(request.url.path, exc.status_code, message),
                                status_code=exc.status_code)
        if exc.status_code == 404:
            return PlainTextResponse("404 page not found", status_code=404)
        if exc.status_code == 405:
            return PlainTextResponse("405 method not allowed", status_code=405)
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code)

    async def body(request: Request) -> Any:
        return await read_json(request, settings.max_body)

    @app.get("/")
    @app.head("/", include_in_schema=False)
    async def root() -> Response:
        return PlainTextResponse("Ollama is running")

    @app.get("/api/version")
    @app.head("/api/version", include_in_schema=False)
    async def version() -> Response:
        return JSONResponse({"version": OLLAMA_COMPAT_VERSION})

    @app.get("/api/tags")
    @app.head("/api/tags", include_in_schema=False)
    async def tags() -> Response:
        return JSONResponse(engine.list_models())

    @app.get("/api/ps")
    async def ps() -> Response:
        return JSONResponse(engine.ps())

    @app.post("/api/show", openapi_extra=doc(ModelRequest))
    async def show(request: Request) -> Response:
        req = ModelRequest.parse_body(await body(request))
        return JSONResponse(engine.show(req.target, verbose=req.verbose, system=req.system))

    @app.post("/api/generate", openapi_extra=doc(GenerateRequest))
    async def generate(request: Request) -> Response:
        req = GenerateRequest.parse_body(await body(request))
        chunks = await engine.generate(req)
        return await stream_or_fold(chunks, req.stream is not False, "response", request)

    @app.post("/api/chat", openapi_extra=doc(ChatRequest))
    async def chat(request: Request) -> Response:
        req = ChatRequest.parse_body(await body(request))
        chunks = await engine.chat(req)
        return await stream_or_fold(chunks, req.stream is not False, "message", request)

    @app.post("/api/copy", openapi_extra=doc(CopyRequest))
    async def copy(request: Request) -> Response:
        req = CopyRequest.parse_body(await body(request))
        engine.copy(req.source, req.destination)
        return Response(status_code=200)

    @app.delete("/api/delete", openapi_extra=doc(ModelRequest))
    async def delete(request: Request) -> Response:
        req = ModelRequest.parse_body(await body(request))
        await engine.delete(req.target)
        return Response(status_code=200)

    @app.post("/api/pull", openapi_extra=doc(ModelRequest))
    async def pull(request: Request) -> Response:
        req = ModelRequest.parse_body(await body(request))
        progress = await engine.pull(req.target, insecure=req.insecure)
        return await stream_or_fold(progress, req.stream is not False, None)

    @app.head("/api/blobs/{digest}")
    async def head_blob(digest: str) -> Response:
        if engine.has_blob(digest):
            return Response(status_code=200)
        return JSONResponse({"error": f'blob "{digest}" not found'}, status_code=404)

    @app.post("/api/blobs/{digest}")
    async def post_blob(digest: str, request: Request) -> Response:
        declared = request.headers.get("content-length")
        created = await engine.upload_blob(digest, request.stream(),
                                           int(declared) if declared and declared.isdigit() else None)
        return Response(status_code=201 if created else 200)

    @app.post("/api/create")
    async def create(request: Request) -> Response:
        req = CreateRequest.parse_body(await body(request))
        progress = await engine.create(req)
        return await stream_or_fold(progress, req.stream is not False, None)

    @app.post("/api/push")
    async def push(request: Request) -> Response:
        req = ModelRequest.parse_body(await body(request))
        progress = await engine.push(req.target, insecure=req.insecure)
        return await stream_or_fold(progress, req.stream is not False, None)
    @app.post("/api/embed", openapi_extra=doc(EmbedRequest))
    async def embed(request: Request) -> Response:
        req = EmbedRequest.parse_body(await body(request))
        return JSONResponse(await engine.embed(req))

    @app.post("/api/embeddings", openapi_extra=doc(EmbeddingsRequest))
    async def embeddings(request: Request) -> Response:
        req = EmbeddingsRequest.parse_body(await body(request))
        return JSONResponse(await engine.embeddings(req))

    app.include_router(compat_router(engine, body, schemas))
    install_schemas(app, schemas)

    return app
