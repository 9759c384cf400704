"""Busy processes beside the daemon: a laptop whose CPU something else is using.

``CpuHog(n)`` starts ``n`` processes that spin at normal priority until it is left (or
stopped), the way another model server or a build keeps every core busy. It is the
``--cpu-hog N`` option of ``fim-lsp bench latency`` and ``fim-lsp bench quality``.
Run on its own (``python -m harness.stress.hog N SECONDS``) it can sit beside any
command, for instance an earlier release's benchmarks that lack the option.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from types import TracebackType

#: What each hog process runs: a pure-Python spin, one core's worth of work. It stops
#: by itself once its parent is gone, so that a benchmark killed mid-run leaves no hog.
SPIN = (
    "import os\n"
    "parent = os.getppid()\n"
    "while os.getppid() == parent:\n"
    "    for _ in range(1_000_000):\n"
    "        pass\n"
)


class CpuHog:
    def __init__(self, processes: int) -> None:
        self.processes = max(0, processes)
        self._children: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for _ in range(self.processes):
            self._children.append(subprocess.Popen([sys.executable, "-c", SPIN]))

    def stop(self) -> None:
        for child in self._children:
            child.terminate()
        for child in self._children:
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        self._children.clear()

    @property
    def running(self) -> int:
        return sum(child.poll() is None for child in self._children)

    def __enter__(self) -> CpuHog:
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()


def add_hog_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cpu-hog",
        type=int,
        default=0,
        metavar="N",
        help="run N busy processes beside the daemon for the whole benchmark (a busy laptop)",
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.stress.hog", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("processes", type=int, help="busy processes to run")
    parser.add_argument("seconds", type=float, help="for how long")
    args = parser.parse_args(argv)
    with CpuHog(args.processes):
        time.sleep(args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
