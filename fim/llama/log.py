"""Route llama.cpp's own log lines into Python logging (debug level) instead of stderr."""

from __future__ import annotations

import ctypes
import logging
from typing import Any

import llama_cpp as llama

log = logging.getLogger("fim.llama")
_callback: Any = None


def quiet_llama() -> None:
    """Install the log callback once; llama.cpp keeps only the function pointer."""
    global _callback
    if _callback is not None:
        return

    def forward(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s", text.decode("utf-8", errors="replace").rstrip())

    _callback = llama.llama_log_callback(forward)
    llama.llama_log_set(_callback, ctypes.c_void_p(0))
