"""``pull``: manifest, then every layer and the config as resumable verified downloads (§8.1).

The progress stream is Ollama's: ``pulling manifest``; ``pulling <12 hex>`` with ``digest``,
``total`` and ``completed`` per blob (about every 60 ms while bytes move, once with
``completed == total`` for a blob already present); ``verifying sha256 digest``; ``writing
manifest``; ``removing unused layers`` when an older version of the tag left blobs nothing uses
(unless pruning is off); ``success``. An unknown model ends the stream with ``pull model
manifest: file does not exist``.
"""

from __future__ import annotations

from contextlib import aclosing

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import Any
from urllib.parse import urljoin

import httpx

from pollama.errors import RegistryError
from pollama.store.manifest import MAX_MANIFEST_BYTES, InvalidManifest, Layer, Manifest
from pollama.store.registry.client import (
    MANIFEST_ACCEPT,
    NotFound,
    RegistryClient,
    read_bounded,
)
from pollama.store.registry.download import MAX_PARTS, BlobDownload, RangeSource
from pollama.store.store import Store
from pollama.types.names import ModelName

PROGRESS_INTERVAL = 0.06
MAX_CONCURRENT_BLOBS = 4

Progress = dict[str, Any]


def layer_progress(digest: str, total: int, completed: int) -> Progress:
    return {"status": f"pulling {digest[7:19]}", "digest": digest, "total": total, "completed": completed}


async def fetch_manifest(client: RegistryClient, what: str = "pull model manifest") -> bytes:
    """GET the manifest for the client's name; errors read ``<what>: …`` as Ollama's do."""
    url = client.url(f"manifests/{client.name.tag}")
    try:
        resp = await client.send("GET", url, headers={"Accept": MANIFEST_ACCEPT})
        await client.check(resp, what)
    except NotFound:
        raise RegistryError(f"{what}: file does not exist") from None
    except RegistryError as e:
        if e.message.startswith(what):
            raise
        raise RegistryError(f"{what}: {e.message}") from None
    try:
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_MANIFEST_BYTES:
            raise RegistryError(f"{what}: manifest of {declared} bytes exceeds the limit of {MAX_MANIFEST_BYTES}")
        return await read_bounded(resp, MAX_MANIFEST_BYTES, what)
    except httpx.HTTPError as e:
        raise RegistryError(f"{what}: {type(e).__name__}: {e}") from e
    finally:
        await resp.aclose()


async def blob_source(client: RegistryClient, digest: str) -> RangeSource:
    """Where a registry blob's bytes are (see :func:`resolve_source`)."""
    return await resolve_source(client, client.url(f"blobs/{digest}"), f"blob {digest}")


async def resolve_source(client: RegistryClient, url: str, what: str) -> RangeSource:
    """Resolve ``url``'s direct location once (authenticating if the server asks).

    A server that redirects to another host (a CDN) is read there *without* credentials; one
    that serves the bytes itself (200/206, as CNCF distribution does) is read at ``url`` with them.
    """
    resp = await client.send("GET", url, headers={"Range": "bytes=0-0"})
    try:
        location = resp.headers.get("location")
        if resp.status_code in (301, 302, 303, 307, 308) and location:
            direct = urljoin(url, location)
        else:
            try:
                await client.check(resp, what)
            except NotFound:
                raise RegistryError(f"{what}: file does not exist") from None
            direct = url
    finally:
        await resp.aclose()
    headers = {"Authorization": f"Bearer {client.token}"} if client.token else {}
    return RangeSource(direct, auth_host=client.host, headers=headers)


async def download_layers(
    store: Store, layers: list[Layer], fetcher: Callable[[Layer], Any],
    on_download: Callable[[BlobDownload], None] | None = None,
    max_streams: int = MAX_PARTS,
) -> AsyncGenerator[Progress, None]:
    """Download ``layers`` (up to 4 at a time), yielding Ollama's per-layer progress."""
    completed: dict[str, int] = {}
    changed = asyncio.Event()
    sem = asyncio.Semaphore(MAX_CONCURRENT_BLOBS)
    order: list[Layer] = []
    seen: set[str] = set()
    for layer in layers:
        if layer.digest not in seen:
            seen.add(layer.digest)
            order.append(layer)

    async def one(layer: Layer) -> None:
        def report(n: int) -> None:
            completed[layer.digest] = n
            changed.set()

        if store.has_blob(layer.digest):
            report(layer.size)
            return
        async with sem:
            source = await fetcher(layer)
            dl = BlobDownload(store, layer.digest, layer.size, source, report, max_streams=max_streams)
            if on_download is not None:
                on_download(dl)
            await dl.run()
            report(layer.size)

    tasks = [asyncio.create_task(one(layer)) for layer in order]
    sent: dict[str, int] = {}
    try:
        for layer in order:  # announce every layer in manifest order, resumed bytes included
            if store.has_blob(layer.digest):
                done = layer.size
            else:
                done = BlobDownload(store, layer.digest, layer.size, RangeSource("")).saved()
            sent[layer.digest] = done
            yield layer_progress(layer.digest, layer.size, done)
        while True:
            pending = [t for t in tasks if not t.done()]
            for layer in order:
                n = completed.get(layer.digest)
                if n is not None and n != sent.get(layer.digest):
                    sent[layer.digest] = n
                    yield layer_progress(layer.digest, layer.size, n)
            for t in tasks:
                if t.done() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            if not pending:
                break
            changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=1.0)
            # at most one progress message per layer every PROGRESS_INTERVAL, but no waiting
            # once every download has finished
            await asyncio.wait(pending, timeout=PROGRESS_INTERVAL)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def pull_model(
    store: Store,
    name: ModelName,
    *,
    insecure: bool = False,
    prune: bool = True,
    http: httpx.AsyncClient | None = None,
    base_url: str | None = None,
    on_download: Callable[[BlobDownload], None] | None = None,
    hf_endpoint: str = "https://huggingface.co",
    hf_token: str = "",
    max_streams: int = MAX_PARTS,
) -> AsyncGenerator[Progress, None]:
    """Pull ``name`` into ``store``; yield Ollama's progress messages (see the module docstring).

    ``http`` and ``base_url`` are seams for tests; ``on_download`` sees each blob download (its
    ``downloaded`` counter says how many bytes crossed the wire in this run). ``max_streams``
    caps the parts of one blob downloaded at once (Ollama: 16).
    """
    from pollama.store.registry.hf import is_hf_name, pull_hf

    if is_hf_name(name):
        async with aclosing(pull_hf(store, name, endpoint=hf_endpoint, token=hf_token, prune=prune, http=http,
                                    on_download=on_download)) as hf:
            async for p in hf:
                yield p
        return
    old = _existing_digests(store, name)
    client = RegistryClient(name, insecure=insecure, http=http, base_url=base_url)
    try:
        yield {"status": "pulling manifest"}
        raw = await fetch_manifest(client)
        try:
            manifest = Manifest.parse(raw)
        except InvalidManifest as e:
            raise RegistryError(f"pull model manifest: {e.message}") from None

        async def fetcher(layer: Layer) -> RangeSource:
            return await blob_source(client, layer.digest)

        # aclosing: if our consumer stops (a dropped client), the downloads stop now, not at GC
        async with aclosing(download_layers(store, manifest.all_layers(), fetcher, on_download,
                                            max_streams)) as layers_progress:
            async for p in layers_progress:
                yield p
        yield {"status": "verifying sha256 digest"}
        for layer in manifest.all_layers():  # every blob is in place and was verified on entry
            if not store.has_blob(layer.digest):
                raise RegistryError(f"blob {layer.digest} is missing after download")
        yield {"status": "writing manifest"}
        store.write_manifest(name, raw)
        async for p in prune_replaced(store, old, manifest, prune):
            yield p
        yield {"status": "success"}
    finally:
        await client.aclose()


def _existing_digests(store: Store, name: ModelName) -> set[str]:
    try:
        manifest, _ = store.read_manifest(name)
    except Exception:  # absent or unreadable: nothing to prune later
        return set()
    return manifest.digests()


async def prune_replaced(store: Store, old: set[str], new: Manifest, prune: bool) -> AsyncGenerator[Progress, None]:
    """Delete blobs only the replaced manifest used (``removing unused layers``)."""
    unused = old - new.digests()
    if prune and unused:
        yield {"status": "removing unused layers"}
        store.prune_blobs(unused)
