"""The settings layers of one session and the Config they merge to.

Layers, lowest first: ``initializationOptions``, the workspace settings (pushed with
``workspace/didChangeConfiguration`` or pulled with ``workspace/configuration``), and
the command line (``fim-lsp serve --model``, ``FIM_LSP_OPTIONS``). They are merged by
``fim.config.merge_layers``, the only place that does it.
"""

from __future__ import annotations

from typing import Any

from fim.config import Config, ConfigProblem, merge_layers

LAYERS = ("initialization_options", "workspace", "cli_overrides")


class SessionSettings:
    def __init__(self, cli_overrides: dict[str, Any] | None = None) -> None:
        self.layers: dict[str, Any] = dict.fromkeys(LAYERS)
        self.layers["cli_overrides"] = dict(cli_overrides or {})
        self.config: Config = merge_layers(list(self.layers.values()))[0]

    def update(self, **changed: Any) -> list[ConfigProblem]:
        """Replace the named layers and merge again.

        Returns the problems of the layers just replaced and of the command line (which
        overrides them); a layer's problems are not reported again when another changes.
        """
        for name, value in changed.items():
            if name not in LAYERS:
                raise TypeError(f"unknown settings layer {name!r}")
            self.layers[name] = value
        self.config, problems = merge_layers(list(self.layers.values()))
        return [
            problem
            for name, found in zip(LAYERS, problems, strict=True)
            if name in changed or name == "cli_overrides"
            for problem in found
        ]
