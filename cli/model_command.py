"""``fim-lsp model list|info|pull|path|rm``: the model registry and cache from the shell.

``info`` reads the GGUF header of a cached file (or any local .gguf) for the figures the
memory arithmetic needs; for a model not downloaded yet it uses the registry's figures
and says so. Memory is shown for the options in force (``--options`` / FIM_LSP_OPTIONS /
the defaults): ``nCtx``, ``kvCacheType`` and ``documentStreams``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fim import models
from fim.config import Config
from fim.gguf_info import GGUFError, MemoryEstimate, ModelShape, human_bytes, mib, model_facts


def add_parser(commands: Any) -> None:
    model = commands.add_parser(
        "model",
        help="the model registry: list, info, pull, path, rm",
        description="List, describe, fetch, locate or remove models.",
    )
    actions = model.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="registry models, cached or not, with sizes")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    info = actions.add_parser("info", help="size, SHA-256, FIM template, context length, memory need")
    info.add_argument("name", help="registry name or path to a .gguf file")
    info.add_argument("--json", action="store_true", help="print the facts as JSON")
    info.add_argument("--options", help="daemon options as JSON, e.g. '{\"nCtx\": 4096}'")
    pull = actions.add_parser("pull", help="download a registry model and check its SHA-256")
    pull.add_argument("name")
    path = actions.add_parser("path", help="print the cached file, fetching it first if needed")
    path.add_argument("name")
    remove = actions.add_parser("rm", help="delete cached registry models")
    remove.add_argument("names", nargs="+", metavar="NAME")
    model.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "list":
            return _list(args.json)
        if args.action == "info":
            return _info(args.name, args.json, args.options)
        if args.action == "rm":
            return _remove(args.names)
        path = models.pull(args.name) if args.action == "pull" else models.resolve(args.name)
        print(path)
        return 0
    except models.ModelError as error:
        print(f"fim-lsp: {error}", file=sys.stderr)
        return 1


def options_config(options: str | None) -> Config:
    """The options in force: defaults, then FIM_LSP_OPTIONS, then ``--options``."""
    from cli.options import load_config

    config, problems = load_config(options)
    for problem in problems:
        print(problem, file=sys.stderr)
    return config


def _list(as_json: bool) -> int:
    rows: list[dict[str, Any]] = []
    for entry in models.REGISTRY.values():
        path = models.cached_path(entry)
        cached = path.is_file()
        rows.append(
            {
                "name": entry.name,
                "default": entry.name == models.DEFAULT_MODEL,
                "cached": cached,
                "path": str(path),
                "size": path.stat().st_size if cached else entry.size or entry.approximate_size,
                "size_exact": cached or entry.size is not None,
                "description": entry.description,
                "source": entry.source.describe(),
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'NAME':22} {'CACHED':7} {'SIZE':>9}  DESCRIPTION")
    for row in rows:
        size = human_bytes(row["size"]) if row["size_exact"] else "~" + human_bytes(row["size"])
        default = " (default)" if row["default"] else ""
        mark = "yes" if row["cached"] else "-"
        print(f"{row['name']:22} {mark:7} {size:>9}  {row['description']}{default}")
    total = sum(row["size"] for row in rows if row["cached"])
    print(f"\ncache: {models.cache_dir()} ({human_bytes(total)} used)")
    print("fetch with `fim-lsp model pull NAME`, delete with `fim-lsp model rm NAME`")
    return 0


def build_repacks() -> bool:
    """Whether this machine's llama.cpp copies Q4 weights into repacked layouts at load."""
    from fim import hardware

    try:
        build = hardware.llama_build()
    except Exception:  # no usable llama.cpp: count the worst case
        return True
    return build.backends.get("CPU", {}).get("REPACK") == "1"


def memory_lines(estimate: MemoryEstimate) -> list[str]:
    """The memory arithmetic, one line per term, as ``info`` and ``doctor`` print it."""
    lines = [
        f"weights            {mib(estimate.weights):>12}",
        f"KV cache           {mib(estimate.kv_cache):>12}   "
        f"(nCtx {estimate.n_ctx}, {estimate.kv_cache_type}, shared by the request and "
        f"{estimate.sequences - 1} document streams)",
        f"compute + output   {mib(estimate.compute + estimate.output):>12}   "
        "(logits of a 512-token batch, one row per sequence)",
    ]
    if estimate.repacked:
        lines.insert(1, f"repacked weights   {mib(estimate.repacked):>12}   (copied at load for this CPU)")
    lines.append(f"total              {mib(estimate.total):>12}")
    return lines


def _info(name: str, as_json: bool, options: str | None) -> int:
    config = options_config(options)
    entry = None if models.is_path(name) else models.lookup(name)
    path = Path(name).expanduser() if entry is None else models.cached_path(entry)
    cached = path.is_file()
    if entry is None and not cached:
        raise models.ModelError(f"model file not found: {path}")
    info: dict[str, Any] = {"name": entry.name if entry else str(path), "path": str(path), "cached": cached}
    shape: ModelShape | None = entry.shape if entry else None
    if entry:
        info.update(description=entry.description, source=entry.source.describe())
        info["size"] = entry.size or entry.approximate_size
        info["size_exact"] = entry.size is not None
        info["sha256"] = entry.sha256
        info["sha256_checked_against"] = "pinned in the registry" if entry.sha256 else "the hub, at download"
    if cached:
        stamp = models.read_stamp(path) or {}
        info["size"], info["size_exact"] = path.stat().st_size, True
        info["sha256"] = info.get("sha256") or stamp.get("sha256")
        info["verified"] = models.is_verified(entry, path) if entry else None
        try:
            facts = model_facts(path)
        except GGUFError as error:
            raise models.ModelError(str(error)) from error
        shape = facts
        info["gguf"] = facts.as_dict()
        info["fim_template"] = facts.fim_template
        info["context_length"] = facts.context_length
    estimate = None
    if shape is not None:
        estimate = shape.memory(
            config.n_ctx, config.kv_cache_type, config.document_streams, repack=build_repacks()
        )
        info["memory"] = estimate.as_dict()
        info["memory_from"] = "from the GGUF header" if cached else "from registry figures; not downloaded"
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['name']}{'' if cached else '  (not downloaded)'}")
    if entry:
        print(f"  {entry.description}")
        print(f"  source:          {entry.source.describe()}")
    size = human_bytes(info["size"]) if info.get("size_exact") else f"~{human_bytes(info['size'])}"
    print(f"  file:            {path} ({size})")
    if info.get("sha256"):
        print(f"  sha256:          {info['sha256']} ({info.get('sha256_checked_against', 'local file')})")
    elif entry:
        print("  sha256:          taken from the hub when it is downloaded, then recorded")
    if cached:
        verified = info.get("verified")
        if entry is not None and verified is not None:
            state = "yes" if verified else f"NO: run `fim-lsp model pull {entry.name}`"
            print(f"  verified:        {state}")
        facts_dict = info["gguf"]
        print(f"  FIM template:    {facts_dict['fim_template'] or 'none (not a FIM model)'}")
        print(f"  context length:  {facts_dict['context_length']} tokens (trained)")
        architecture = (
            f"{facts_dict['architecture']}, {facts_dict['layers']} layers, "
            f"{facts_dict['kv_heads']} KV heads of {facts_dict['key_size']}, "
            f"vocabulary {facts_dict['vocabulary']}"
        )
        weights = (
            f"{facts_dict['parameters'] / 1e9:.2f}B parameters × "
            f"{facts_dict['bits_per_weight']:.2f} bits / 8 ({facts_dict['file_type']})"
        )
        print(f"  architecture:    {architecture}")
        print(f"  weights:         {weights}")
    else:
        pull = f"fim-lsp model pull {info['name']}"
        print(f"  FIM template, context length: read from the file once it is downloaded (`{pull}`)")
    if estimate is not None:
        print(f"  memory ({info['memory_from']}):")
        for line in memory_lines(estimate):
            print(f"    {line}")
    return 0


def _remove(names: list[str]) -> int:
    status = 0
    for name in names:
        if models.is_path(name):
            print(f"fim-lsp model rm: {name} is a path; only registry models are removed", file=sys.stderr)
            status = 2
            continue
        entry = models.lookup(name)
        path = models.cached_path(entry)
        freed = models.remove_cached(entry)
        if freed:
            print(f"removed {path} ({human_bytes(freed)})")
        else:
            print(f"{entry.name} is not cached ({path})")
    return status
