"""llama.cpp's ``llama-server``, the benchmark peer: its process and its HTTP ``/infill``.

``PeerServer`` is ``--peer auto``: it starts ``.peer/bin/llama-server`` (built by
``make peer``) on loopback with the daemon's model file and thread count, and stops it
afterwards. ``PeerClient`` sends one ``/infill`` and reads the figures the benchmarks
report.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BINARY = ROOT / ".peer" / "bin" / "llama-server"


@dataclass
class InfillResult:
    content: str
    elapsed_ms: float
    prompt_n: int  # prompt tokens evaluated by this request
    prompt_tokens: int  # prompt tokens in all (evaluated + reused from the cache)
    predicted_n: int
    prompt_ms: float
    predicted_ms: float
    stop_type: str
    raw: dict[str, Any]

    @property
    def reused(self) -> int:
        return max(0, self.prompt_tokens - self.prompt_n)


class PeerClient:
    """A blocking ``/infill`` client for one llama-server on loopback."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"--peer wants http://HOST:PORT, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.base = f"http://{self.host}:{self.port}"
        self.timeout = timeout

    def _connection(self, timeout: float | None = None) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)

    def health(self) -> bool:
        try:
            connection = self._connection(timeout=2.0)
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
            connection.close()
            return response.status == 200
        except OSError:
            return False

    def props(self) -> dict[str, Any]:
        connection = self._connection(timeout=10.0)
        connection.request("GET", "/props")
        response = connection.getresponse()
        data = json.loads(response.read() or b"{}")
        connection.close()
        return data if isinstance(data, dict) else {}

    def infill(self, body: dict[str, Any]) -> InfillResult:
        started = time.perf_counter()
        connection = self._connection()
        try:
            connection.request(
                "POST", "/infill", body=json.dumps(body), headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"llama-server /infill: HTTP {response.status}: {payload[:300]!r}")
        data = json.loads(payload)
        return InfillResult(
            content=str(data.get("content", "")),
            elapsed_ms=elapsed,
            prompt_n=int(data.get("timings/prompt_n", 0) or 0),
            prompt_tokens=int(data.get("tokens_evaluated", 0) or 0),
            predicted_n=int(data.get("timings/predicted_n", 0) or 0),
            prompt_ms=float(data.get("timings/prompt_ms", 0.0) or 0.0),
            predicted_ms=float(data.get("timings/predicted_ms", 0.0) or 0.0),
            stop_type=str(data.get("stop_type", "")),
            raw=data,
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PeerServer:
    """A llama-server we started (``--peer auto``) and must stop."""

    binary: Path
    model: Path
    threads: int
    n_ctx: int = 8192
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        # llama.vim's recommended settings (--fim-qwen-*-default: batch 1024, cache reuse
        # 256), one slot, and the daemon's threads, context size and attention kernel.
        return [
            str(self.binary),
            "-m",
            str(self.model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "-t",
            str(self.threads),
            "-tb",
            str(self.threads),
            "-c",
            str(self.n_ctx),
            "-np",
            "1",
            "-b",
            "1024",
            "-ub",
            "1024",
            "--cache-reuse",
            "256",
            "-fa",
            "off",
            "--no-webui",
        ]

    def start(self, timeout: float = 180.0) -> str:
        if not self.binary.is_file():
            raise FileNotFoundError(f"{self.binary} is missing: run `make peer` to build llama-server")
        self.port = self.port or free_port()
        handle, name = tempfile.mkstemp(prefix="fim-peer-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        client = PeerClient(self.url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self.process.returncode}); see {self.log_path}")
            if client.health():
                return self.url
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"llama-server did not become ready in {timeout:.0f} s; see {self.log_path}")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def resolve_binary(explicit: str | None = None) -> Path:
    return Path(explicit) if explicit else DEFAULT_BINARY
