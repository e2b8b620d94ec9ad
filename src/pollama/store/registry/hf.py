"""Hugging Face pulls: ``hf.co/{user}/{repo}[:{quant}]`` through the Hub's HTTP API (§12).

Resolution, against ``HF_ENDPOINT`` (default ``https://huggingface.co``):

1. ``GET /api/models/{user}/{repo}/tree/main?recursive=true`` lists the repo's files (following
   ``Link: rel="next"`` pages). GGUF files carry their SHA-256 as ``lfs.oid``.
2. The tag picks the file: a quant name matched case-insensitively against the quant in each
   GGUF file name (``Q4_K_M``, ``IQ4_XS``, ``F16`` …) or a full ``.gguf`` file name. ``latest``
   takes ``Q4_K_M`` when the repo has it, else the first of a preference list. An unknown quant
   fails with the list of the quants the repo has. ``mmproj`` files are not model candidates.
   A quant split by llama.cpp into ``<prefix>-00001-of-0000N.gguf`` … shards is chosen by its
   first shard; every shard must be listed, each with its SHA-256.
3. The file is downloaded from ``/{user}/{repo}/resolve/main/{path}`` with the same resumable,
   parallel, SHA-256-verified machinery as registry blobs (a redirect to the CDN is followed
   without the token). Optional ``template`` (Go template), ``system`` and ``params`` (JSON) files
   at the repo root become those layers, verified against their git blob ids.
   Shards are downloaded and verified one by one like any blob, then merged into the single
   model blob Ollama's layout expects (:mod:`pollama.store.gguf_split`) and deleted; the config
   blob records their digests (``gguf_shards``), so pulling the same tag again downloads nothing.
4. The manifest is written under ``manifests/hf.co/{user}/{repo}/{tag}``. The GGUF keeps its
   ``tokenizer.chat_template``, which renders prompts when the repo ships no Go template.

``HF_TOKEN``, when set, is sent as a bearer token to the endpoint's host only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from contextlib import aclosing
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin

import httpx

from pollama.errors import RegistryError
from pollama.store import manifest as mt
from pollama.store.gguf import human_number, read_gguf
from pollama.store.gguf_split import merge_into_store, shard_names, split_name
from pollama.store.manifest import Layer, Manifest
from pollama.store.registry.client import NotFound, RegistryClient, read_bounded
from pollama.store.registry.download import BlobDownload
from pollama.store.registry.pull import _existing_digests, download_layers, prune_replaced, resolve_source
from pollama.store.store import Store
from pollama.types.names import ModelName

HF_HOSTS = ("hf.co", "huggingface.co")
MAX_TREE_BYTES = 8 << 20
MAX_TREE_PAGES = 20
MAX_EXTRA_FILE = 1 << 20
PREFERRED = ("Q4_K_M", "Q4_K_S", "Q4_0", "Q5_K_M", "Q5_K_S", "Q4_1", "Q5_0", "IQ4_XS", "IQ4_NL",
             "Q6_K", "Q8_0", "Q3_K_M", "Q3_K_L", "Q3_K_S", "Q2_K", "BF16", "F16", "F32")
_QUANT = re.compile(r"(?:(?<=[-._])|^)(I?Q[0-9](?:_[0-9A-Z]{1,3})*|BF16|F16|F32|TQ[12]_0|MXFP4)(?=[-.]|$)", re.I)


def is_hf_name(name: ModelName) -> bool:
    return name.host.lower() in HF_HOSTS


def quant_of(filename: str) -> str | None:
    """The quant named in a GGUF file name.

    >>> quant_of("SmolLM2-135M-Instruct-Q4_K_M.gguf"), quant_of("model.IQ4_XS.gguf")
    ('Q4_K_M', 'IQ4_XS')
    >>> quant_of("llama-3.2-1b-instruct-f16.gguf"), quant_of("weights_q8_0.gguf"), quant_of("x.gguf")
    ('F16', 'Q8_0', None)
    """
    stem = filename.rsplit("/", 1)[-1]
    split = split_name(stem)
    stem = f"{split[0]}.gguf" if split else stem
    if stem.lower().endswith(".gguf"):
        stem = stem[:-5]
    found = _QUANT.findall(stem)
    return found[-1].upper() if found else None


@dataclass(frozen=True)
class RepoFile:
    path: str
    size: int
    oid: str  # git blob id (sha1 hex)
    sha256: str | None  # from LFS metadata


def choose_gguf(files: list[RepoFile], tag: str, repo: str) -> RepoFile:
    """Pick the GGUF for ``tag`` (see the module docstring); a clear error when none fits."""
    ggufs = [f for f in files if f.path.lower().endswith(".gguf")
             and not f.path.rsplit("/", 1)[-1].lower().startswith("mmproj")]
    if not ggufs:
        raise RegistryError(f"pull model manifest: {repo} has no GGUF files")
    t = tag.lower()
    for f in ggufs:
        if f.path.rsplit("/", 1)[-1].lower() == t:
            return _single(f)
    by_quant: dict[str, RepoFile] = {}
    for f in sorted(ggufs, key=lambda f: f.path):
        q = quant_of(f.path)
        if q and q not in by_quant:
            split = split_name(f.path.rsplit("/", 1)[-1])
            if split is None or split[1] == 1:
                by_quant[q] = f
    if t == "latest":
        for q in PREFERRED:
            if q in by_quant:
                return _single(by_quant[q])
        if by_quant:
            return _single(by_quant[sorted(by_quant)[0]])
        return _single(sorted(ggufs, key=lambda f: f.path)[0])
    for q, f in by_quant.items():
        if q.lower() == t:
            return _single(f)
    available = ", ".join(sorted(by_quant)) or "none (GGUF file names carry no quant)"
    raise RegistryError(f'pull model manifest: {repo} has no GGUF file for quant "{tag}"; '
                        f"available quants: {available}")


def _single(f: RepoFile) -> RepoFile:
    if not f.sha256:
        raise RegistryError(f"{f.path} has no SHA-256 in the Hub's metadata; cannot verify it")
    return f


def shards_of(files: list[RepoFile], chosen: RepoFile, repo: str) -> list[RepoFile]:
    """``chosen`` alone, or — when it is a shard — the whole set, first to last."""
    folder, _, base = chosen.path.rpartition("/")
    split = split_name(base)
    if split is None:
        return [chosen]
    prefix, no, count = split
    if no != 1:
        raise RegistryError(f"{chosen.path} is shard {no} of {count}; name the quant or the first shard")
    by_path = {f.path: f for f in files}
    out = []
    for fname in shard_names(prefix, count):
        path = f"{folder}/{fname}" if folder else fname
        if path not in by_path:
            raise RegistryError(f"pull model manifest: {repo} lists {chosen.path} but not {path}; "
                                f"the split GGUF is incomplete")
        out.append(_single(by_path[path]))
    return out


async def list_files(client: RegistryClient, endpoint: str, repo: str) -> list[RepoFile]:
    url: str | None = f"{endpoint}/api/models/{repo}/tree/main?recursive=true"
    files: list[RepoFile] = []
    pages = 0
    while url and pages < MAX_TREE_PAGES:
        pages += 1
        resp = await client.send("GET", url, headers={"Accept": "application/json"})
        try:
            try:
                await client.check(resp, "pull model manifest")
            except NotFound:
                raise RegistryError("pull model manifest: file does not exist") from None
            body = await read_bounded(resp, MAX_TREE_BYTES, "pull model manifest")
        finally:
            await resp.aclose()
        try:
            doc = json.loads(body)
        except ValueError:
            raise RegistryError("pull model manifest: the Hub's file list is not JSON") from None
        if not isinstance(doc, list):
            raise RegistryError("pull model manifest: unexpected reply from the Hub")
        for item in doc:
            f = _repo_file(item)
            if f is not None:
                files.append(f)
        nxt = resp.links.get("next", {}).get("url")
        url = urljoin(url, nxt) if nxt else None
    return files


def _repo_file(item: Any) -> RepoFile | None:
    if not isinstance(item, dict) or item.get("type") != "file":
        return None
    path, size, oid = item.get("path"), item.get("size"), item.get("oid")
    if not isinstance(path, str) or not isinstance(size, int) or size < 0 or not isinstance(oid, str):
        return None
    lfs = item.get("lfs")
    sha = None
    if isinstance(lfs, dict) and isinstance(lfs.get("oid"), str) and re.fullmatch(r"[0-9a-f]{64}", lfs["oid"]):
        sha = lfs["oid"]
        if isinstance(lfs.get("size"), int):
            size = lfs["size"]
    return RepoFile(path, size, oid, sha)


def resolve_url(endpoint: str, repo: str, path: str) -> str:
    return f"{endpoint}/{repo}/resolve/main/{quote(path)}"


async def _small_file(client: RegistryClient, endpoint: str, repo: str, f: RepoFile) -> bytes:
    if f.size > MAX_EXTRA_FILE:
        raise RegistryError(f"{repo}/{f.path} is {f.size} bytes; the limit is {MAX_EXTRA_FILE}")
    resp = await client.send("GET", resolve_url(endpoint, repo, f.path))
    try:
        if resp.status_code in (301, 302, 303, 307, 308) and resp.headers.get("location"):
            await resp.aclose()
            target = urljoin(resolve_url(endpoint, repo, f.path), resp.headers["location"])
            resp = await client.http.send(client.http.build_request("GET", target), stream=True,
                                          follow_redirects=True)
        await client.check(resp, f"pulling {f.path}")
        data = await read_bounded(resp, MAX_EXTRA_FILE, f"pulling {f.path}")
    finally:
        await resp.aclose()
    if f.sha256 is not None:
        ok = hashlib.sha256(data).hexdigest() == f.sha256
    else:  # a plain git file: its id is the git blob hash
        ok = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest() == f.oid
    if not ok:
        raise RegistryError(f"{repo}/{f.path}: content does not match the Hub's id for it")
    return data


def _merged_before(store: Store, name: ModelName, shard_digests: list[str]) -> Layer | None:
    """The model layer a previous pull of ``name`` merged from exactly these shards, if it is
    still in the store (so a second pull of a split model downloads nothing)."""
    try:
        manifest, _ = store.read_manifest(name)
        config = json.loads(store.read_blob(manifest.config.digest))
    except Exception:  # absent or unreadable: merge afresh
        return None
    model = manifest.first(mt.MT_MODEL)
    if config.get("gguf_shards") != shard_digests or model is None or not store.has_blob(model.digest):
        return None
    return Layer(mt.MT_MODEL, model.digest, model.size)


async def pull_hf(
    store: Store, name: ModelName, *, endpoint: str, token: str = "", prune: bool = True,
    http: httpx.AsyncClient | None = None, on_download: Callable[[BlobDownload], None] | None = None,
) -> AsyncGenerator[dict[str, Any], None]:
    """Pull a GGUF from the Hub as the model ``name``; yields Ollama's pull progress."""
    endpoint = endpoint.rstrip("/")
    repo = f"{name.namespace}/{name.model}"
    old = _existing_digests(store, name)
    client = RegistryClient(name, http=http, base_url=endpoint)
    client.token = token or None  # sent to the endpoint's host only
    try:
        yield {"status": "pulling manifest"}
        files = await list_files(client, endpoint, repo)
        chosen = choose_gguf(files, name.tag, f"{name.host}/{repo}")
        shards = shards_of(files, chosen, f"{name.host}/{repo}")
        shard_layers = [Layer(mt.MT_MODEL, f"sha256:{f.sha256}", f.size) for f in shards]
        paths = {layer.digest: f.path for layer, f in zip(shard_layers, shards)}
        shard_digests = [layer.digest for layer in shard_layers] if len(shards) > 1 else None
        model_layer = _merged_before(store, name, shard_digests) if shard_digests else shard_layers[0]

        async def fetcher(layer: Layer) -> Any:
            path = paths[layer.digest]
            return await resolve_source(client, resolve_url(endpoint, repo, path), f"pulling {path}")

        if model_layer is None:
            async with aclosing(download_layers(store, shard_layers, fetcher, on_download)) as layers_progress:
                async for p in layers_progress:
                    yield p
            yield {"status": f"merging {len(shards)} GGUF shards"}
            try:
                model_layer = await asyncio.to_thread(merge_into_store, store,
                                                      [store.blob_path(x.digest) for x in shard_layers],
                                                      None, [f.path for f in shards])
            finally:  # merged or not mergeable: the shards are not kept (they are the model's size)
                store.prune_blobs([x.digest for x in shard_layers])
        else:
            async with aclosing(download_layers(store, [model_layer], fetcher, on_download)) as layers_progress:
                async for p in layers_progress:
                    yield p
        layers = [model_layer]
        extras = {f.path: f for f in files}
        for fname, media in (("template", mt.MT_TEMPLATE), ("system", mt.MT_SYSTEM), ("params", mt.MT_PARAMS)):
            if fname in extras:
                data = await _small_file(client, endpoint, repo, extras[fname])
                if media == mt.MT_PARAMS:
                    try:
                        json.loads(data)
                    except ValueError:
                        raise RegistryError(f"{repo}/params is not valid JSON") from None
                layer = store.write_blob_bytes(data, media)
                layers.append(layer)
                yield {"status": f"pulling {layer.digest[7:19]}", "digest": layer.digest,
                       "total": layer.size, "completed": layer.size}
        info = read_gguf(store.blob_path(model_layer.digest))
        config = {
            "model_format": "gguf", "model_family": info.architecture, "model_families": [info.architecture],
            "model_type": human_number(info.parameter_count), "file_type": info.file_type,
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        }
        if shard_digests:
            config["gguf_shards"] = shard_digests
        cfg = store.write_blob_json(config, mt.CONFIG_MEDIA_TYPE)
        yield {"status": f"pulling {cfg.digest[7:19]}", "digest": cfg.digest, "total": cfg.size,
               "completed": cfg.size}
        yield {"status": "verifying sha256 digest"}
        yield {"status": "writing manifest"}
        manifest = Manifest(config=cfg, layers=layers)
        store.write_manifest(name, manifest.to_bytes())
        async for p in prune_replaced(store, old, manifest, prune):
            yield p
        yield {"status": "success"}
    finally:
        await client.aclose()
