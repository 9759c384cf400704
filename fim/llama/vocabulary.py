"""The model's vocabulary: text to token ids and back, and the FIM template it supports.

``open_vocabulary`` loads one from a GGUF file without the weights.

Buffer text is always tokenized with special-token parsing off, so control-token text
typed in the user's code stays plain text, and the few marker and stop tokens that
llama.cpp matches in any text (USER_DEFINED ones, such as DeepSeek-Coder's ``<|EOT|>``)
are tokenized in two parts; only template detection looks control tokens up by their
text. The template is resolved once, when the vocabulary is wrapped,
because the stop tokens depend on it.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import llama_cpp as llama

from fim.backend import ModelLoadError
from fim.templates import Order, ResolvedTemplate, detect

_PIECE_BUFFER_SIZE = 256


class Vocabulary:
    """One loaded model's vocabulary and its resolved FIM template.

    Raises ``fim.templates.TemplateError`` when the vocabulary has no FIM tokens.
    """

    def __init__(self, vocab: Any, order: Order | None) -> None:
        self._vocab = vocab
        self._piece_buffer = ctypes.create_string_buffer(_PIECE_BUFFER_SIZE)
        self._eog_cache: dict[int, bool] = {}
        self._pieces_index: dict[int, list[tuple[int, bytes]]] | None = None
        self.template = self._detect_template(order)
        self._guarded = self._texts_matched_as_tokens()

    @property
    def size(self) -> int:
        """Number of token ids in the vocabulary."""
        return int(llama.llama_vocab_n_tokens(self._vocab))

    def _detect_template(self, order: Order | None) -> ResolvedTemplate:
        eog = frozenset(
            i for i in (llama.llama_vocab_eos(self._vocab), llama.llama_vocab_eot(self._vocab)) if i >= 0
        )
        return detect(
            self.single_token,
            vocab_fim_ids=(
                llama.llama_vocab_fim_pre(self._vocab),
                llama.llama_vocab_fim_suf(self._vocab),
                llama.llama_vocab_fim_mid(self._vocab),
            ),
            id_to_text=self.token_text,
            bos_id=llama.llama_vocab_bos(self._vocab),
            eog_ids=eog,
            order=order,
        )

    def single_token(self, text: str) -> int | None:
        """The id of the token whose text is exactly ``text`` (control tokens included), if any."""
        ids = self._tokenize(text, parse_special=True)
        if len(ids) == 1 and self.token_text(ids[0]) == text:
            return ids[0]
        return None

    def token_text(self, token: int) -> str:
        raw = llama.llama_vocab_get_text(self._vocab, token)
        return raw.decode("utf-8", errors="replace") if raw else ""

    def _tokenize(self, text: str, *, parse_special: bool) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (llama.llama_token * capacity)()
        count = llama.llama_tokenize(self._vocab, data, len(data), tokens, capacity, False, parse_special)
        if count < 0:
            capacity = -count
            tokens = (llama.llama_token * capacity)()
            count = llama.llama_tokenize(self._vocab, data, len(data), tokens, capacity, False, parse_special)
        return list(tokens[:count])

    def _texts_matched_as_tokens(self) -> tuple[str, ...]:
        """Marker and stop texts that llama.cpp would still turn into their token.

        With special-token parsing off llama.cpp skips CONTROL tokens only; a token the
        GGUF marks USER_DEFINED is matched in any text. DeepSeek-Coder's ``<|EOT|>``, a
        stop token, is one: code holding that text would put an end of turn in the prompt.
        """
        template = self.template
        ids = {template.prefix_id, template.suffix_id, template.middle_id} | template.stop_ids
        texts = (self.token_text(token) for token in sorted(ids) if not self.is_control(token))
        return tuple(text for text in texts if len(text) > 1)

    def tokenize(self, text: str) -> list[int]:
        """Tokenize buffer text; control-token text stays plain text."""
        if not any(guarded in text for guarded in self._guarded):
            return self._tokenize(text, parse_special=False)
        # Each occurrence of a guarded text goes to the tokenizer in two parts, which
        # no token spans; the text around it is tokenized as usual.
        tokens: list[int] = []
        start = 0
        for index, length in _occurrences(text, self._guarded):
            tokens += self._tokenize(text[start:index], parse_special=False)
            tokens += self._tokenize(text[index : index + 1], parse_special=False)
            tokens += self._tokenize(text[index + 1 : index + length], parse_special=False)
            start = index + length
        return tokens + self._tokenize(text[start:], parse_special=False)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for; may be part of a UTF-8 character."""
        length = llama.llama_token_to_piece(
            self._vocab, token, self._piece_buffer, _PIECE_BUFFER_SIZE, 0, False
        )
        if length < 0:
            buffer = ctypes.create_string_buffer(-length)
            length = llama.llama_token_to_piece(self._vocab, token, buffer, -length, 0, False)
            return bytes(buffer.raw[:length])
        return bytes(self._piece_buffer.raw[:length])

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def is_control(self, token: int) -> bool:
        """A control token (llama.cpp's CONTROL attribute): structure, never buffer text."""
        return bool(llama.llama_vocab_get_attr(self._vocab, token) & llama.LLAMA_TOKEN_ATTR_CONTROL)

    def is_stop_token(self, token: int) -> bool:
        """End of generation: the vocabulary's own end tokens and the template's stops."""
        cached = self._eog_cache.get(token)
        if cached is None:
            cached = bool(llama.llama_vocab_is_eog(self._vocab, token)) or token in self.template.stop_ids
            self._eog_cache[token] = cached
        return cached

    def pieces_by_first_byte(self) -> dict[int, list[tuple[int, bytes]]]:
        """Every non-stop token with its piece, grouped by the piece's first byte.

        Token healing looks up candidates here; the index is built on first use because
        walking the whole vocabulary takes a moment.
        """
        if self._pieces_index is None:
            index: dict[int, list[tuple[int, bytes]]] = {}
            for token in range(self.size):
                piece = self.piece(token)
                if piece and not self.is_stop_token(token):
                    index.setdefault(piece[0], []).append((token, piece))
            self._pieces_index = index
        return self._pieces_index


def _occurrences(text: str, needles: tuple[str, ...]) -> list[tuple[int, int]]:
    """(start, length) of every non-overlapping occurrence of any needle, left to right."""
    found: list[tuple[int, int]] = []
    position = 0
    while True:
        hits = [(index, len(needle)) for needle in needles if (index := text.find(needle, position)) >= 0]
        if not hits:
            return found
        index, length = min(hits)
        found.append((index, length))
        position = index + length


@contextlib.contextmanager
def open_vocabulary(path: str | Path, order: Order | None = None) -> Iterator[Vocabulary]:
    """The vocabulary of a GGUF file, loaded without its weights (llama.cpp's ``vocab_only``).

    For tools and tests that tokenize with a model's real tokenizer: llama.cpp's
    vocabulary-only files (``ggml-vocab-*.gguf``) and whole models alike load in well
    under a second. The model is freed on exit. Raises ``ModelLoadError`` when the file
    cannot be read and ``fim.templates.TemplateError`` when it has no FIM tokens.
    """
    llama.llama_backend_init()
    params = llama.llama_model_default_params()
    params.vocab_only = True
    model = llama.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise ModelLoadError(f"{path}: llama.cpp could not load it (corrupt or unsupported GGUF)")
    try:
        yield Vocabulary(llama.llama_model_get_vocab(model), order)
    finally:
        llama.llama_model_free(model)
