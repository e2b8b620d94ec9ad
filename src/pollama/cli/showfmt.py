"""``pollama show MODEL``: the indented sections Ollama prints."""

from __future__ import annotations

from typing import Any


def _section(title: str, rows: list[tuple[str, str]]) -> list[str]:
    if not rows:
        return []
    width = max(len(k) for k, _ in rows)
    return [f"  {title}"] + [f"    {k.ljust(width)}    {v}" for k, v in rows] + [""]


def _first_lines(text: str) -> list[tuple[str, str]]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    out = [(ln.strip(), "") for ln in lines[:2]]
    if len(lines) > 2:
        out.append(("...", ""))
    return out


def render_show(info: dict[str, Any], verbose: bool = False) -> str:
    d = info.get("details") or {}
    mi = info.get("model_info") or {}
    arch = mi.get("general.architecture", d.get("family", ""))
    model_rows = [("architecture", str(arch)), ("parameters", str(d.get("parameter_size", "")))]
    if f"{arch}.context_length" in mi:
        model_rows.append(("context length", str(mi[f"{arch}.context_length"])))
    if f"{arch}.embedding_length" in mi:
        model_rows.append(("embedding length", str(mi[f"{arch}.embedding_length"])))
    model_rows.append(("quantization", str(d.get("quantization_level", ""))))
    out = [""] + _section("Model", model_rows)
    out += _section("Capabilities", [(c, "") for c in info.get("capabilities") or []])
    params = []
    for line in (info.get("parameters") or "").splitlines():
        k, _, v = line.partition(" ")
        params.append((k, v.strip()))
    out += _section("Parameters", params)
    if verbose:
        out += _section("Metadata", [(k, str(v)[:80]) for k, v in mi.items()])
    if info.get("system"):
        out += _section("System", _first_lines(info["system"]))
    if info.get("license"):
        out += _section("License", _first_lines(info["license"]))
    return "\n".join(line.rstrip() for line in out)
