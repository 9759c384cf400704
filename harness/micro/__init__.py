"""In-process micro-benchmarks that use fim's public API only (no daemon, no LSP).

* ``engine`` (``fim-lsp bench engine``): the llama.cpp engine's prefill, decode, KV reuse
  and cancellation beside llama.cpp's own ceiling on the same model;
* ``context`` (``fim-lsp bench context``): the time to build the context for one keystroke;
* ``suffix_reuse``: part of the engine benchmark, what reusing suffix cells at shifted
  positions would save and cost.

``engine`` and ``context`` each keep a ``main(argv) -> int`` for the ``bench`` dispatcher.
Where they reach below fim (the ceiling runs, a vocabulary-only tokenizer) they call
``llama_cpp`` directly, on contexts the engine hands out through its documented hooks.
"""
