"""A model as the engine sees it: a manifest's layers read into typed fields."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pollama.errors import ModelNotFound
from pollama.store import manifest as mt
from pollama.store.gguf import GGUFInfo, human_number, read_gguf
from pollama.store.store import ManifestEntry, Store
from pollama.types.names import ModelName

_GGUF_CACHE: dict[str, GGUFInfo] = {}


@dataclass
class Model:
    """Everything about one stored model that inference, show and list need."""

    name: ModelName
    entry: ManifestEntry
    model_path: Path | None
    template: str | None = None  # Go TEMPLATE layer
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    adapters: list[Path] = field(default_factory=list)
    projectors: list[Path] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    parent_model: str = ""

    @cached_property
    def gguf(self) -> GGUFInfo:
        """GGUF metadata of the model layer (cached per blob, it does not change)."""
        if self.model_path is None:
            return GGUFInfo(version=3)
        key = str(self.model_path)
        if key not in _GGUF_CACHE:
            _GGUF_CACHE[key] = read_gguf(self.model_path)
        return _GGUF_CACHE[key]

    @property
    def digest(self) -> str:
        return self.entry.digest

    @property
    def jinja_template(self) -> str | None:
        return self.gguf.chat_template

    @property
    def train_ctx(self) -> int:
        return self.gguf.context_length or int(self.config.get("context_length", 0) or 0)

    def details(self) -> dict[str, Any]:
        family = self.config.get("model_family") or self.gguf.architecture
        families = self.config.get("model_families") or ([family] if family else None)
        return {
            "parent_model": self.parent_model,
            "format": self.config.get("model_format", "gguf"),
            "family": family or "",
            "families": families,
            "parameter_size": self.config.get("model_type") or human_number(self.gguf.parameter_count),
            "quantization_level": self.config.get("file_type") or self.gguf.file_type,
        }

    def capabilities(self) -> list[str]:
        """Ollama's ordered capability list (reference §2.7)."""
        caps: list[str] = []
        arch = self.gguf.architecture
        if self.model_path is not None and self.gguf.metadata.get(f"{arch}.pooling_type") is not None:
            caps.append("embedding")
        else:
            caps.append("completion")
        if self.projectors or self.gguf.metadata.get(f"{arch}.vision.block_count") is not None:
            caps.append("vision")
        go = self.template or ""
        jinja = self.jinja_template or ""
        if ".Tools" in go or (not go and ("tools" in jinja or "tool_call" in jinja)):
            caps.append("tools")
        if ".Suffix" in go:
            caps.append("insert")
        text = go or jinja
        if "<think>" in text and "</think>" in text:
            caps.append("thinking")
        for extra in self.config.get("capabilities") or []:
            if isinstance(extra, str) and extra not in caps:
                caps.append(extra)
        return caps


def load_model(store: Store, name: ModelName, not_found_message: str | None = None) -> Model:
    """Read ``name``'s manifest and its small layers. Raises ModelNotFound."""
    try:
        entry = store.entry(name)
    except ModelNotFound:
        raise ModelNotFound(name.display, not_found_message) from None
    m = entry.manifest
    model = Model(name=entry.name, entry=entry, model_path=None)
    for layer in m.layers:
        t = layer.media_type
        if t == mt.MT_MODEL and model.model_path is None:
            model.model_path = store.blob_path(layer.digest)
            model.parent_model = layer.from_ or ""
        elif t in (mt.MT_TEMPLATE, mt.MT_PROMPT):
            model.template = store.read_blob(layer.digest).decode("utf-8", "replace")
        elif t == mt.MT_SYSTEM:
            model.system = store.read_blob(layer.digest).decode("utf-8", "replace")
        elif t == mt.MT_PARAMS:
            model.params = _json_obj(store.read_blob(layer.digest), dict)
        elif t == mt.MT_MESSAGES:
            model.messages = _json_obj(store.read_blob(layer.digest), list)
        elif t == mt.MT_LICENSE:
            model.licenses.append(store.read_blob(layer.digest).decode("utf-8", "replace"))
        elif t == mt.MT_ADAPTER:
            model.adapters.append(store.blob_path(layer.digest))
        elif t == mt.MT_PROJECTOR:
            model.projectors.append(store.blob_path(layer.digest))
    try:
        model.config = _json_obj(store.read_blob(m.config.digest), dict)
    except Exception:  # a missing or odd config blob is not fatal; GGUF metadata fills in
        model.config = {}
    if model.parent_model and model.parent_model.endswith(".gguf"):
        model.parent_model = ""
    return model


def _json_obj(raw: bytes, kind: type) -> Any:
    try:
        v = json.loads(raw)
    except ValueError:
        return kind()
    return v if isinstance(v, kind) else kind()
