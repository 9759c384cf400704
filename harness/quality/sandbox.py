"""Run an untrusted test program (model output + a benchmark's tests) in a fenced subprocess.

The fence: Python in isolated mode (``-I``: no user site, no PYTHON* variables, no cwd on
sys.path), an empty environment, a fresh temporary directory as cwd, its own session so
a timeout kills every child, and resource limits set before exec: address space, CPU
seconds, file size, open files, and no new processes. The machine has no network; the
limits do not rely on that, but nothing here grants network access either.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

MEMORY_BYTES = 2 * 1024**3
FILE_BYTES = 16 * 1024**2


@dataclass(frozen=True)
class Outcome:
    passed: bool
    status: str  # passed | failed | timeout
    detail: str


def _limits(cpu_seconds: int) -> None:
    """Runs in the child between fork and exec."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_BYTES, FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # No new processes (root is exempt from this one; the other limits still hold).
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def run_program(source: str, timeout: float = 10.0, python: str | None = None) -> Outcome:
    """Run ``source`` as a Python script; passed means exit status 0 within ``timeout``."""
    with tempfile.TemporaryDirectory(prefix="fim-sandbox-") as workdir:
        script = Path(workdir) / "program.py"
        script.write_text(source, encoding="utf-8")
        # The wall-clock timeout normally fires first; the CPU limit is the backstop.
        cpu = math.ceil(timeout) + 1
        process = subprocess.Popen(
            [python or sys.executable, "-I", "-B", str(script)],
            cwd=workdir,
            env={},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=lambda: _limits(cpu),
        )
        try:
            _out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.communicate()
            return Outcome(False, "timeout", f"no result within {timeout:.0f} s")
        if process.returncode == 0:
            return Outcome(True, "passed", "")
        if process.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            return Outcome(False, "timeout", f"killed by the CPU limit ({cpu} s)")
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit {process.returncode}"]
        return Outcome(False, "failed", tail[0][:300])


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
