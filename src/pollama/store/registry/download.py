"""Resumable, verified blob downloads in parallel ranged parts (reference §8.1 step 4).

On disk, next to the finished blobs::

    blobs/sha256-<hex>-partial      the blob being downloaded, pre-sized (sparse)
    blobs/sha256-<hex>-partial-<N>  JSON state of part N: {"N", "Offset", "Size", "Completed"}

Bytes are written at their offset *before* a part's state says they are there, and the state is
saved (atomically) every half second and after every attempt, so after ``kill -9`` or a dropped
connection the next pull continues each part from its last saved ``Completed``. The SHA-256 is
computed while the parts download — a hasher follows the contiguous prefix of finished bytes,
reading them back from the page cache in a worker thread — so verifying costs almost nothing at
the end. A blob enters the store (one ``rename``) only when its digest matches; on a mismatch the
partial and its state are deleted. An exclusive ``flock`` on the partial file makes concurrent
pulls of the same blob (from any process) wait for one download instead of racing.

The bytes themselves move in worker threads with ``http.client`` and ``readinto`` into one
reused 1 MiB buffer per part (no per-chunk allocations, the GIL released while waiting), which
keeps a pull at the speed of a plain sequential download while it also hashes and syncs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import http.client
import socket
import threading
import urllib.request
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, unquote, urljoin, urlsplit

from pollama.errors import RegistryError
from pollama.store.registry.client import origin, ssl_context, user_agent
from pollama.store.store import Store

PART_MIN = 100_000_000
PART_MAX = 1_000_000_000
MAX_BLOB = 1 << 44  # 16 TiB: beyond any model, and a bound on the number of parts
MAX_PARTS = 16
MAX_ATTEMPTS = 6
SAVE_EVERY = 0.5  # seconds between part-state saves
HASH_BLOCK = 2 << 20
BUFFER = 1 << 20
NOTIFY_EVERY = 1 << 20


@dataclass
class RangeSource:
    """Where a blob's bytes are: ranged GETs of ``url``.

    ``headers`` (the bearer token) go only to ``auth_host``; redirects (up to 10) are followed,
    and a hop to another host is made without them.
    """

    url: str
    auth_host: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0

    def open(self, start: int, end: int) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        url = self.url
        for _ in range(11):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https"):
                raise RegistryError(f"unsupported URL scheme {parts.scheme!r}")
            conn, target, headers = _connect(parts, self.timeout)
            headers.update({"Range": f"bytes={start}-{end}", "User-Agent": user_agent(), "Accept-Encoding": "identity"})
            if origin(url) == self.auth_host:
                headers.update(self.headers)
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
            location = resp.getheader("location")
            if resp.status in (301, 302, 303, 307, 308) and location:
                conn.close()
                url = urljoin(url, location)
                continue
            return conn, resp
        raise RegistryError("too many redirects")


def _connect(parts: SplitResult, timeout: float) -> tuple[http.client.HTTPConnection, str, dict[str, str]]:
    """A connection for ``parts``, the request target and any headers the hop needs, through the
    proxy the environment names (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``, ``NO_PROXY``
    honoured, as httpx does for the registry's API calls): HTTPS through a ``CONNECT`` tunnel,
    plain HTTP by absolute URL."""
    host, port = parts.hostname or "", parts.port
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    https = parts.scheme == "https"
    proxy = _proxy_for(parts.scheme, host)
    if proxy is None:
        if https:
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl_context()), path, {}
        return http.client.HTTPConnection(host, port, timeout=timeout), path, {}
    p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if p.scheme != "http" or not p.hostname:
        raise RegistryError(f"unsupported proxy {_redact(proxy)!r}: use http://host:port")
    auth: dict[str, str] = {}
    if p.username is not None:
        cred = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
        auth["Proxy-Authorization"] = "Basic " + base64.b64encode(cred).decode()
    if https:
        tunnel = http.client.HTTPSConnection(p.hostname, p.port or 80, timeout=timeout, context=ssl_context())
        tunnel.set_tunnel(host, port or 443, headers=auth)
        return tunnel, path, {}
    netloc = host if port is None else f"{host}:{port}"
    return http.client.HTTPConnection(p.hostname, p.port or 80, timeout=timeout), f"http://{netloc}{path}", auth


def _redact(url: str) -> str:
    p = urlsplit(url if "://" in url else f"http://{url}")
    return url if p.password is None else url.replace(f":{p.password}@", ":***@")


def _proxy_for(scheme: str, host: str) -> str | None:
    if urllib.request.proxy_bypass(host):
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(scheme) or proxies.get("all") or None


class TransientError(RegistryError):
    """A failure worth retrying: a dropped connection, a short read, a 5xx."""


@dataclass
class Part:
    n: int
    offset: int
    size: int
    completed: int = 0

    def to_json(self) -> dict[str, int]:
        return {"N": self.n, "Offset": self.offset, "Size": self.size, "Completed": self.completed}

    @property
    def done(self) -> bool:
        return self.completed >= self.size


def plan_parts(total: int) -> list[Part]:
    """Ollama's split: total/16 per part, clamped to [100 MB, 1000 MB].

    >>> [(p.offset, p.size) for p in plan_parts(250_000_000)]
    [(0, 100000000), (100000000, 100000000), (200000000, 50000000)]
    >>> len(plan_parts(10)), len(plan_parts(0))
    (1, 0)
    """
    if total > MAX_BLOB:
        raise RegistryError(f"blob of {total} bytes is larger than the {MAX_BLOB} bytes pollama accepts")
    size = min(max(total // MAX_PARTS, PART_MIN), PART_MAX)
    parts: list[Part] = []
    offset = 0
    while offset < total:
        n = min(size, total - offset)
        parts.append(Part(len(parts), offset, n))
        offset += n
    return parts


def mismatch(want: str, got: str) -> RegistryError:
    return RegistryError(f"digest mismatch, file must be downloaded again: want {want}, got {got}")


class BlobDownload:
    """Download one blob of known digest and size into ``store``; see the module docstring."""

    def __init__(self, store: Store, digest: str, size: int, source: RangeSource,
                 on_progress: Callable[[int], None] | None = None, max_streams: int = MAX_PARTS) -> None:
        self.store = store
        self.digest = digest
        self.size = size
        self.source = source
        self.on_progress = on_progress or (lambda completed: None)
        self.final = store.blob_path(digest)  # validates the digest before any path is built
        self.partial = self.final.with_name(self.final.name + "-partial")
        self.parts: list[Part] = []
        self.downloaded = 0  # bytes received in this run (for tests and benchmarks)
        self._written = threading.Condition()  # notified whenever a part has more bytes on disk
        self._stop = threading.Event()
        self._conns: set[http.client.HTTPConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._streams = asyncio.Semaphore(max(1, max_streams))  # parts in flight at once

    def part_path(self, n: int) -> Path:
        return self.partial.with_name(f"{self.partial.name}-{n}")

    @property
    def completed(self) -> int:
        return sum(p.completed for p in self.parts)

    async def run(self) -> bool:
        """Download (or wait for a concurrent download of) the blob. True if it was fetched here."""
        self.store.ensure()
        fd = os.open(self.partial, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            await self._lock(fd)
            if self.store.has_blob(self.digest):  # someone else finished it while we waited
                self._discard_if_ours(fd)
                self.on_progress(self.size)
                return False
            self._check_space()  # before the partial is sized: a hostile size must not get that far
            self._prepare(fd)
            self.on_progress(self.completed)
            await self._download(fd)
            os.chmod(self.partial, 0o644)
            os.replace(self.partial, self.final)
            self._remove_state()
            return True
        finally:
            os.close(fd)

    # ---- setup ------------------------------------------------------------------------------

    async def _lock(self, fd: int) -> None:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                await asyncio.sleep(0.1)

    def _discard_if_ours(self, fd: int) -> None:
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(self.partial).st_ino:
                self.partial.unlink()
                self._remove_state()

    def _prepare(self, fd: int) -> None:
        """Resume from valid part state files, or plan fresh parts."""
        parts = self._load_state()
        if parts is None or os.fstat(fd).st_size != self.size:
            self._remove_state()
            parts = plan_parts(self.size)
            os.ftruncate(fd, 0)
        os.ftruncate(fd, self.size)
        self.parts = parts
        for p in parts:
            self._save(p)

    def _load_state(self) -> list[Part] | None:
        if not self.part_path(0).exists():
            return None
        expected = plan_parts(self.size)
        parts = []
        for want in expected:
            try:
                doc = json.loads(self.part_path(want.n).read_bytes()[:4096])
                p = Part(int(doc["N"]), int(doc["Offset"]), int(doc["Size"]), int(doc["Completed"]))
            except (OSError, ValueError, KeyError, TypeError):
                return None
            if (p.n, p.offset, p.size) != (want.n, want.offset, want.size) or not 0 <= p.completed <= p.size:
                return None
            parts.append(p)
        return parts

    def saved(self) -> int:
        """Bytes a resumed download already has, from valid part state files (0 if none)."""
        return sum(p.completed for p in (self._load_state() or []))

    def _check_space(self) -> None:
        try:  # blocks already allocated to the (sparse) partial file count as downloaded
            have = os.stat(self.partial).st_blocks * 512
            free = shutil.disk_usage(self.partial.parent).free
        except OSError:
            return
        need = self.size - have
        if need > free:
            raise RegistryError(f"not enough disk space to pull blob {self.digest}: "
                                f"needs {need} more bytes, {free} available")

    def _save(self, part: Part) -> None:
        path = self.part_path(part.n)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(part.to_json()))
        os.replace(tmp, path)

    def _remove_state(self) -> None:
        for p in self.partial.parent.glob(self.partial.name + "-*"):
            with contextlib.suppress(OSError):
                p.unlink()

    # ---- download ---------------------------------------------------------------------------

    async def _download(self, fd: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._pool = ThreadPoolExecutor(max_workers=len(self.parts) + 1, thread_name_prefix="pull")
        hasher = self._loop.run_in_executor(self._pool, self._hash, fd)
        workers = [asyncio.create_task(self._run_part(fd, p)) for p in self.parts if not p.done]
        try:
            if workers:
                await asyncio.gather(*workers)
            got = await hasher
        except BaseException:
            self._abort()  # the hasher thread sees the stop flag and returns: wait for it, as it reads fd
            for t in workers:
                t.cancel()
            await asyncio.gather(*workers, hasher, return_exceptions=True)
            for p in self.parts:
                with contextlib.suppress(OSError):
                    self._save(p)
            raise
        finally:
            self._pool.shutdown(wait=False)
        if got != self.digest:
            with contextlib.suppress(OSError):
                self.partial.unlink()
            self._remove_state()
            raise mismatch(self.digest, got)

    def _abort(self) -> None:
        """Stop the worker threads: flag them and unblock any socket they wait on."""
        self._stop.set()
        with self._written:
            self._written.notify_all()
        for conn in list(self._conns):
            with contextlib.suppress(OSError, AttributeError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    async def _run_part(self, fd: int, part: Part) -> None:
        assert self._loop is not None
        failures = 0
        while not part.done:
            before = part.completed
            try:
                async with self._streams:
                    await self._loop.run_in_executor(self._pool, self._attempt, fd, part)
            except TransientError:
                self._save(part)
                failures = 0 if part.completed > before else failures + 1
                if failures >= MAX_ATTEMPTS:
                    raise
                await asyncio.sleep(min(2 ** (failures - 1), 10) if failures else 0.05)
        self._save(part)

    def _notify(self) -> None:
        self.on_progress(self.completed)

    def _attempt(self, fd: int, part: Part) -> None:
        """One ranged GET for the rest of ``part`` (runs in a worker thread)."""
        start, end = part.offset + part.completed, part.offset + part.size - 1
        try:
            conn, resp = self.source.open(start, end)
        except (OSError, http.client.HTTPException) as e:
            raise TransientError(f"{type(e).__name__}: {e}") from e
        self._conns.add(conn)
        assert self._loop is not None
        try:
            skip = self._skip_for(resp.status, resp.getheader("content-range", ""),
                                  resp.getheader("content-length", ""), start, end)
            buf = bytearray(BUFFER)
            view = memoryview(buf)
            last_save = time.monotonic()
            unreported = 0
            while not part.done and not self._stop.is_set():
                n = resp.readinto(view)
                if not n:
                    break
                data = view[:n]
                if skip:
                    cut = min(skip, n)
                    data, skip = data[cut:], skip - cut
                data = data[: part.size - part.completed]
                if not data:
                    continue
                self._write(fd, data, part.offset + part.completed)
                with self._written:
                    part.completed += len(data)
                    self._written.notify()
                self.downloaded += len(data)
                unreported += len(data)
                if unreported >= NOTIFY_EVERY or part.done:
                    unreported = 0
                    self._loop.call_soon_threadsafe(self._notify)
                now = time.monotonic()
                if now - last_save >= SAVE_EVERY:
                    self._save(part)
                    last_save = now
        except (OSError, http.client.HTTPException) as e:
            raise TransientError(f"{type(e).__name__}: {e}") from e
        finally:
            self._conns.discard(conn)
            conn.close()
            self._loop.call_soon_threadsafe(self._notify)
        if self._stop.is_set():
            raise TransientError("download stopped")
        if not part.done:
            raise TransientError(f"connection closed after {part.completed} of {part.size} bytes of part {part.n}")

    def _write(self, fd: int, data: memoryview, pos: int) -> None:
        try:
            written = os.pwrite(fd, data, pos)
            while written < len(data):
                written += os.pwrite(fd, data[written:], pos + written)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise RegistryError(f"no space left on device while pulling {self.digest}") from e
            raise

    def _skip_for(self, status: int, cr: str, length: str, start: int, end: int) -> int:
        """How many leading bytes of this reply to discard (a 200 answers from byte 0)."""
        if status == 206:
            want = f"bytes {start}-"
            if not cr.startswith(want):
                raise RegistryError(f"registry answered range {cr[:80]!r} for bytes {start}-{end}")
            total = cr.rpartition("/")[2]
            if total.isdigit() and int(total) != self.size:
                raise RegistryError(f"blob {self.digest} is {total} bytes, the manifest says {self.size}")
            return 0
        if status == 200:
            if length and length.isdigit() and int(length) != self.size:
                raise RegistryError(f"blob {self.digest} is {length} bytes, the manifest says {self.size}")
            return start
        if status >= 500 or status in (408, 429):
            raise TransientError(f"{status} from blob server")
        if status == 404:
            raise RegistryError(f"blob {self.digest}: file does not exist")
        raise RegistryError(f"blob {self.digest}: unexpected status {status}")

    def _hash(self, fd: int) -> str:
        """Hash the contiguous finished prefix as it grows (in its own thread); return the digest.

        It reads the bytes back from the page cache into one reused buffer, so with one stream
        it runs right behind the download, on the other core.
        """
        h = hashlib.sha256()
        buf = bytearray(HASH_BLOCK)
        view = memoryview(buf)
        done = 0
        while done < self.size:
            with self._written:
                while (limit := self._contiguous()) <= done and not self._stop.is_set():
                    self._written.wait(1.0)
            if self._stop.is_set():
                raise TransientError("download stopped")
            while done < limit:
                n = os.preadv(fd, [view[: min(HASH_BLOCK, limit - done)]], done)
                if n <= 0:
                    raise RegistryError("partial file shrank while hashing")
                h.update(view[:n])
                done += n
        return f"sha256:{h.hexdigest()}"

    def _contiguous(self) -> int:
        for p in self.parts:
            if not p.done:
                return p.offset + p.completed
        return self.size

