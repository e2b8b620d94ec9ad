"""``/api/create`` and ``/api/blobs``: build a model from a base model, uploaded files and a
Modelfile's instructions (reference §2.8, §2.9).

The new manifest is the base model's layers (each marked ``from`` the base) with the requested
ones replaced: a GGUF from ``files`` replaces the model layer (the shards of a split GGUF,
``x-00001-of-0000N.gguf`` …, are merged into one model blob first, as Ollama does),
``template``/``system`` replace theirs (an empty system removes it), ``parameters`` merge over the base's (new keys win),
non-empty ``messages`` replace the old ones, ``license`` appends. The config blob is rewritten
from the GGUF. Statuses: ``parsing GGUF``, ``using existing layer sha256:…`` / ``creating new
layer sha256:…``, ``writing manifest``, ``success``. ``quantize`` (``F32``, ``F16``, ``BF16``,
``Q8_0``, ``Q4_K_S``, ``Q4_K_M``, as Ollama) rewrites an F32/F16/BF16 model layer with
llama.cpp's quantizers (:mod:`pollama.store.quantize`) in a child process, streaming
``quantizing F16 model to Q4_K_M`` with ``total``/``completed``.

Deliberate differences from Ollama, all refusals with a clear 400:

* a Go template is not auto-detected from a GGUF's Jinja template: with no TEMPLATE the model's
  own Jinja chat template renders prompts (Ollama ≥ 0.30 does the same at inference time).
* the legacy ``modelfile`` field is accepted, but its FROM/ADAPTER must name a model or a blob
  digest — never a server-side path (files reach the server only through ``/api/blobs``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import tempfile
from contextlib import aclosing
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from pollama.api.types import CreateRequest
from pollama.errors import BlobNotFound, InvalidModelName, InvalidOption, InvalidRequest, ModelNotFound
from pollama.store import manifest as mt
from pollama.store.gguf import GGUFInfo, human_number, read_gguf
from pollama.store.gguf_split import merge_into_store, missing_text, shard_names, split_name
from pollama.store.quantize import check_source, parse_target
from pollama.store.manifest import Layer, Manifest
from pollama.store.store import Store, normalize_digest
from pollama.types.names import ModelName
from pollama.types.options import LEGACY_OPTIONS, OPTIONS, coerce_option

Progress = dict[str, Any]
PullFn = Callable[[str], Awaitable[AsyncGenerator[Progress, None]]]
_DIGEST_ARG = re.compile(r"^sha256[:-][0-9a-fA-F]{64}$")
_ROLES = ("system", "user", "assistant", "tool")
REPLACED_BY_FILES = (mt.MT_MODEL, mt.MT_PROJECTOR)


def check_blob_digest(digest: str) -> str:
    """The ``/api/blobs/:digest`` parameter, validated (``sha256:`` or ``sha256-`` + 64 hex)."""
    if not _DIGEST_ARG.match(digest):
        raise InvalidRequest("invalid digest format")
    return normalize_digest(digest)


async def upload_blob(store: Store, digest: str, chunks: AsyncIterator[bytes], declared: int | None) -> bool:
    """Store an uploaded blob; False (body unread) if it already exists, True once created."""
    want = check_blob_digest(digest)
    if store.has_blob(want):
        return False
    if declared is not None:
        free = shutil.disk_usage(store.root if store.root.exists() else store.root.parent).free
        if declared > free:
            raise InvalidRequest(f"not enough disk space for a blob of {declared} bytes ({free} available)")
    with store.blob_writer() as w:
        async for chunk in chunks:
            w.write(chunk)
        w.commit(want, shown=digest)
    return True


def _relative(name: str) -> str:
    if not name or "\x00" in name:
        raise InvalidRequest("file path must be relative")
    for pure in (PurePosixPath(name), PureWindowsPath(name)):
        if pure.is_absolute() or pure.anchor or ".." in pure.parts:
            raise InvalidRequest("file path must be relative")
    return name


def _file_digests(files: dict[str, Any] | None, store: Store) -> list[tuple[str, str]]:
    out = []
    for name, digest in (files or {}).items():
        _relative(name)
        if not isinstance(digest, str) or not digest:
            raise InvalidRequest("invalid digest format")
        d = check_blob_digest(digest)
        if not store.has_blob(d):
            raise BlobNotFound(d)
        out.append((name, d))
    return out


def _split_groups(files: list[tuple[str, str]]
                  ) -> tuple[list[tuple[str, str]], list[tuple[str, list[str], list[str]]]]:
    """Separate llama.cpp shard sets (``x-00001-of-00003.gguf`` …) from single files: each set
    becomes ``("x.gguf", [digest of shard 1, …], [shard file names])``, checked complete; the
    rest stay as they are."""
    single: list[tuple[str, str]] = []
    sets: dict[tuple[str, int], dict[int, str]] = {}
    for fname, digest in files:
        split = split_name(PurePosixPath(fname).name)
        if split is None:
            single.append((fname, digest))
            continue
        prefix, no, count = split
        shards = sets.setdefault((str(PurePosixPath(fname).parent / prefix), count), {})
        if no in shards or not 1 <= no <= count:
            raise InvalidRequest(f"{fname}: shard {no} of {count} is given twice or out of range")
        shards[no] = digest
    groups = []
    for (prefix, count), shards in sets.items():
        base = PurePosixPath(prefix).name
        names = shard_names(base, count)
        missing = [names[i - 1] for i in range(1, count + 1) if i not in shards]
        if missing:
            raise InvalidRequest(f"split GGUF {base} is incomplete: missing {missing_text(missing)}")
        groups.append((f"{base}.gguf", [shards[i] for i in range(1, count + 1)], names))
    return single, groups


def _gguf_of(store: Store, name: str, digest: str) -> GGUFInfo:
    path = store.blob_path(digest)
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise InvalidRequest("supplied file was not in GGUF format")
    return read_gguf(path)


def _layer_kind(info: GGUFInfo) -> str:
    kind = info.kind.lower()
    if kind == "adapter":
        return mt.MT_ADAPTER
    if kind in ("mmproj", "projector") or info.architecture == "clip":
        return mt.MT_PROJECTOR
    return mt.MT_MODEL


def _parameters(params: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if key in LEGACY_OPTIONS:
            continue
        if key not in OPTIONS:
            raise InvalidRequest(f"unknown parameter '{key}'")
        if key == "stop" and isinstance(value, str):
            value = [value]
        try:
            out[key] = coerce_option(key, value)
        except InvalidOption as e:
            raise InvalidRequest(e.message) from None
    return out


def _messages(messages: list[Any] | None) -> list[dict[str, str]]:
    out = []
    for m in messages or []:
        if not isinstance(m, dict) or not isinstance(m.get("content", ""), str):
            raise InvalidRequest("messages must be objects with a role and string content")
        role = m.get("role")
        if role not in _ROLES:
            raise InvalidRequest('message role must be one of "system", "user", or "assistant"')
        out.append({"role": role, "content": m.get("content", "")})
    return out


def apply_legacy_modelfile(req: CreateRequest) -> None:
    """Fold a legacy ``modelfile`` text into the request; FROM/ADAPTER may not be server paths."""
    from pollama.store.modelfile import parse_modelfile

    if not req.modelfile or req.from_ or req.files:
        return
    mf = parse_modelfile(req.modelfile)
    if not mf.from_:
        raise InvalidRequest("no FROM line")
    ref = mf.from_[0]
    if _DIGEST_ARG.match(ref.lstrip("@")):
        req.files = {"model.gguf": ref.lstrip("@")}
    else:
        try:
            ModelName.parse(ref)
        except InvalidModelName:
            raise InvalidRequest(
                f"FROM {ref[:200]!r}: the server does not read files named in a modelfile; upload the "
                "file with POST /api/blobs/:digest and name it in \"files\" (pollama create does this)"
            ) from None
        req.from_ = ref
    if mf.adapters:
        raise InvalidRequest("ADAPTER in a server-side modelfile is not supported; upload it with /api/blobs")
    for field in ("template", "system", "requires", "renderer", "parser"):
        if getattr(req, field) is None and getattr(mf, field) is not None:
            setattr(req, field, getattr(mf, field))
    req.parameters = {**mf.parameters, **(req.parameters or {})}
    req.messages = req.messages or mf.messages or None
    if req.license is None and mf.licenses:
        req.license = list(mf.licenses)


def validate(req: CreateRequest, store: Store) -> ModelName:
    """Everything that can be refused before streaming starts (so it gets its 400)."""
    if not req.target:
        raise InvalidRequest("model is required")
    try:
        name = ModelName.parse(req.target)
    except InvalidModelName:
        raise InvalidRequest("invalid model name") from None
    quant = req.quantize or req.quantization
    if quant:
        parse_target(quant)  # an unsupported type: Ollama's 400 before streaming
    apply_legacy_modelfile(req)
    if not req.from_ and not req.files:
        raise InvalidRequest("neither 'from' or 'files' was specified")
    if req.from_:
        try:
            ModelName.parse(req.from_)
        except InvalidModelName:
            raise InvalidRequest(f"invalid model name: {req.from_[:200]}") from None
    if req.adapters and len(req.adapters) > 1:
        raise InvalidRequest("only one adapter is currently supported")
    _split_groups(_file_digests(req.files, store))  # an incomplete split GGUF: 400 before streaming
    _file_digests(req.adapters, store)
    if req.template is not None:
        from pollama.templates.ollama import OllamaTemplate

        OllamaTemplate.parse(req.template)  # TemplateError is a 400 "template error: …"
    _parameters(req.parameters)
    _messages(req.messages)
    return name


async def create_model(store: Store, req: CreateRequest, name: ModelName, *, prune: bool,
                       pull: PullFn) -> AsyncGenerator[Progress, None]:
    """Build and write the model (``validate`` has run); yield Ollama's create statuses."""
    existing_before = {p.name for p in store.blobs.iterdir()} if store.blobs.exists() else set()
    old: set[str] = set()
    if store.has_model(name):
        old = store.read_manifest(name)[0].digests()
    base_layers: list[Layer] = []
    base_params: dict[str, Any] = {}
    base_config: dict[str, Any] = {}
    if req.from_:
        base_name = ModelName.parse(req.from_)
        if not store.has_model(base_name):
            async with aclosing(await pull(req.from_)) as pulling:
                async for p in pulling:
                    yield p
        try:
            base, _ = store.read_manifest(base_name)
        except ModelNotFound:
            raise ModelNotFound(req.from_) from None
        short = store.resolve(base_name).display
        for layer in base.layers:
            if layer.media_type == mt.MT_PARAMS:
                base_params = json.loads(store.read_blob(layer.digest))
                continue
            base_layers.append(Layer(layer.media_type, layer.digest, layer.size, layer.from_ or short, layer.name))
        try:
            base_config = json.loads(store.read_blob(base.config.digest))
        except (ValueError, BlobNotFound):
            base_config = {}

    layers = list(base_layers)
    files = _file_digests(req.files, store)
    if files:
        yield {"status": "parsing GGUF"}
        files, groups = _split_groups(files)
        new = []
        for fname, digest in files:
            info = _gguf_of(store, fname, digest)
            new.append(Layer(_layer_kind(info), digest, store.blob_size(digest), PurePosixPath(fname).name))
        for fname, digests, labels in groups:
            yield {"status": f"merging {len(digests)} GGUF shards"}
            for label, digest in zip(labels, digests):
                _gguf_of(store, label, digest)
            merged = await asyncio.to_thread(merge_into_store, store, [store.blob_path(d) for d in digests],
                                             None, labels)
            store.prune_blobs(digests)  # merged: the uploaded shards would only double the disk used
            new.append(Layer(mt.MT_MODEL, merged.digest, merged.size, fname))
        if sum(1 for layer in new if layer.media_type == mt.MT_MODEL) > 1:
            raise InvalidRequest("only one GGUF model file is supported (or one split GGUF's shards)")
        replaced = {layer.media_type for layer in new}
        layers = [layer for layer in layers if layer.media_type not in replaced] + new
    for fname, digest in _file_digests(req.adapters, store):
        info = _gguf_of(store, fname, digest)
        if info.kind.lower() != "adapter":
            raise InvalidRequest(f"{fname} is not a GGUF LoRA adapter")
        layers = [layer for layer in layers if layer.media_type != mt.MT_ADAPTER]
        layers.append(Layer(mt.MT_ADAPTER, digest, store.blob_size(digest), PurePosixPath(fname).name))

    def replace(media: tuple[str, ...], layer: Layer | None) -> None:
        nonlocal layers
        layers = [x for x in layers if x.media_type not in media]
        if layer is not None:
            layers.append(layer)

    if req.template is not None:
        replace((mt.MT_TEMPLATE, mt.MT_PROMPT), store.write_blob_bytes(req.template.encode(), mt.MT_TEMPLATE))
    if req.system is not None:
        replace((mt.MT_SYSTEM,), store.write_blob_bytes(req.system.encode(), mt.MT_SYSTEM) if req.system else None)
    params = {**base_params, **_parameters(req.parameters)}
    if params:
        layers.append(store.write_blob_json(params, mt.MT_PARAMS))
    messages = _messages(req.messages)
    if messages:
        replace((mt.MT_MESSAGES,), store.write_blob_json(messages, mt.MT_MESSAGES))
    licenses = [req.license] if isinstance(req.license, str) else list(req.license or [])
    for text in licenses:
        layers.append(store.write_blob_bytes(text.encode(), mt.MT_LICENSE))

    model_layer = next((x for x in layers if x.media_type == mt.MT_MODEL), None)
    if model_layer is None:
        raise InvalidRequest("no model layer: create from a model or a GGUF file")
    info = read_gguf(store.blob_path(model_layer.digest))
    quant = req.quantize or req.quantization
    if quant and info.file_type != parse_target(quant):
        check_source(info)
        target = parse_target(quant)
        quantized: list[Layer] = []
        async with aclosing(_quantize(store, model_layer, info.file_type, target, quantized.append)) as steps:
            async for p in steps:
                yield p
        layers = [quantized[0] if x is model_layer else x for x in layers]
        model_layer = quantized[0]
        info = read_gguf(store.blob_path(model_layer.digest))
    config = {k: v for k, v in base_config.items() if k in ("capabilities", "context_length", "embedding_length")}
    config.update({
        "model_format": "gguf", "model_family": info.architecture, "model_families": [info.architecture],
        "model_type": human_number(info.parameter_count), "file_type": info.file_type,
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [x.digest for x in layers]},
    })
    for key in ("requires", "renderer", "parser"):
        if getattr(req, key):
            config[key] = getattr(req, key)
    cfg = store.write_blob_json(config, mt.CONFIG_MEDIA_TYPE)
    for layer in layers:
        fresh = layer.digest.replace(":", "-") not in existing_before
        yield {"status": f"{'creating new' if fresh else 'using existing'} layer {layer.digest}"}
    yield {"status": "writing manifest"}
    manifest = Manifest(config=cfg, layers=layers)
    store.write_manifest(name, manifest.to_bytes())
    unused = old - manifest.digests()
    if prune and unused:
        store.prune_blobs(unused)
    yield {"status": "success"}


async def _quantize(store: Store, layer: Layer, source_type: str, target: str,
                    done: Callable[[Layer], None]) -> AsyncGenerator[Progress, None]:
    """Quantize ``layer``'s GGUF in a child process (``python -m pollama.store.quantize``: a fault
    in the C quantizer cannot take the server down), streaming Ollama's progress; ``done`` gets
    the new model layer. A client that goes away stops the child and leaves nothing behind."""
    status = f"quantizing {source_type} model to {target}"
    store.ensure()
    fd, tmp_name = tempfile.mkstemp(dir=store.blobs, prefix=".tmp-quantize-")
    os.close(fd)
    tmp = Path(tmp_name)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pollama.store.quantize", str(store.blob_path(layer.digest)), str(tmp), target,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    errors = asyncio.ensure_future(proc.stderr.read())
    try:
        yield {"status": status, "digest": "0" * 19, "total": layer.size, "completed": 0}
        async for line in proc.stdout:
            try:
                p = json.loads(line)
                completed = int(layer.size * p["completed"] / max(1, p["total"]))
            except (ValueError, KeyError, TypeError):
                continue
            yield {"status": status, "digest": "0" * 19, "total": layer.size, "completed": completed}
        code = await proc.wait()
        err = (await errors).decode(errors="replace").strip()
        if code != 0:
            raise InvalidRequest(f"quantizing to {target} failed: {err.splitlines()[-1] if err else f'exit status {code}'}")
        done(Layer(mt.MT_MODEL, *store.adopt_file(tmp)))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if not errors.done():
            errors.cancel()
        tmp.unlink(missing_ok=True)
