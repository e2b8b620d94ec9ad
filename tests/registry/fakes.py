"""Small, hostile-capable fakes of a registry, a CDN, a token realm and the Hugging Face Hub.

Each is a Starlette app that records the requests it saw (method, path, headers) so tests can
assert on where credentials went. Blobs are served with Range support, like the real ones.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

MANIFEST_MT = "application/vnd.docker.distribution.manifest.v2+json"


def digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def ranged(request: Request, data: bytes, headers: dict[str, str] | None = None) -> Response:
    rng = request.headers.get("range")
    h = {"Accept-Ranges": "bytes", **(headers or {})}
    if rng and rng.startswith("bytes="):
        start_s, _, end_s = rng[6:].partition("-")
        start = int(start_s)
        end = min(int(end_s) if end_s else len(data) - 1, len(data) - 1)
        h["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return Response(data[start:end + 1], status_code=206, headers=h)
    return Response(data, headers=h)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FakeRegistry:
    """``/v2/<ns>/<model>/manifests/<tag>`` and ``/blobs/<digest>``, with optional auth and CDN."""

    manifests: dict[str, bytes] = field(default_factory=dict)  # "ns/model:tag" -> bytes
    blobs: dict[str, bytes] = field(default_factory=dict)
    realm: str | None = None  # when set, every /v2 request needs "Bearer good-token"
    cdn: str | None = None  # when set, blob GETs redirect there
    manifest_headers: dict[str, str] = field(default_factory=dict)
    manifest_body: bytes | None = None  # overrides every manifest (hostile replies)
    seen: list[Seen] = field(default_factory=list)
    tokens: Recorder | None = None  # serves /token on the registry's own host

    def add_model(self, repo_tag: str, layers: list[tuple[str, bytes]]) -> bytes:
        config = json.dumps({"model_format": "gguf"}).encode()
        self.blobs[digest(config)] = config
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": MANIFEST_MT,
                               "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                          "digest": digest(config), "size": len(config)}, "layers": []}
        for media, data in layers:
            self.blobs[digest(data)] = data
            doc["layers"].append({"mediaType": media, "digest": digest(data), "size": len(data)})
        raw = json.dumps(doc).encode()
        self.manifests[repo_tag] = raw
        return raw

    def app(self) -> Starlette:
        async def manifest(request: Request) -> Response:
            self._record(request)
            if (denied := self._auth(request)) is not None:
                return denied
            p = request.path_params
            if self.manifest_body is not None:
                return Response(self.manifest_body, headers=self.manifest_headers)
            raw = self.manifests.get(f"{p['ns']}/{p['model']}:{p['tag']}")
            if raw is None:
                return JSONResponse({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
                                    status_code=404)
            return Response(raw, media_type=MANIFEST_MT, headers=self.manifest_headers)

        async def blob(request: Request) -> Response:
            self._record(request)
            if (denied := self._auth(request)) is not None:
                return denied
            d = request.path_params["digest"]
            if d not in self.blobs:
                return JSONResponse({"errors": [{"code": "BLOB_UNKNOWN"}]}, status_code=404)
            if self.cdn:
                return RedirectResponse(f"{self.cdn}/cdn/{d}?sig=abc", status_code=307)
            return ranged(request, self.blobs[d])

        routes = [Route("/v2/{ns}/{model}/manifests/{tag}", manifest), Route("/v2/{ns}/{model}/blobs/{digest}", blob)]
        if self.tokens is not None:
            routes += self.tokens.app().routes
        return Starlette(routes=routes)

    def _record(self, request: Request) -> None:
        self.seen.append(Seen(request.method, request.url.path, dict(request.headers)))

    def _auth(self, request: Request) -> Response | None:
        if self.realm is None or request.headers.get("authorization") == "Bearer good-token":
            return None
        challenge = f'Bearer realm="{self.realm}",service="fake",scope="repository:x/y:pull"'
        return JSONResponse({"errors": [{"code": "UNAUTHORIZED"}]}, status_code=401,
                            headers={"WWW-Authenticate": challenge})


@dataclass
class Recorder:
    """A token realm or CDN on another loopback address; records every request."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    token_body: bytes = b'{"token": "good-token"}'
    seen: list[Seen] = field(default_factory=list)

    def app(self) -> Starlette:
        async def token(request: Request) -> Response:
            self.seen.append(Seen(request.method, request.url.path, dict(request.headers)))
            return Response(self.token_body, media_type="application/json")

        async def cdn(request: Request) -> Response:
            self.seen.append(Seen(request.method, request.url.path, dict(request.headers)))
            return ranged(request, self.blobs[request.path_params["key"]])

        return Starlette(routes=[Route("/token", token), Route("/cdn/{key:path}", cdn)])


@dataclass
class FakeHub:
    """The Hub endpoints a pull uses: the tree API and ``resolve/main``."""

    files: dict[str, dict[str, bytes]] = field(default_factory=dict)  # repo -> path -> bytes
    lfs: set[str] = field(default_factory=set)  # paths stored in LFS (GGUFs)
    cdn: str | None = None
    token: str | None = None  # when set, required as a bearer token
    corrupt: set[str] = field(default_factory=set)  # paths served with flipped bytes
    seen: list[Seen] = field(default_factory=list)

    def tree(self, repo: str) -> list[dict[str, Any]]:
        out = []
        for path, data in self.files[repo].items():
            item: dict[str, Any] = {"type": "file", "path": path, "size": len(data),
                                    "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
            if path.endswith(".gguf"):
                item["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            out.append(item)
        return out

    def app(self) -> Starlette:
        def denied(request: Request) -> Response | None:
            self.seen.append(Seen(request.method, request.url.path, dict(request.headers)))
            if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse({"error": "Invalid credentials"}, status_code=401)
            return None

        async def tree(request: Request) -> Response:
            if (d := denied(request)) is not None:
                return d
            repo = f"{request.path_params['user']}/{request.path_params['repo']}"
            if repo not in self.files:
                return JSONResponse({"error": "Repository not found"}, status_code=404)
            return JSONResponse(self.tree(repo))

        async def resolve(request: Request) -> Response:
            if (d := denied(request)) is not None:
                return d
            repo = f"{request.path_params['user']}/{request.path_params['repo']}"
            path = request.path_params["path"]
            data = self.files.get(repo, {}).get(path)
            if data is None:
                return JSONResponse({"error": "Entry not found"}, status_code=404)
            if path in self.corrupt:
                data = data[:-8] + b"\xff" * 8
            if self.cdn and path.endswith(".gguf"):
                return RedirectResponse(f"{self.cdn}/cdn/{repo}/{path}", status_code=302)
            return ranged(request, data)

        return Starlette(routes=[
            Route("/api/models/{user}/{repo}/tree/main", tree),
            Route("/{user}/{repo}/resolve/main/{path:path}", resolve),
        ])


def gzip_bomb(size: int) -> bytes:
    return gzip.compress(b" " * size, compresslevel=9)
