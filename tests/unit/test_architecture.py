"""Imports flow one way (DESIGN.md): cli → server → engine → (sched | store | templates) → runner
→ (types | errors | envconfig). Nothing below ``server`` knows HTTP frameworks; nothing below
``engine`` knows the wire schema or the engine."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "pollama"

FORBIDDEN = {
    "engine": ("pollama.server", "pollama.cli", "fastapi", "starlette", "uvicorn"),
    "sched": ("pollama.server", "pollama.cli", "pollama.engine", "pollama.api", "fastapi", "starlette"),
    "store": ("pollama.server", "pollama.cli", "pollama.engine", "pollama.sched", "fastapi", "starlette"),
    "templates": ("pollama.server", "pollama.cli", "pollama.engine", "pollama.sched", "pollama.store", "fastapi"),
    "runner": ("pollama.server", "pollama.cli", "pollama.engine", "pollama.sched", "pollama.store", "fastapi"),
    "types": ("pollama.server", "pollama.cli", "pollama.engine", "pollama.sched", "pollama.store", "pollama.runner"),
    "openai": ("pollama.server", "pollama.cli", "pollama.engine", "fastapi", "starlette", "httpx"),
}


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_flow_one_way(layer: str) -> None:
    bad = []
    for path in sorted((SRC / layer).rglob("*.py")):
        for mod in imports(path):
            if any(mod == f or mod.startswith(f + ".") for f in FORBIDDEN[layer]):
                bad.append(f"{path.relative_to(SRC)} imports {mod}")
    assert bad == []


def test_no_module_reads_the_environment_except_envconfig() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name in ("envconfig.py",) or "runner" in path.parts or "testing" in path.parts:
            continue
        text = path.read_text()
        if "os.environ" in text or "os.getenv" in text:
            offenders.append(str(path.relative_to(SRC)))
    assert offenders == []
