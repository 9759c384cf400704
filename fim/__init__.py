"""fim: everything about fill-in-the-middle completion that does not know about LSP.

The bottom floor: ``lsp_server``, ``harness`` and ``cli`` import from here, and nothing
here imports them.
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("fim-lsp")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
