"""The model store: content-addressed blobs and manifests in Ollama's on-disk layout (§7.1).

    $OLLAMA_MODELS/manifests/<host>/<namespace>/<model>/<tag>
    $OLLAMA_MODELS/blobs/sha256-<64 hex>

Every write goes to a temporary file in the same directory and is renamed into place, so a crash
never leaves a half-written blob or manifest under its final name. Blobs are hashed as they are
written and refused if the digest does not match. Digests and names are validated before they
become paths, so nothing a client or registry sends can reach outside the models directory.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pollama.errors import BlobNotFound, DigestMismatch, InvalidRequest, ModelNotFound
from pollama.store.manifest import InvalidManifest, Layer, Manifest, valid_digest
from pollama.types.names import ModelName

CHUNK = 1 << 20


@dataclass(frozen=True)
class ManifestEntry:
    """A manifest on disk and the facts listing needs."""

    name: ModelName
    manifest: Manifest
    digest: str  # sha256 hex of the manifest bytes, no prefix
    modified: float  # mtime, seconds since the epoch


class Store:
    """Blobs and manifests under one models directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.manifests = self.root / "manifests"

    def ensure(self) -> None:
        self.blobs.mkdir(parents=True, exist_ok=True, mode=0o755)
        self.manifests.mkdir(parents=True, exist_ok=True, mode=0o755)

    # ---- blobs -------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Path of a blob; the digest must be ``sha256:<64 hex>`` (or the ``-`` form)."""
        d = normalize_digest(digest)
        return self.blobs / d.replace(":", "-")

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def blob_size(self, digest: str) -> int:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(digest) from None

    def write_blob_stream(self, chunks: Iterable[bytes], expected: str | None = None) -> Layer:
        """Write bytes to a blob, hashing as they go; verify ``expected`` if given."""
        self.ensure()
        h = hashlib.sha256()
        size = 0
        with self._temp(self.blobs) as (tmp, f):
            for chunk in chunks:
                h.update(chunk)
                f.write(chunk)
                size += len(chunk)
            digest = f"sha256:{h.hexdigest()}"
            if expected is not None and normalize_digest(expected) != digest:
                raise DigestMismatch(expected, digest)
            f.flush()
            os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.blob_path(digest))
        return Layer("", digest, size)

    def blob_writer(self) -> BlobWriter:
        """An incremental writer for bytes that arrive in pieces (an upload); see BlobWriter."""
        self.ensure()
        return BlobWriter(self)

    def write_blob_bytes(self, data: bytes, media_type: str) -> Layer:
        layer = self.write_blob_stream([data])
        return Layer(media_type, layer.digest, layer.size)

    def write_blob_json(self, obj: Any, media_type: str) -> Layer:
        return self.write_blob_bytes(json.dumps(obj, separators=(",", ":")).encode(), media_type)

    def import_file(self, path: Path, media_type: str, from_: str | None = None) -> Layer:
        """Copy a local file into the store (skipping the copy when the blob already exists)."""
        digest = sha256_file(path)
        if not self.has_blob(digest):
            with open(path, "rb") as src:
                self.write_blob_stream(iter(lambda: src.read(CHUNK), b""), expected=digest)
        return Layer(media_type, digest, path.stat().st_size, from_=from_)

    def adopt_file(self, path: Path) -> tuple[str, int]:
        """Move a finished file (written in the blobs directory) into the store under its
        digest; return ``(digest, size)``."""
        digest = sha256_file(path)
        size = path.stat().st_size
        os.chmod(path, 0o644)
        os.replace(path, self.blob_path(digest))
        return digest, size

    def read_blob(self, digest: str, limit: int = 64 << 20) -> bytes:
        path = self.blob_path(digest)
        try:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
        except FileNotFoundError:
            raise BlobNotFound(digest) from None
        if len(data) > limit:
            raise InvalidRequest(f"blob {digest} is larger than {limit} bytes")
        return data

    def verify_blob(self, digest: str) -> bool:
        return sha256_file(self.blob_path(digest)) == normalize_digest(digest)

    # ---- manifests ---------------------------------------------------------------------

    def manifest_path(self, name: ModelName) -> Path:
        return self.manifests.joinpath(*name.path_parts)

    def resolve(self, name: ModelName) -> ModelName:
        """The spelling of ``name`` already on disk (lookup is case-insensitive), or ``name``."""
        if self.manifest_path(name).is_file():
            return name
        key = name.casefold_key()
        for entry_name in self._walk_names():
            if entry_name.casefold_key() == key:
                return entry_name
        return name

    def read_manifest(self, name: ModelName) -> tuple[Manifest, bytes]:
        path = self.manifest_path(self.resolve(name))
        try:
            raw = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ModelNotFound(name.display) from None
        return Manifest.parse(raw), raw

    def write_manifest(self, name: ModelName, raw: bytes) -> None:
        Manifest.parse(raw)  # never store something we could not read back
        existing = self.resolve(name)
        path = self.manifest_path(existing)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        with self._temp(path.parent) as (tmp, f):
            f.write(raw)
            f.flush()
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)

    def has_model(self, name: ModelName) -> bool:
        return self.manifest_path(self.resolve(name)).is_file()

    def entry(self, name: ModelName) -> ManifestEntry:
        resolved = self.resolve(name)
        manifest, raw = self.read_manifest(resolved)
        mtime = self.manifest_path(resolved).stat().st_mtime
        return ManifestEntry(resolved, manifest, hashlib.sha256(raw).hexdigest(), mtime)

    def list(self) -> list[ManifestEntry]:
        """Every readable manifest, most recently modified first. Corrupt ones are skipped."""
        out = []
        for name in self._walk_names():
            try:
                out.append(self.entry(name))
            except (InvalidManifest, ModelNotFound, OSError):
                continue
        out.sort(key=lambda e: e.modified, reverse=True)
        return out

    def copy(self, src: ModelName, dst: ModelName) -> None:
        _, raw = self.read_manifest(src)
        self.write_manifest(dst, raw)

    def delete(self, name: ModelName, prune: bool = True) -> None:
        resolved = self.resolve(name)
        path = self.manifest_path(resolved)
        manifest, _ = self.read_manifest(resolved)
        path.unlink()
        self._prune_dirs(path.parent)
        if prune:
            self.prune_blobs(manifest.digests())

    # (``list`` above shadows the builtin inside the class body, hence ``builtins.list``.)
    def referenced_digests(self) -> set[str]:
        refs: set[str] = set()
        for entry in self.list():
            refs |= entry.manifest.digests()
        return refs

    def prune_blobs(self, candidates: Iterable[str] | None = None, min_age: float = 0.0) -> builtins.list[str]:
        """Delete blobs no manifest references (only ``candidates`` if given)."""
        refs = self.referenced_digests()
        removed = []
        if candidates is None:
            candidates = [p.name.replace("-", ":", 1) for p in self._blob_files()]
        now = time.time()
        for digest in candidates:
            if digest in refs or not valid_digest(digest):
                continue
            path = self.blob_path(digest)
            try:
                if min_age and now - path.stat().st_mtime < min_age:
                    continue
                path.unlink()
                removed.append(digest)
            except FileNotFoundError:
                pass
        return removed

    def prune_startup(self, grace: float = 3600.0) -> None:
        """Ollama's start-up clean-up: unreferenced blobs, and files in ``blobs/`` that are no
        blob (an abandoned pull's ``-partial`` files, a crashed write's ``.tmp-`` file), each
        left alone until ``grace`` seconds old — a pull in progress (here or in another process)
        writes its blobs before its manifest, and a recent partial download can still resume."""
        self._prune_strays(grace)
        if not self.manifests.exists():
            return
        for name in self._walk_names():
            try:
                self.read_manifest(name)
            except InvalidManifest:
                return  # a corrupt manifest: don't risk deleting what it might reference
        self.prune_blobs(min_age=grace)
        for d in sorted(self.manifests.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if d.is_dir():
                self._prune_dirs(d)

    def _prune_strays(self, grace: float) -> None:
        if not self.blobs.is_dir():
            return
        now = time.time()
        for p in self.blobs.iterdir():
            if p.name.startswith("sha256-") and len(p.name) == 71 and valid_digest(p.name.replace("-", ":", 1)):
                continue
            try:
                st = p.lstat()
                if stat.S_ISREG(st.st_mode) and now - st.st_mtime >= grace:
                    p.unlink()
            except OSError:
                pass

    # ---- helpers -----------------------------------------------------------------------

    def _blob_files(self) -> Iterator[Path]:
        if self.blobs.is_dir():
            for p in self.blobs.iterdir():
                if p.is_file() and p.name.startswith("sha256-") and len(p.name) == 71:
                    yield p

    def _walk_names(self) -> Iterator[ModelName]:
        if not self.manifests.is_dir():
            return
        for host in _dirs(self.manifests):
            for ns in _dirs(host):
                for model in _dirs(ns):
                    for tag in model.iterdir():
                        if not tag.is_file() or tag.name.startswith("."):
                            continue
                        name = ModelName(host.name, ns.name, model.name, tag.name)
                        if name.is_valid():
                            yield name

    def _prune_dirs(self, start: Path) -> None:
        d = start
        while d != self.manifests and self.manifests in d.parents:
            try:
                d.rmdir()
            except OSError:
                return
            d = d.parent

    class _TempCtx:
        def __init__(self, directory: Path) -> None:
            fd, name = tempfile.mkstemp(dir=directory, prefix=".tmp-")
            self.path = Path(name)
            self.file: IO[bytes] = os.fdopen(fd, "wb")

        def __enter__(self) -> tuple[Path, IO[bytes]]:
            return self.path, self.file

        def __exit__(self, *exc: object) -> None:
            self.file.close()
            if self.path.exists():
                self.path.unlink()

    def _temp(self, directory: Path) -> Store._TempCtx:
        directory.mkdir(parents=True, exist_ok=True)
        return Store._TempCtx(directory)


class BlobWriter:
    """Hash bytes into a temporary file as they arrive; :meth:`commit` verifies and renames.

    Used as a context manager: leaving it without a commit removes the temporary file, so an
    upload that fails or is refused leaves nothing behind.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        fd, name = tempfile.mkstemp(dir=store.blobs, prefix=".tmp-")
        self.path = Path(name)
        self.file: IO[bytes] = os.fdopen(fd, "wb")
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.hash.update(data)
        self.file.write(data)
        self.size += len(data)

    def commit(self, expected: str | None = None, shown: str | None = None) -> Layer:
        """Verify against ``expected`` (``shown`` is how the client spelled it) and store the blob."""
        digest = f"sha256:{self.hash.hexdigest()}"
        if expected is not None and normalize_digest(expected) != digest:
            raise DigestMismatch(shown or expected, digest)
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.chmod(self.path, 0o644)
        os.replace(self.path, self.store.blob_path(digest))
        return Layer("", digest, self.size)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()
        if self.path.exists():
            self.path.unlink()


def _dirs(p: Path) -> list[Path]:
    try:
        return [c for c in p.iterdir() if c.is_dir()]
    except OSError:
        return []


def normalize_digest(digest: str) -> str:
    """Accept ``sha256:<hex>`` or ``sha256-<hex>``; return the colon form or raise 400."""
    d = digest.strip()
    if d.startswith("sha256-"):
        d = "sha256:" + d[7:]
    d = d.lower() if d[:7] == "sha256:" else d
    if not valid_digest(d):
        raise InvalidRequest("invalid digest format")
    return d


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def copy_file(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
