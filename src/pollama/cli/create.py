"""``pollama create NAME [-f Modelfile]`` and ``pollama push NAME`` (reference §9.2, §11).

``create`` parses the Modelfile locally, resolves each FROM/ADAPTER: a path (relative to the
Modelfile's directory, ``~`` expanded) must be a regular file, or a directory holding one model
GGUF (plus an optional ``mmproj`` projector) — a split GGUF's first shard, or a directory of one
split GGUF's shards, stands for every shard, and the server merges them; each file is hashed, uploaded with ``POST
/api/blobs/<digest>`` unless ``HEAD`` says the server has it, and named in ``files``. Anything
else is a model name (``from``) or a blob digest. Devices, FIFOs and other special files are
refused, so ``FROM /dev/zero`` cannot hang the client or fill the server's disk.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from pollama.api.client import APIError, Client
from pollama.store.gguf_split import missing_text, shard_names, split_name

_DIGEST = re.compile(r"^@?sha256[:-][0-9a-fA-F]{64}$")
BLOCK = 1 << 20


class CreateError(Exception):
    pass


def resolve_path(ref: str, base: Path) -> Path | None:
    """The local file or directory ``ref`` names, or None when it names none (a model name)."""
    p = Path(os.path.expanduser(ref))
    if not p.is_absolute():
        p = base / p
    try:
        st = p.stat()
    except (OSError, ValueError):
        return None
    if stat.S_ISDIR(st.st_mode):
        return p
    if not stat.S_ISREG(st.st_mode):
        raise CreateError(f"{ref}: not a regular file")
    return p


def gguf_files(path: Path) -> list[Path]:
    """The files a FROM path stands for: itself (with its sibling shards when it is the first of
    a split GGUF), or a directory's GGUFs (model first; one model, or one split model's shards)."""
    if path.is_file():
        split = split_name(path.name)
        return _shard_set(path.parent, split[0], split[2]) if split and split[1] == 1 else [path]
    found = sorted(p for p in path.iterdir() if p.suffix.lower() == ".gguf" and p.is_file())
    models = [p for p in found if not p.name.lower().startswith("mmproj")]
    projectors = [p for p in found if p.name.lower().startswith("mmproj")]
    splits = {(s[0], s[2]) for p in models if (s := split_name(p.name))}
    if len(splits) == 1 and all(split_name(p.name) for p in models):
        [(prefix, count)] = splits
        return _shard_set(path, prefix, count) + projectors[:1]
    if len(models) != 1:
        raise CreateError(f"{path}: expected one GGUF model file, found {len(models)} "
                          "(safetensors conversion is not supported)")
    return models + projectors[:1]


def _shard_set(folder: Path, prefix: str, count: int) -> list[Path]:
    paths = [folder / n for n in shard_names(prefix, count)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise CreateError(f"{folder / prefix}: split GGUF is incomplete, missing {missing_text(missing)}")
    return paths


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
    return f"sha256:{h.hexdigest()}"


def upload(c: Client, path: Path) -> str:
    digest = sha256_file(path)
    if c.http.head(f"/api/blobs/{digest}").status_code == 200:
        return digest
    size = path.stat().st_size

    terminal = sys.stderr.isatty()

    def body() -> Iterator[bytes]:
        sent, shown = 0, -1
        with open(path, "rb") as f:
            while block := f.read(BLOCK):
                sent += len(block)
                pct = 100 * sent // max(size, 1)
                if terminal:  # one line, redrawn
                    click.echo(f"\rcopying file {digest} {pct}%", nl=False, err=True)
                elif pct // 25 > shown:  # a log: a line at each quarter
                    shown = pct // 25
                    click.echo(f"copying file {digest} {25 * shown}%", err=True)
                yield block
        if terminal:
            click.echo("", err=True)

    r = c.http.post(f"/api/blobs/{digest}", content=body(), headers={"Content-Length": str(size)},
                    timeout=None)
    if r.status_code >= 400:
        raise APIError(r.json().get("error", r.text) if r.content else r.reason_phrase, r.status_code)
    return digest


def build_request(c: Client, text: str, base: Path) -> dict[str, Any]:
    from pollama.store.modelfile import parse_modelfile

    mf = parse_modelfile(text)
    if not mf.from_:
        raise CreateError("no FROM line")
    files: dict[str, str] = {}
    adapters: dict[str, str] = {}
    model_from: str | None = None
    for ref in mf.from_:
        path = resolve_path(ref, base)
        if path is not None:
            for f in gguf_files(path):
                files[f.name] = upload(c, f)
        elif _DIGEST.match(ref):
            files[f"{ref.lstrip('@')[7:19]}.gguf"] = ref.lstrip("@")
        else:
            model_from = ref
    for ref in mf.adapters:
        path = resolve_path(ref, base)
        if path is None:
            raise CreateError(f"ADAPTER {ref}: no such file")
        for f in gguf_files(path):
            adapters[f.name] = upload(c, f)
    return mf.to_create_request(model_from=model_from, files=files or None, adapters=adapters or None)


def register(cli: click.Group) -> None:
    from pollama.cli.main import api_call, client, fail

    @cli.command(context_settings={"help_option_names": ["-h", "--help"]})
    @click.argument("model")
    @click.option("-f", "--file", "file", type=click.Path(dir_okay=False), help='Name of the Modelfile (default "Modelfile")')
    @click.option("-q", "--quantize", help="Quantize an F32/F16/BF16 model: q4_K_M, q4_K_S, q8_0 (or convert: f16, f32, bf16)")
    def create(model: str, file: str | None, quantize: str | None) -> None:
        """Create a model from a Modelfile."""
        from pollama.cli.progress import show_progress
        from pollama.errors import PollamaError

        if file is not None:
            path = Path(file)
            if not path.is_file():
                fail("specified Modelfile wasn't found")
            text, base = path.read_text(encoding="utf-8", errors="replace"), path.resolve().parent
        elif Path("Modelfile").is_file():
            text, base = Path("Modelfile").read_text(encoding="utf-8", errors="replace"), Path.cwd()
        else:
            text, base = "FROM .\n", Path.cwd()
        c = client()
        try:
            click.echo("gathering model components", err=True)
            try:
                body = build_request(c, text, base)
            except (CreateError, PollamaError) as e:
                fail(str(e))
            except APIError as e:
                fail(e.message)
            body["model"] = model
            if quantize:
                body["quantize"] = quantize
            api_call(lambda: show_progress(c.stream("/api/create", body)))
        finally:
            c.close()

    @cli.command(context_settings={"help_option_names": ["-h", "--help"]})
    @click.argument("model")
    @click.option("--insecure", is_flag=True, help="Use an insecure registry")
    def push(model: str, insecure: bool) -> None:
        """Push a model to a registry."""
        from pollama.cli.progress import show_progress

        c = client()
        try:
            show_progress(c.stream("/api/push", {"model": model, "insecure": insecure}))
        except APIError as e:
            if "access denied" in e.message.lower() or "unauthorized" in e.message.lower():
                fail("you are not authorized to push to this namespace, create the model under a namespace you own")
            fail(e.message)
        finally:
            c.close()


__all__ = ["register", "build_request", "resolve_path"]
