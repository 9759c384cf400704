"""The in-process llama.cpp backend: one resident model behind the ``Backend`` protocol.

Modules, each one idea:

* ``engine``: loading the model and its context; ``LlamaEngine`` runs one request end
  to end and implements ``fim.backend.Backend``;
* ``vocabulary``: tokenizing, detokenizing, stop tokens, FIM template detection;
* ``kv``: what each KV-cache sequence holds, document streams, chunked prefill, reuse;
* ``generation``: the decode loop (sampling, prompt-lookup drafting, token healing);
* ``log``: llama.cpp's own log lines routed into Python logging.
"""

from __future__ import annotations

from fim.llama.engine import EngineConfig, LlamaEngine, check_gguf, physical_cores

__all__ = ["EngineConfig", "LlamaEngine", "check_gguf", "physical_cores"]
