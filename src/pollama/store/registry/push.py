"""``push``: blobs the registry lacks in sequential chunks, then the manifest (reference §8.3).

Progress: ``retrieving manifest``; ``pushing <12 hex>`` with ``digest``/``total``/``completed``
per blob (one completed message for a blob the registry already has, found with ``HEAD``, or
mounted from another repository of the same registry); ``pushing manifest``; ``success``. Each
blob is uploaded with the distribution API — ``POST /blobs/uploads/``, one ``PATCH`` per part
(``Content-Range: <start>-<end>``; a ``307`` sends the part to the redirect URL with ``PUT`` and
no credentials), then ``PUT …?digest=`` — reading the file in 1 MiB blocks, so memory stays flat
whatever the blob's size. The manifest goes last, so a registry never holds a manifest whose
blobs are missing.

**Cross-repository mount.** When another local model from the same registry (another repository,
e.g. the one a model was pulled from before ``pollama cp`` renamed it) references a blob, the
upload starts with ``POST /blobs/uploads/?mount=<digest>&from=<namespace/model>``: a registry that
holds the blob there links it without a byte being sent (``201``); one that does not (or that
does not let this client read the source) answers ``202`` with an ordinary upload session, and
the blob is uploaded as usual. Ollama mounts only from a model's recorded base; any local
manifest on the same host is a candidate here.
"""

from __future__ import annotations

from contextlib import aclosing

import hashlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import httpx

from pollama.errors import ModelNotFound, RegistryError
from pollama.store.manifest import MANIFEST_MEDIA_TYPE, Layer
from pollama.store.registry.client import NotFound, RegistryClient, user_agent
from pollama.store.registry.download import Part, plan_parts
from pollama.store.store import Store
from pollama.types.names import ModelName

Progress = dict[str, Any]
BLOCK = 1 << 20


def push_progress(digest: str, total: int, completed: int) -> Progress:
    return {"status": f"pushing {digest[7:19]}", "digest": digest, "total": total, "completed": completed}


def _with_query(url: str, params: dict[str, str]) -> str:
    p = urlsplit(url)
    q = (p.query + "&" if p.query else "") + urlencode(params)
    return urlunsplit((p.scheme, p.netloc, p.path, q, p.fragment))


def _upload_location(resp: httpx.Response, base: str) -> str:
    loc = resp.headers.get("docker-upload-location") or resp.headers.get("location")
    if not loc:
        raise RegistryError(f"registry gave no upload location (status {resp.status_code})")
    return str(urljoin(base, loc))


async def push_model(
    store: Store, name: ModelName, *, insecure: bool = False, http: httpx.AsyncClient | None = None,
    base_url: str | None = None, part_size: Callable[[int], int] | None = None,
) -> AsyncGenerator[Progress, None]:
    """Push ``name`` from ``store`` to its registry; yield Ollama's progress messages."""
    yield {"status": "retrieving manifest"}
    try:
        manifest, raw = store.read_manifest(name)
    except ModelNotFound:
        raise RegistryError("couldn't retrieve manifest") from None
    client = RegistryClient(name, insecure=insecure, http=http, base_url=base_url)
    sources = mount_sources(store, name)
    try:
        seen: set[str] = set()
        for layer in manifest.all_layers():
            if layer.digest in seen:
                continue
            seen.add(layer.digest)
            async with aclosing(_push_blob(client, store, layer, part_size,
                                           sources.get(layer.digest))) as blob_progress:
                async for p in blob_progress:
                    yield p
        yield {"status": "pushing manifest"}
        resp = await client.send("PUT", client.url(f"manifests/{name.tag}"), content=raw,
                                 headers={"Content-Type": manifest.media_type or MANIFEST_MEDIA_TYPE})
        try:
            await client.check(resp, "pushing manifest")
        except NotFound:
            raise RegistryError("pushing manifest: 404: file does not exist") from None
        finally:
            await resp.aclose()
        yield {"status": "success"}
    finally:
        await client.aclose()


def mount_sources(store: Store, name: ModelName) -> dict[str, str]:
    """For each blob, another repository (``namespace/model``) on ``name``'s registry whose local
    manifest references it — where the registry may already hold it. The most recently written
    manifest wins; the target repository itself is never a source."""
    host = name.host.lower()
    target = name.repository.lower()
    found: dict[str, str] = {}
    for entry in store.list():  # newest first
        other = entry.name
        if other.host.lower() != host or other.repository.lower() == target:
            continue
        for digest in entry.manifest.digests():
            found.setdefault(digest, other.repository)
    return found


async def _start_upload(client: RegistryClient, digest: str, source: str | None) -> str | None:
    """Open an upload session; None when the registry mounted the blob from ``source`` instead."""
    what = f"pushing {digest[7:19]}"
    if source is not None:
        try:
            start = await client.send("POST", _with_query(client.url("blobs/uploads/"),
                                                          {"mount": digest, "from": source}))
        except RegistryError:
            start = None  # e.g. not allowed to read the source: upload it instead
        if start is not None:
            try:
                if start.status_code == 201:
                    return None
                if start.status_code == 202:
                    return _upload_location(start, client.base)
            finally:
                await start.aclose()
    start = await client.send("POST", client.url("blobs/uploads/"))
    try:
        if start.status_code == 201:  # some registries link a blob they hold elsewhere
            return None
        await client.check(start, what)
        return _upload_location(start, client.base)
    finally:
        await start.aclose()


async def _push_blob(client: RegistryClient, store: Store, layer: Layer,
                     part_size: Callable[[int], int] | None,
                     source: str | None = None) -> AsyncGenerator[Progress, None]:
    digest, size = layer.digest, layer.size
    path = store.blob_path(digest)
    if not path.is_file():
        raise RegistryError(f"blob {digest} is missing from the local store")
    head = await client.send("HEAD", client.url(f"blobs/{digest}"))
    await head.aclose()
    if head.status_code == 200:
        yield push_progress(digest, size, size)
        return
    if head.status_code not in (404,) and head.status_code >= 400 and head.status_code != 401:
        raise RegistryError(f"pushing {digest[7:19]}: {head.status_code}")
    yield push_progress(digest, size, 0)
    location = await _start_upload(client, digest, source)
    if location is None:  # mounted: the registry linked it without an upload
        yield push_progress(digest, size, size)
        return
    md5s: list[bytes] = []
    done = 0
    last = 0.0
    parts = plan_parts(size)
    if part_size is not None:
        step = max(1, part_size(size))
        parts = []
        for i, off in enumerate(range(0, size, step)):
            parts.append(Part(i, off, min(step, size - off)))
    with open(path, "rb") as f:
        for part in parts:
            md5 = hashlib.md5(usedforsecurity=False)
            location = await _patch_part(client, f, part.offset, part.size, location, md5)
            md5s.append(md5.digest())
            done += part.size
            now = time.monotonic()
            if now - last >= 0.06 or done == size:
                last = now
                yield push_progress(digest, size, done)
    etag = hashlib.md5(b"".join(md5s), usedforsecurity=False).hexdigest() + f"-{len(md5s)}"
    commit = await client.send("PUT", _with_query(location, {"digest": digest, "etag": etag}),
                               headers={"Content-Length": "0"}, content=b"")
    try:
        await client.check(commit, f"pushing {digest[7:19]}")
    finally:
        await commit.aclose()
    if size == 0:
        yield push_progress(digest, size, size)


async def _patch_part(client: RegistryClient, f: Any, offset: int, size: int, location: str, md5: Any) -> str:
    """PATCH one part; returns the next upload location."""

    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size),
               "Content-Range": f"{offset}-{offset + size - 1}", "X-Redirect-Uploads": "1"}
    resp = await client.send("PATCH", location, headers=headers, content=_reader(f, offset, size, md5))
    try:
        if resp.status_code == 307 and resp.headers.get("location"):
            # Ollama's registry: put the part to the redirect target (no credentials), and carry
            # on at the upload location it names.
            target = urljoin(location, resp.headers["location"])
            nxt = resp.headers.get("docker-upload-location") or location
            md5_redo = hashlib.md5(usedforsecurity=False)
            put = await client.http.send(
                client.http.build_request("PUT", target, content=_reader(f, offset, size, md5_redo),
                                          headers={"User-Agent": user_agent(), "Content-Length": str(size),
                                                   "Content-Type": "application/octet-stream"}),
                stream=True)
            await put.aread()
            await put.aclose()
            if put.status_code >= 400:
                raise RegistryError(f"uploading part to redirect: {put.status_code}")
            return str(urljoin(location, nxt))
        await client.check(resp, "uploading blob part")
        return _upload_location(resp, location)
    finally:
        await resp.aclose()


async def _reader(f: Any, offset: int, size: int, md5: Any) -> AsyncIterator[bytes]:
    f.seek(offset)
    left = size
    while left:
        block = f.read(min(BLOCK, left))
        if not block:
            raise RegistryError("blob file shrank during upload")
        md5.update(block)
        left -= len(block)
        yield block


__all__ = ["push_model", "mount_sources", "NotFound"]
