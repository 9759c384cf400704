"""The benchmark peer: llama.cpp's llama-server ``/infill``, driven the way llama.vim drives it.

* ``server``: the llama-server process (``--peer auto``) and its HTTP client;
* ``llamavim``: llama.vim's request body, local context, cache keys and rendering;
* ``session``: llama.vim's request discipline during a keystroke replay.
"""
