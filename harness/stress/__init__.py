"""Stress tools: the daemon under hostile input, long use, keystroke storms and a busy CPU.

Each speaks to a real ``fim-lsp serve`` over stdio (``wire``: raw JSON-RPC framing, so
that what no client library would send can be sent) and has a ``main(argv)`` for the
``fim-lsp bench`` dispatcher:

* ``fuzz`` (``bench fuzz``): hypothesis-generated JSON-RPC/LSP messages, well-formed and
  not, interleaved with real completions; every request must be answered;
* ``soak`` (``bench soak``): keystroke replay over many documents opened, edited and
  closed, sampling the daemon's memory and file descriptors;
* ``storm`` (``bench storm``): keystrokes far faster than anyone types, on one document;
* ``hostile`` (``bench hostile``): huge, binary, minified and pathological documents;
* ``hog``: busy processes beside the daemon (``--cpu-hog`` of ``bench latency`` and
  ``bench quality``).
"""
