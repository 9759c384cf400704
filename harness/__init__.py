"""harness: measuring and testing fim-lsp from the outside, as an editor and as a library user.

Two kinds of tool live here:

* clients of the daemon over real LSP: ``fim-lsp serve`` is started exactly as an editor
  starts it and driven through ``harness.client``. ``harness.replay`` replays keystroke
  traces and times the suggestions (``bench latency``, ``bench make-trace``);
  ``harness.quality`` scores completions on HumanEval-infilling and SantaCoder-FIM
  (``bench quality``); ``harness.peer`` is the comparison, llama.cpp's llama-server driven
  the way llama.vim drives it. ``harness.runner`` (starting the daemon and the peer) and
  ``harness.report`` (figures, tables, JSON) serve both benchmarks.
* in-process micro-benchmarks (``harness.micro``) that call fim's public API directly.

Imports: the harness may import ``fim`` (positions, the public engine API), never
``lsp_server``: the daemon is reached over LSP only, so what is measured is what an editor
gets.
"""
