"""The ed25519 identity a registry knows a user by: ``~/.ollama/id_ed25519``, as Ollama keeps it.

The key files are Ollama's own (OpenSSH private key, ``0600``; ``id_ed25519.pub`` an
``authorized_keys`` line), so a key made by Ollama signs for pollama and the other way round;
adding the ``.pub`` line to an ollama.com (or Hugging Face) account is what lets pushes to your
namespace and private pulls through.

The registry's token flow (reference §8.2) signs ``GET,<token URL>,<base64(hex(sha256("")))>``
and sends ``Authorization: <base64 public-key blob>:<base64 signature>`` to the realm — which
the client has already checked is on the registry's own host.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pollama.errors import RegistryError

log = logging.getLogger("pollama.registry")

MAX_KEY_FILE = 64 << 10
_EMPTY_BODY = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()


def default_key_path() -> Path:
    """``~/.ollama/id_ed25519`` (Ollama's place, whatever OLLAMA_MODELS says)."""
    return Path.home() / ".ollama" / "id_ed25519"


class Identity:
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key

    @classmethod
    def load(cls, path: Path) -> Identity:
        """Read an OpenSSH ed25519 private key; a clear RegistryError for anything else."""
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_KEY_FILE + 1)
        except OSError as e:
            raise RegistryError(f"reading the private key {path}: {e.strerror or e}") from None
        if len(data) > MAX_KEY_FILE:
            raise RegistryError(f"{path} is not a private key: larger than {MAX_KEY_FILE} bytes")
        try:
            key = serialization.load_ssh_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            raise RegistryError(f"{path} is not a usable OpenSSH private key ({e}); "
                                "move it away and a new one is made on the next pull or push") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise RegistryError(f"{path} holds a {type(key).__name__}, not an ed25519 key")
        return cls(key)

    @classmethod
    def create(cls, path: Path) -> Identity:
        """Make a new key pair at ``path`` and ``path.pub`` (never overwriting one)."""
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption())
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private)
        ident = cls(key)
        pub = path.with_name(path.name + ".pub")
        pub.write_text(ident.public_line() + "\n")
        os.chmod(pub, 0o644)
        log.info("Couldn't find '%s'. Generated a new private key. Your new public key is:\n\n%s\n",
                 path, ident.public_line())
        return ident

    @classmethod
    def load_or_create(cls, path: Path | None = None) -> Identity:
        path = path or default_key_path()
        try:
            return cls.load(path)
        except RegistryError:
            if path.exists():
                raise
        try:
            return cls.create(path)
        except FileExistsError:  # made by a concurrent pull meanwhile
            return cls.load(path)

    def public_line(self) -> str:
        """The ``authorized_keys`` line: ``ssh-ed25519 AAAA…``."""
        return self.key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                  serialization.PublicFormat.OpenSSH).decode()

    def sign(self, data: bytes) -> str:
        """``<base64 public-key blob>:<base64 signature>`` (Ollama's auth.Sign)."""
        blob = self.public_line().split(" ")[1]
        return f"{blob}:{base64.b64encode(self.key.sign(data)).decode()}"

    def sign_token_request(self, url: str) -> str:
        return self.sign(f"GET,{url},{_EMPTY_BODY}".encode())
