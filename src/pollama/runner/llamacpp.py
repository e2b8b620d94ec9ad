"""The llama.cpp runner: a subprocess hosting llama.cpp's server, spoken to over HTTP on a Unix
socket in a private (0700) directory — only this user can reach it, there is no port to race
another process for, and each streamed token costs less than over loopback TCP."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import httpx

from pollama.errors import RunnerError
from pollama.runner.base import CompletionChunk, CompletionRequest, RunnerSpec
from pollama.runner.sse import RunnerHTTPError, post_sse

log = logging.getLogger("pollama.runner")


def _socket_parent() -> str | None:
    """Where runner sockets go: the temp directory, unless its path is too long for a socket
    address (108 bytes on Linux, with room for our own names)."""
    return None if len(tempfile.gettempdir()) <= 60 else "/tmp"


class LlamaCppRunner:
    """One ``python -m pollama.runner`` process and an HTTP client for it."""

    def __init__(self, spec: RunnerSpec, load_timeout: float = 300.0, verbose: bool = False) -> None:
        self.spec = spec
        self.load_timeout = load_timeout
        self.verbose = verbose
        self.socket_dir: str | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.client: httpx.AsyncClient | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._stderr_tail: list[str] = []

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def socket_path(self) -> str:
        return os.path.join(self.socket_dir or "", "runner.sock")

    @property
    def memory_bytes(self) -> int:
        """Resident memory of the runner process (what /api/ps reports as ``size``)."""
        if not self.proc:
            return 0
        try:
            with open(f"/proc/{self.proc.pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    def alive(self) -> bool:
        """Running, not merely not-yet-reaped: asyncio sets ``returncode`` a moment after the
        process dies, so a killed runner is also recognised by its zombie state in /proc."""
        if self.proc is None or self.proc.returncode is not None:
            return False
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return os.name != "posix" or not os.path.exists("/proc/self")  # no /proc: trust returncode
        return state not in ("Z", "X")

    async def start(self) -> None:
        self.socket_dir = tempfile.mkdtemp(prefix="pollama-runner-", dir=_socket_parent())
        args = [
            sys.executable, "-m", "pollama.runner",
            "--model", str(self.spec.model_path),
            "--socket", self.socket_path,
            "--ctx", str(self.spec.num_ctx),
            "--parallel", str(self.spec.num_parallel),
            "--threads", str(self.spec.num_thread),
            "--batch", str(self.spec.num_batch),
        ]
        if self.spec.embedding:
            args.append("--embedding")
        for a in self.spec.adapters:
            args += ["--adapter", str(a)]
        self.proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, start_new_session=False,
        )
        self._stderr_task = asyncio.create_task(self._pump_stderr())
        transport = httpx.AsyncHTTPTransport(uds=self.socket_path)
        self.client = httpx.AsyncClient(base_url="http://runner", timeout=httpx.Timeout(None, connect=5.0),
                                        transport=transport)
        try:
            await asyncio.wait_for(self._wait_healthy(), self.load_timeout if self.load_timeout > 0 else None)
        except TimeoutError:
            await self.stop()
            raise RunnerError(f"timed out waiting for llama runner to start after {self.load_timeout:g}s") from None
        except RunnerError:
            await self.stop()
            raise

    async def _wait_healthy(self) -> None:
        assert self.client is not None
        delay = 0.02
        while True:
            if not self.alive():
                await asyncio.sleep(0.05)  # let stderr drain
                tail = " ".join(self._stderr_tail[-3:]).strip()
                raise RunnerError(f"llama runner process has terminated: {tail or 'exit status ' + str(self.proc.returncode if self.proc else '?')}")
            try:
                r = await self.client.get("/health", timeout=2.0)
                if r.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    async def _pump_stderr(self) -> None:
        assert self.proc and self.proc.stderr
        while True:
            line = await self.proc.stderr.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip()
            self._stderr_tail = (self._stderr_tail + [text])[-20:]
            if self.verbose or " E " in text or "error" in text.lower():
                log.info("runner[%s] %s", self.pid, text)
            else:
                log.debug("runner[%s] %s", self.pid, text)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.terminate()
                try:
                    await asyncio.wait_for(self.proc.wait(), 5)
                except TimeoutError:
                    self.proc.kill()
                    await self.proc.wait()
            except ProcessLookupError:
                pass
        if self._stderr_task is not None:
            self._stderr_task.cancel()
            self._stderr_task = None
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self.socket_dir = None

    # ---- requests ----------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self.client is None or not self.alive():
            raise RunnerError(self._died_message())
        return self.client

    def _died_message(self) -> str:
        if self.proc is None:
            return "llama runner process no longer running: not started"
        code = self.proc.returncode
        return f"llama runner process no longer running: {code if code is not None else 'exited'}"

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            r = await self._http().post(path, json=body)
        except httpx.TransportError as e:
            raise RunnerError(self._died_message() if not self.alive() else f"runner request failed: {e}") from e
        if r.status_code != 200:
            raise RunnerError(_error_text(r.text, r.status_code))
        return r.json()

    async def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        data = await self._post("/tokenize", {"content": text, "add_special": add_special, "parse_special": True})
        return list(data["tokens"])

    async def detokenize(self, tokens: list[int]) -> str:
        data = await self._post("/detokenize", {"tokens": tokens})
        return str(data["content"])

    async def embed(self, inputs: list[str] | list[list[int]], normalize: bool = True) -> list[list[float]]:
        # llama.cpp: embd_normalize 2 = Euclidean (L2), -1 = none; token-id lists are taken as is
        data = await self._post("/embeddings", {"content": inputs, "embd_normalize": 2 if normalize else -1})
        out: list[list[float]] = []
        for item in sorted(data, key=lambda d: d.get("index", 0)):
            emb = item["embedding"]
            out.append(emb[0] if emb and isinstance(emb[0], list) else emb)
        return out

    async def completion(self, req: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        body: dict[str, Any] = {
            "prompt": req.prompt,
            "n_predict": req.n_predict,
            "stream": True,
            "cache_prompt": True,
            "return_tokens": True,
            "stop": req.stop,
            "n_keep": req.n_keep,
            **req.sampling,
        }
        if req.json_schema is not None:
            body["json_schema"] = req.json_schema
        if req.grammar:
            body["grammar"] = req.grammar
        if req.n_probs:
            body["n_probs"] = req.n_probs
        self._http()  # raises if the runner is gone
        events = post_sse(self.socket_path, "/completion", json.dumps(body).encode())
        try:
            async for data in events:
                payload = json.loads(data)
                if "error" in payload:
                    raise RunnerError(_error_text(data.decode("utf-8", "replace"), 500))
                yield _chunk(payload)
        except RunnerHTTPError as e:
            raise RunnerError(_error_text(e.body, e.status)) from None
        except (OSError, ValueError) as e:  # connection refused/reset, or a line that is not JSON
            raise RunnerError(self._died_message() if not self.alive() else f"runner stream failed: {e}") from e
        finally:
            await events.aclose()


def _chunk(p: dict[str, Any]) -> CompletionChunk:
    c = CompletionChunk(content=p.get("content", ""), tokens=list(p.get("tokens") or []))
    if p.get("completion_probabilities"):
        c.probs = p["completion_probabilities"]
    if p.get("stop"):
        t = p.get("timings") or {}
        c.done = True
        c.stop_type = p.get("stop_type", "")
        c.prompt_n = int(t.get("prompt_n", 0))
        c.prompt_ms = float(t.get("prompt_ms", 0.0))
        c.cache_n = int(t.get("cache_n", 0))
        c.predicted_n = int(t.get("predicted_n", 0))
        c.predicted_ms = float(t.get("predicted_ms", 0.0))
        c.truncated = bool(p.get("truncated", False))
    return c


def _error_text(text: str, status: int) -> str:
    try:
        err = json.loads(text).get("error")
        if isinstance(err, dict):
            return str(err.get("message", err))
        if err:
            return str(err)
    except (ValueError, AttributeError):
        pass
    return f"runner error {status}: {text[:500]}"
