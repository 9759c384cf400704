"""Remote backends: a model served over HTTP (llama-server, vLLM, TGI, Ollama...).

``RemoteBackend`` implements ``fim.backend.Backend`` for the ``openai``,
``llama-server`` and ``ollama`` dialects (``fim.remote.dialects``), across one or more
servers (``fim.remote.servers``).
"""

from fim.remote.backend import RemoteBackend, RemoteSettings

__all__ = ["RemoteBackend", "RemoteSettings"]
