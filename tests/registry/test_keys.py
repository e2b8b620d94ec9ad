"""The ed25519 identity (store/registry/keys.py): Ollama's key files, checked with OpenSSH's own
ssh-keygen, and token requests signed over the exact URL, checked by a realm that verifies."""

from __future__ import annotations

import base64
import hashlib
import stat
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pollama.errors import RegistryError
from pollama.store.registry import pull_model
from pollama.store.registry.keys import Identity, default_key_path
from pollama.store.store import Store
from pollama.types.names import ModelName
from tests.registry.fakes import FakeRegistry
from tests.registry.servers import ServedApp

MODEL = "application/vnd.ollama.image.model"


def ssh_keygen(*args: str) -> str:
    return subprocess.run(["ssh-keygen", *args], check=True, capture_output=True, text=True).stdout


def test_a_new_key_is_in_ollamas_files_and_openssh_reads_it(home: Path) -> None:
    ident = Identity.load_or_create()
    path = default_key_path()
    assert path == home / ".ollama" / "id_ed25519"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    pub = path.with_name("id_ed25519.pub").read_text().strip()
    assert pub == ident.public_line() and pub.startswith("ssh-ed25519 AAAA")
    assert ssh_keygen("-y", "-f", str(path)).split()[:2] == pub.split()[:2]  # OpenSSH derives the same key
    assert Identity.load_or_create().public_line() == pub  # the second call reads it, never replaces it


def test_a_key_made_by_ssh_keygen_is_used_as_is(home: Path) -> None:
    path = default_key_path()
    path.parent.mkdir(parents=True)
    ssh_keygen("-t", "ed25519", "-N", "", "-q", "-f", str(path))
    made = path.with_name("id_ed25519.pub").read_text().split()[:2]
    assert Identity.load_or_create().public_line().split() == made


@pytest.mark.parametrize("content", [b"", b"garbage", b"-----BEGIN OPENSSH PRIVATE KEY-----\ntruncated", b"x" * (1 << 20)])
def test_a_broken_key_file_is_a_clear_error_and_is_left_alone(home: Path, content: bytes) -> None:
    path = default_key_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(RegistryError, match="id_ed25519"):
        Identity.load_or_create()
    assert path.read_bytes() == content


def test_an_rsa_key_is_refused(home: Path) -> None:
    path = default_key_path()
    path.parent.mkdir(parents=True)
    ssh_keygen("-t", "rsa", "-b", "2048", "-N", "", "-q", "-f", str(path))
    with pytest.raises(RegistryError, match="not an ed25519 key"):
        Identity.load_or_create()


class VerifyingRealm:
    """A token endpoint that gives a token only for a valid Ollama-style signature."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def app(self) -> Starlette:
        async def token(request: Request) -> Response:
            auth = request.headers.get("authorization", "")
            ok = _valid(auth, str(request.url))
            self.seen.append({"auth": auth, "url": str(request.url), "ok": ok})
            if not ok:
                return JSONResponse({"errors": [{"code": "UNAUTHORIZED", "message": "bad signature"}]}, status_code=401)
            return JSONResponse({"token": "good-token"})

        return Starlette(routes=[Route("/token", token)])


def _valid(auth: str, url: str) -> bool:
    blob_b64, _, sig_b64 = auth.partition(":")
    try:
        blob = base64.b64decode(blob_b64, validate=True)
        (n,) = struct.unpack(">I", blob[:4])
        kind, rest = blob[4:4 + n], blob[4 + n:]
        (m,) = struct.unpack(">I", rest[:4])
        if kind != b"ssh-ed25519" or m != 32:
            return False
        key = Ed25519PublicKey.from_public_bytes(rest[4:36])
        body = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()
        key.verify(base64.b64decode(sig_b64, validate=True), f"GET,{url},{body}".encode())
        return True
    except (ValueError, struct.error, InvalidSignature):
        return False


async def test_the_token_request_is_signed_over_its_exact_url(home: Path, tmp_path: Path) -> None:
    realm = VerifyingRealm()
    reg = FakeRegistry()
    reg.add_model("ns/m:latest", [(MODEL, b"weights")])
    app = reg.app()
    app.router.routes.extend(realm.app().routes)
    store = Store(tmp_path / "models")
    with ServedApp(app) as srv:
        reg.realm = f"{srv.url}/token"
        out = [p async for p in pull_model(store, ModelName.parse(f"{srv.netloc}/ns/m"), insecure=True)]
    assert out[-1] == {"status": "success"}
    assert realm.seen and all(s["ok"] for s in realm.seen)
    assert "ts=" in realm.seen[0]["url"] and "nonce=" in realm.seen[0]["url"] and "scope=" in realm.seen[0]["url"]
    pub = default_key_path().with_name("id_ed25519.pub").read_text().split()[1]
    assert realm.seen[0]["auth"].split(":")[0] == pub  # signed with the key now in ~/.ollama
    # and the check is real: the same header over another URL does not verify
    assert not _valid(realm.seen[0]["auth"], realm.seen[0]["url"] + "&x=1")
