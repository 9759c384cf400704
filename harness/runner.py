"""What the latency and quality benchmarks share: their options, starting our daemon and the peer.

The daemon is started exactly as an editor starts it (``fim-lsp serve`` on stdio); the
peer is either a URL the user gives or, with ``--peer auto``, a llama-server we start
with the daemon's own model file and thread count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.client import DaemonClient
from harness.peer.server import PeerClient, PeerServer, resolve_binary
from harness.report import emit_report

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


#: Quality runs give the daemon these unless ``--init-options`` says otherwise. Each task
#: is a document opened a moment ago, so the daemon would cut every prompt as after a
#: cold jump (``coldPrefillMs``), by a length that follows the machine's load; in an
#: editor the idle warm-up of an open file makes up for that cut, and latency runs
#: measure it.
QUALITY_DEFAULTS: dict[str, Any] = {"coldPrefillMs": 0}


class BenchError(Exception):
    """A benchmark cannot run (no model, no peer binary, bad arguments)."""


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the summary table here")
    parser.add_argument("--model", default=None, help="registry name or .gguf path for our daemon")
    parser.add_argument(
        "--init-options",
        default=None,
        metavar="JSON",
        help='extra initializationOptions for our daemon, e.g. \'{"multiline": "never"}\'',
    )
    parser.add_argument(
        "--peer",
        default=None,
        metavar="URL|auto",
        help="also run llama-server /infill as llama.vim sends it; 'auto' starts .peer/bin/llama-server",
    )
    parser.add_argument("--peer-bin", default=None, help="llama-server binary for --peer auto")
    parser.add_argument("--no-ours", action="store_true", help="run the peer only (needs --peer)")
    parser.add_argument(
        "--backend",
        default=None,
        choices=["llama.cpp", "openai", "llama-server", "ollama"],
        help="where our daemon's model runs (default: llama.cpp in process); see README 'Scaling out'",
    )
    parser.add_argument(
        "--endpoint",
        action="append",
        default=None,
        metavar="URL",
        help="a remote server (repeat for several)",
    )
    parser.add_argument("--remote-model", default=None, help="the served model's name (remote backends)")


def init_options(model: str | None, raw: str | None) -> dict[str, Any]:
    options: dict[str, Any] = json.loads(raw) if raw else {}
    if not isinstance(options, dict):
        raise BenchError("--init-options must be a JSON object")
    if model:
        options["model"] = model
    return options


def our_options(args: argparse.Namespace) -> dict[str, Any]:
    """Our daemon's options: ``--init-options``, then ``--model`` and the backend flags."""
    options = init_options(args.model, args.init_options)
    remote = {"backend": args.backend, "endpoint": args.endpoint, "remoteModel": args.remote_model}
    options.update({name: value for name, value in remote.items() if value is not None})
    return options


async def start_daemon(options: dict[str, Any]) -> tuple[DaemonClient, dict[str, Any]]:
    client = DaemonClient(initialization_options=options)
    await client.start()
    status = await client.wait_ready()
    if status.get("state") != "ready":
        await client.stop()
        raise BenchError(f"our daemon's model is not ready: {status.get('error') or status.get('state')}")
    return client, status


@dataclass
class Peer:
    url: str
    client: PeerClient
    server: PeerServer | None  # set when we started it

    @property
    def pid(self) -> int | None:
        return self.server.pid if self.server is not None else None

    def describe(self) -> dict[str, Any]:
        data: dict[str, Any] = {"url": self.url, "started_by_bench": self.server is not None}
        if self.server is not None:
            data["command"] = self.server.command()
        return data

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def start_peer(spec: str, model_path: str, threads: int, n_ctx: int, binary: str | None) -> Peer:
    """``--peer URL`` uses a running server; ``--peer auto`` starts one and owns it."""
    if spec != "auto":
        client = PeerClient(spec)
        if not client.health():
            raise BenchError(f"no healthy llama-server at {spec}")
        return Peer(client.base, client, None)
    server = PeerServer(resolve_binary(binary), Path(model_path), threads=threads, n_ctx=n_ctx)
    try:
        url = server.start()
    except (FileNotFoundError, RuntimeError, TimeoutError) as error:
        raise BenchError(str(error)) from error
    return Peer(url, PeerClient(url), server)


def start_peer_for(args: argparse.Namespace, status: dict[str, Any]) -> Peer:
    """``--peer`` beside our daemon: its model file, thread count and context size."""
    n_ctx = int(init_options(None, args.init_options).get("nCtx", 8192))
    return start_peer(
        args.peer, str(status.get("modelPath")), int(status.get("threads") or 2), n_ctx, args.peer_bin
    )


def run_command(
    prog: str,
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]],
) -> int:
    """Run a bench command's report to the end: 0 and the report printed, or 2 and why not."""
    try:
        report = asyncio.run(run(args))
    except BenchError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    emit_report(args, report)
    return 0
