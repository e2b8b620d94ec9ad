"""Docker distribution v2 manifests with Ollama's layer media types (reference §7.2–§7.3).

Manifests are parsed defensively: every digest is checked against ``sha256:[0-9a-f]{64}`` before
it can become a path, sizes must be non-negative integers, and the document is size-bounded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pollama.errors import PollamaError

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"

MT_MODEL = "application/vnd.ollama.image.model"
MT_ADAPTER = "application/vnd.ollama.image.adapter"
MT_PROJECTOR = "application/vnd.ollama.image.projector"
MT_TEMPLATE = "application/vnd.ollama.image.template"
MT_PROMPT = "application/vnd.ollama.image.prompt"  # legacy name for a template layer
MT_SYSTEM = "application/vnd.ollama.image.system"
MT_PARAMS = "application/vnd.ollama.image.params"
MT_MESSAGES = "application/vnd.ollama.image.messages"
MT_LICENSE = "application/vnd.ollama.image.license"

MAX_MANIFEST_BYTES = 4 << 20
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class InvalidManifest(PollamaError):
    """A manifest that is not valid JSON of the expected shape."""


def valid_digest(digest: str) -> bool:
    """True for ``sha256:<64 lowercase hex>`` and nothing else."""
    return bool(_DIGEST.match(digest))


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str
    size: int
    from_: str | None = None
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.from_:
            d["from"] = self.from_
        if self.name:
            d["name"] = self.name
        return d

    @classmethod
    def from_json(cls, d: Any) -> Layer:
        if not isinstance(d, dict):
            raise InvalidManifest("invalid manifest: layer is not an object")
        digest, size, mt = d.get("digest"), d.get("size"), d.get("mediaType")
        if not isinstance(digest, str) or not valid_digest(digest):
            raise InvalidManifest(f"invalid manifest: invalid digest {str(digest)[:80]!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidManifest("invalid manifest: invalid layer size")
        if not isinstance(mt, str):
            raise InvalidManifest("invalid manifest: layer has no mediaType")
        frm, name = d.get("from"), d.get("name")
        return cls(mt, digest, size, frm if isinstance(frm, str) else None, name if isinstance(name, str) else None)


@dataclass
class Manifest:
    config: Layer
    layers: list[Layer] = field(default_factory=list)
    schema_version: int = 2
    media_type: str = MANIFEST_MEDIA_TYPE

    def to_bytes(self) -> bytes:
        doc = {
            "schemaVersion": self.schema_version,
            "mediaType": self.media_type,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        if len(raw) > MAX_MANIFEST_BYTES:
            raise InvalidManifest("invalid manifest: too large")
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidManifest(f"invalid manifest: {e}") from e
        if not isinstance(doc, dict) or "config" not in doc or not isinstance(doc.get("layers"), list):
            raise InvalidManifest("invalid manifest: missing config or layers")
        return cls(
            config=Layer.from_json(doc["config"]),
            layers=[Layer.from_json(x) for x in doc["layers"]],
            schema_version=int(doc.get("schemaVersion", 2)) if isinstance(doc.get("schemaVersion", 2), int) else 2,
            media_type=str(doc.get("mediaType", MANIFEST_MEDIA_TYPE)),
        )

    def all_layers(self) -> list[Layer]:
        return [self.config, *self.layers]

    def digests(self) -> set[str]:
        return {layer.digest for layer in self.all_layers()}

    @property
    def total_size(self) -> int:
        return sum(layer.size for layer in self.all_layers())

    def first(self, media_type: str) -> Layer | None:
        for layer in self.layers:
            if layer.media_type == media_type:
                return layer
        return None

    def of_type(self, *media_types: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type in media_types]
