"""The engine processes of the daemons a benchmark starts: its own, never the editors'.

By default a daemon runs the model in its user's shared engine process (``sharedEngine``).
A benchmark run beside an open editor would share it: the editor's keystrokes would
cancel the benchmark's requests, and the benchmark would find the editor's KV cache
warm. So every daemon a harness process starts gets that process's own runtime folder
(its daemons share one engine process, as windows do) and a short idle time, unless the
environment names them already (the test suite gives each test its own).
"""

from __future__ import annotations

import os

from fim.shared.client import IDLE_SECONDS_ENV
from fim.shared.wire import RUNTIME_DIR_ENV, runtime_dir

#: A benchmark's engine process exits this long after its last daemon.
BENCH_IDLE_SECONDS = "5"


def engine_env() -> dict[str, str]:
    """Environment variables for a daemon this process starts (none when already set)."""
    extra: dict[str, str] = {}
    if RUNTIME_DIR_ENV not in os.environ:
        # Inside the user's private runtime folder; a daemon creates it when it needs it.
        extra[RUNTIME_DIR_ENV] = str(runtime_dir() / f"bench-{os.getpid()}")
    if IDLE_SECONDS_ENV not in os.environ:
        extra[IDLE_SECONDS_ENV] = BENCH_IDLE_SECONDS
    return extra
