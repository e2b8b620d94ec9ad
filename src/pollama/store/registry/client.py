"""The HTTP side of the registry protocol: auth, redirects and bounded reads (reference §8).

One :class:`RegistryClient` talks to one registry host for one pull or push. It

* sends Ollama's ``User-Agent`` and, once it has one, ``Authorization: Bearer <token>`` — but only
  on requests to the registry's own ``host[:port]``; a redirect to any other host (a CDN) is
  followed without credentials;
* answers a ``401`` with a ``WWW-Authenticate: Bearer realm=…,service=…,scope=…`` challenge by
  fetching a token from the realm and retrying once. **The realm's host must be the registry's
  host**, or the flow stops before any request reaches the realm (tokens and signatures never go
  cross-origin; reference §8.2);
* reads every reply it parses (manifests, tokens, error bodies) with a byte limit that also holds
  for compressed replies: bodies are read raw and inflated with a bounded ``zlib`` stream, so a
  compression bomb costs at most the limit.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import platform
import re
import ssl
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from pollama import OLLAMA_COMPAT_VERSION, __version__
from pollama.errors import RegistryError
from pollama.store.registry.keys import Identity
from pollama.types.names import ModelName

log = logging.getLogger("pollama.registry")

MANIFEST_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json"
MAX_ERROR_BODY = 4 << 10
MAX_TOKEN_BODY = 64 << 10
MAX_REDIRECTS = 10


@functools.lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    """Built once: loading the CA certificates takes tens of milliseconds."""
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()


def user_agent() -> str:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return f"ollama/{OLLAMA_COMPAT_VERSION} ({arch} {platform.system().lower()}) Go/go1.24 pollama/{__version__}"


class NotFound(RegistryError):
    """The registry answered 404 (Ollama says "file does not exist")."""

    def __init__(self) -> None:
        super().__init__("file does not exist")


class ReplyTooLarge(RegistryError):
    """A reply (after decompression) is larger than the limit for its kind."""


def origin(url: str) -> str:
    """``host[:port]`` of a URL, lower-cased (what 'same host' means for tokens and redirects)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


@dataclass(frozen=True)
class Challenge:
    realm: str
    service: str
    scope: str


_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]*))')


def parse_challenge(header: str) -> Challenge | None:
    """Parse ``Bearer realm="…",service="…",scope="…"``; None when it is not a Bearer challenge.

    >>> parse_challenge('Bearer realm="https://r.io/token",service="r.io",scope="repository:a/b:pull"')
    Challenge(realm='https://r.io/token', service='r.io', scope='repository:a/b:pull')
    >>> parse_challenge('Basic realm="x"') is None
    True
    """
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3) for m in _PARAM.finditer(rest)}
    if not params.get("realm"):
        return None
    return Challenge(params["realm"], params.get("service", ""), params.get("scope", ""))


async def read_bounded(response: httpx.Response, limit: int, what: str) -> bytes:
    """Read a streamed response's body, inflating gzip/deflate with a bound; raise past ``limit``."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        inflater: Any = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        inflater = zlib.decompressobj()
    elif encoding in ("", "identity"):
        inflater = None
    else:
        raise RegistryError(f"{what}: unsupported content encoding {encoding[:40]!r}")
    out = bytearray()
    async for raw in response.aiter_raw():
        if inflater is None:
            out += raw
        else:
            data = raw
            while data and len(out) <= limit:
                out += inflater.decompress(data, limit + 1 - len(out))
                data = inflater.unconsumed_tail
        if len(out) > limit:
            raise ReplyTooLarge(f"{what}: reply exceeds the limit of {limit} bytes")
    return bytes(out)


def http_error(status: int, body: bytes) -> str:
    """Ollama's ``<status>: <body>`` text, with a registry's JSON ``errors`` summarised."""
    text = body.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
        errs = doc.get("errors") if isinstance(doc, dict) else None
        if isinstance(errs, list) and errs and isinstance(errs[0], dict):
            text = "; ".join(str(e.get("message") or e.get("code") or "") for e in errs[:3])
    except ValueError:
        pass
    return f"{status}: {text[:512]}"


class RegistryClient:
    """Requests to one registry (``scheme://host``) on behalf of one repository."""

    def __init__(
        self,
        name: ModelName,
        *,
        insecure: bool = False,
        http: httpx.AsyncClient | None = None,
        base_url: str | None = None,
        key_path: Path | None = None,
    ) -> None:
        scheme = "http" if insecure else name.scheme
        if name.scheme == "http" and not insecure:
            raise RegistryError("insecure protocol http")
        self.name = name
        self.base = (base_url or f"{scheme}://{name.host}").rstrip("/")
        self.host = origin(self.base)
        self.token: str | None = None
        self.key_path = key_path  # None: ~/.ollama/id_ed25519
        self._own_http = http is None
        if http is None:
            try:  # proxies come from the environment (HTTPS_PROXY, ...); a bad one fails here
                # one SSL context for every client: loading the CA bundle costs ~25 ms a time
                http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0), follow_redirects=False,
                                         verify=ssl_context())
            except (ImportError, ValueError, httpx.InvalidURL) as e:
                raise RegistryError(f"invalid proxy setting in the environment (HTTPS_PROXY, HTTP_PROXY, "
                                    f"ALL_PROXY): {e}") from None
        self.http = http

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    # ---- URLs -------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.base}/v2/{self.name.namespace}/{self.name.model}/{path}"

    def headers_for(self, url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Default headers; the bearer token only when ``url`` is on the registry's own host."""
        h = {"User-Agent": user_agent(), "Accept-Encoding": "identity"}
        if self.token and origin(url) == self.host:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(extra or {})
        return h

    # ---- requests ---------------------------------------------------------------------------

    async def send(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, content: Any = None,
        retry_auth: bool = True,
    ) -> httpx.Response:
        """Send one request (following same-host redirects); on 401, fetch a token and retry once.

        The response's body is unread (the caller reads it with a bound, or closes it). A
        cross-host redirect is returned as is: the caller decides what to do with ``Location``.
        """
        replayable = content is None or isinstance(content, bytes)
        for attempt in (0, 1):
            resp = await self._send_following(method, url, headers, content)
            if resp.status_code == 401 and retry_auth and attempt == 0 and replayable:
                challenge = parse_challenge(resp.headers.get("www-authenticate", ""))
                await resp.aclose()
                if challenge is None:
                    raise RegistryError("401: unauthorized")
                await self.authenticate(challenge)
                continue
            return resp
        raise RegistryError("401: unauthorized")  # pragma: no cover - the loop always returns

    async def _send_following(self, method: str, url: str, headers: Mapping[str, str] | None,
                              content: Any) -> httpx.Response:
        for _ in range(MAX_REDIRECTS + 1):
            req = self.http.build_request(method, url, headers=self.headers_for(url, headers), content=content)
            try:
                resp = await self.http.send(req, stream=True)
            except httpx.HTTPError as e:
                raise RegistryError(f"{method} {_safe(url)}: {type(e).__name__}: {e}") from e
            location = resp.headers.get("location")
            if resp.status_code in (301, 302, 303, 307, 308) and location and method in ("GET", "HEAD"):
                target = urljoin(url, location)
                if origin(target) != origin(url):
                    return resp  # cross-host: the caller follows it without credentials
                await resp.aclose()
                url = target
                continue
            return resp
        raise RegistryError(f"{method} {_safe(url)}: too many redirects")

    async def check(self, resp: httpx.Response, what: str) -> None:
        """Raise for an error reply: ``NotFound`` for 404, else ``<what>: <status>: <body>``."""
        if resp.status_code < 400:
            return
        try:
            body = await read_bounded(resp, MAX_ERROR_BODY, what)
        except ReplyTooLarge:
            body = b"(error body too large)"
        except (RegistryError, httpx.HTTPError):
            body = b""
        finally:
            await resp.aclose()
        if resp.status_code == 404:
            raise NotFound()
        raise RegistryError(f"{what}: {http_error(resp.status_code, body)}")

    async def authenticate(self, challenge: Challenge) -> None:
        """Fetch a bearer token from the challenge's realm (which must be on the registry's host)."""
        realm = challenge.realm
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"invalid auth realm {realm[:200]!r}")
        if origin(realm) != self.host:
            raise RegistryError(
                f"auth realm host {origin(realm)!r} does not match the registry host {self.host!r}; "
                "refusing to send credentials to another host"
            )
        query = {"service": challenge.service, "ts": str(int(time.time())),
                 "nonce": base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")}
        params = [(k, v) for k, v in query.items()]
        for scope in challenge.scope.split(" "):
            if scope:
                params.append(("scope", scope))
        sep = "&" if "?" in realm else "?"
        url = f"{realm}{sep}{urlencode(params)}"
        headers = {"User-Agent": user_agent(), "Accept-Encoding": "identity"}
        try:  # signed with the user's key, as Ollama does; public registries do not need it
            headers["Authorization"] = Identity.load_or_create(self.key_path).sign_token_request(url)
        except (RegistryError, OSError) as e:
            log.warning("asking for a registry token without a signature: %s", e)
        try:
            resp = await self.http.send(self.http.build_request("GET", url, headers=headers), stream=True)
        except httpx.HTTPError as e:
            raise RegistryError(f"getting auth token: {type(e).__name__}: {e}") from e
        if resp.status_code >= 400:
            body = await read_bounded(resp, MAX_ERROR_BODY, "getting auth token")
            await resp.aclose()
            raise RegistryError(f"getting auth token: {http_error(resp.status_code, body)}")
        try:
            body = await read_bounded(resp, MAX_TOKEN_BODY, "auth token")
        finally:
            await resp.aclose()
        try:
            doc = json.loads(body)
        except ValueError:
            raise RegistryError("auth token: reply is not JSON") from None
        token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError("auth token: reply has no token")
        self.token = token


def _safe(url: str) -> str:
    """A URL for error messages, without its query string (which may hold signed credentials)."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}{p.path}"[:300]
