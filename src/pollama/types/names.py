"""Model names: ``[scheme://]host/namespace/model:tag`` (reference §6).

Parsing works from the right: the tag follows the last ``:`` that comes after the last ``/``; the
model is the last segment, the namespace the one before it, and whatever remains is the host.
Missing parts take the defaults ``registry.ollama.ai``, ``library`` and ``latest``.

>>> ModelName.parse("llama3.2").display
'llama3.2:latest'
>>> ModelName.parse("hf.co/bartowski/SmolLM2-GGUF:Q4_K_M").display
'hf.co/bartowski/SmolLM2-GGUF:Q4_K_M'
>>> ModelName.parse("me/mymodel:v1").path_parts
('registry.ollama.ai', 'me', 'mymodel', 'v1')
>>> ModelName.parse("../../etc/passwd")
Traceback (most recent call last):
...
pollama.errors.InvalidModelName: invalid model name
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pollama.errors import InvalidModelName

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
DEFAULT_SCHEME = "https"

_HOST = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,349}$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,79}$")
_MODEL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,79}$")
_TAG = _MODEL


@dataclass(frozen=True)
class ModelName:
    """A fully qualified, validated model name. Every part is safe as a path component."""

    host: str
    namespace: str
    model: str
    tag: str
    scheme: str = DEFAULT_SCHEME

    @classmethod
    def parse(cls, text: str) -> ModelName:
        """Parse and validate ``text``; raise :class:`InvalidModelName` when it is not a name."""
        raw = text
        text = text.strip()
        scheme = DEFAULT_SCHEME
        if "://" in text:
            scheme, text = text.split("://", 1)
            if scheme not in ("http", "https"):
                raise InvalidModelName(raw)
        if "@" in text:  # digest references are not supported (reference §6)
            raise InvalidModelName(raw)
        tag = DEFAULT_TAG
        colon, slash = text.rfind(":"), text.rfind("/")
        if colon > slash:
            text, tag = text[:colon], text[colon + 1 :]
        parts = text.split("/")
        if len(parts) > 3:
            raise InvalidModelName(raw)
        model = parts[-1]
        namespace = parts[-2] if len(parts) >= 2 else DEFAULT_NAMESPACE
        host = parts[-3] if len(parts) >= 3 else DEFAULT_HOST
        name = cls(host=host, namespace=namespace, model=model, tag=tag, scheme=scheme)
        if not name.is_valid():
            raise InvalidModelName(raw)
        return name

    def is_valid(self) -> bool:
        """True when every part matches its grammar (and so cannot escape a directory)."""
        return bool(
            _HOST.match(self.host)
            and _NAMESPACE.match(self.namespace)
            and _MODEL.match(self.model)
            and _TAG.match(self.tag)
            and ".." not in self.host
        )

    @property
    def path_parts(self) -> tuple[str, str, str, str]:
        """The four directory components under ``manifests/``."""
        return (self.host, self.namespace, self.model, self.tag)

    @property
    def display(self) -> str:
        """The shortest form that names this model; the tag is always kept."""
        if self.host.lower() != DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace.lower() != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"

    @property
    def full(self) -> str:
        """``host/namespace/model:tag`` (used in capability error messages)."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def repository(self) -> str:
        """``namespace/model``, the repository path on a registry."""
        return f"{self.namespace}/{self.model}"

    def casefold_key(self) -> tuple[str, ...]:
        """Key for case-insensitive matching against names already on disk."""
        return tuple(p.lower() for p in self.path_parts)

    def __str__(self) -> str:
        return self.display
