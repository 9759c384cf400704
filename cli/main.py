"""The ``fim-lsp`` command line: serve, complete, model, doctor, bench, demo.

This package sits on top: it may import ``lsp_server``, ``harness`` and ``fim``, and
nothing imports it. Heavy modules are imported inside the command that needs them, so
``fim-lsp model list`` and ``fim-lsp --version`` do not load llama.cpp.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from fim import __version__


def _serve(args: argparse.Namespace) -> int:
    import faulthandler

    from fim.llama.log import quiet_llama
    from lsp_server.server import create_server

    # A crash inside llama.cpp should leave a Python stack on stderr, not just a signal.
    faulthandler.enable()

    overrides: dict[str, object] = {}
    from_env = os.environ.get("FIM_LSP_OPTIONS")
    if from_env:
        # Settings for a daemon whose editor config cannot be changed (scripts, tests).
        try:
            loaded = json.loads(from_env)
        except ValueError as error:
            print(f"fim-lsp: FIM_LSP_OPTIONS is not valid JSON ({error}); ignored", file=sys.stderr)
        else:
            if isinstance(loaded, dict):
                overrides.update(loaded)
            else:
                print("fim-lsp: FIM_LSP_OPTIONS must be a JSON object; ignored", file=sys.stderr)
    if args.model:
        overrides["model"] = args.model
    if args.allow_download:
        overrides["allowDownload"] = True
    # stderr gets warnings only: a client that never reads it must not fill the pipe.
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    handlers: list[logging.Handler] = [console]
    if args.log_file:
        handlers.append(logging.FileHandler(args.log_file))
    logging.basicConfig(
        level=logging.DEBUG,
        handlers=handlers,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("pygls").setLevel(logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    logging.getLogger("fim").setLevel(logging.INFO)
    logging.getLogger("lsp_server").setLevel(logging.INFO)
    quiet_llama()
    server, _services = create_server(cli_overrides=overrides)
    if args.tcp is not None:
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            logging.getLogger("lsp_server").warning(
                "listening on %s: reachable from other machines", args.host
            )
        server.start_tcp(args.host, args.tcp)
    else:
        server.start_io()
    # The inference thread may be mid-generation; nothing is left to save.
    os._exit(0)


def _complete(args: argparse.Namespace) -> int:
    from cli.complete import complete_file

    try:
        line_text, col_text = args.position.split(":", 1)
        line, column = int(line_text), int(col_text)
    except ValueError:
        print(
            f"fim-lsp complete: position must be LINE:COL (1-based), got {args.position!r}",
            file=sys.stderr,
        )
        return 2
    path = Path(args.file)
    if not path.is_file():
        print(f"fim-lsp complete: no such file: {path}", file=sys.stderr)
        return 2
    result = complete_file(path, line, column, model=args.model, show_stats=args.stats)
    print(result.text)
    if args.stats:
        print(result.summary, file=sys.stderr)
    return 0 if result.ok else 1


def _doctor(args: argparse.Namespace) -> int:
    from cli.doctor import run_doctor

    return run_doctor(args)


def _bench(argv: list[str]) -> int:
    from cli.bench import main as bench_main

    return bench_main(argv)


def _demo(args: argparse.Namespace) -> int:
    from cli.demo import run_demo

    return run_demo(model=args.model)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fim-lsp", description="Local fill-in-the-middle code completion over LSP."
    )
    parser.add_argument("--version", action="version", version=f"fim-lsp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument("--tcp", type=int, metavar="PORT", help="listen on a TCP port instead of stdio")
    serve.add_argument("--host", default="127.0.0.1", help="address for --tcp (default 127.0.0.1)")
    serve.add_argument("--model", help="registry name or .gguf path (overrides the client's setting)")
    serve.add_argument(
        "--allow-download", action="store_true", help="fetch a registry model if it is not cached"
    )
    serve.add_argument("--log-file", help="also write logs to this file")
    serve.set_defaults(run=_serve)

    complete = commands.add_parser(
        "complete", help="one completion at FILE LINE:COL (1-based), printed to stdout"
    )
    complete.add_argument("file")
    complete.add_argument("position", metavar="LINE:COL")
    complete.add_argument("--model", default=None)
    complete.add_argument("--stats", action="store_true", help="print the request's figures to stderr")
    complete.set_defaults(run=_complete)

    from cli import doctor, model_command

    model_command.add_parser(commands)
    doctor.add_parser(commands, run=_doctor)

    demo = commands.add_parser("demo", help="a real completion session on a fixture file")
    demo.add_argument("--model", default=None)
    demo.set_defaults(run=_demo)

    commands.add_parser(
        "bench",
        help="benchmarks: engine, context, latency, quality (see fim-lsp bench -h)",
        add_help=False,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        return _bench(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except BrokenPipeError:
        # `fim-lsp model list | head`: the reader left; say nothing more and exit quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
