"""The daemon options the command line works with: defaults, FIM_LSP_OPTIONS, then flags.

``fim-lsp serve`` reads FIM_LSP_OPTIONS too; ``doctor`` and ``model info`` use the same
layers so that they size and measure what the daemon would run.
"""

from __future__ import annotations

import json
import os
from typing import Any

from fim.config import Config, ConfigProblem, merge_layers


def _json_layer(text: str | None, origin: str) -> tuple[Any, list[ConfigProblem]]:
    if not text:
        return None, []
    try:
        return json.loads(text), []
    except ValueError as error:
        return None, [ConfigProblem(origin, f"not valid JSON ({error})")]


def load_config(options: str | None = None, model: str | None = None) -> tuple[Config, list[ConfigProblem]]:
    """Config from the defaults, FIM_LSP_OPTIONS, ``options`` (JSON) and ``model``, in that order."""
    from_env, problems = _json_layer(os.environ.get("FIM_LSP_OPTIONS"), "FIM_LSP_OPTIONS")
    from_flag, flag_problems = _json_layer(options, "--options")
    layers = [from_env, from_flag, {"model": model} if model else None]
    config, found = merge_layers(layers)
    return config, [*problems, *flag_problems, *(problem for layer in found for problem in layer)]
