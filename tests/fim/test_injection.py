"""Control-token injection: no buffer text can put a control token into a FIM prompt.

Checked against real tokenizers: llama.cpp's vocabulary-only GGUFs from the
llama-cpp-python 0.3.36 source distribution (``scripts/fetch-vocabs.sh`` puts them in
the user cache; the fixture runs it when they are missing) for DeepSeek-Coder,
StarCoder and Refact (a StarCoder-format vocabulary), and the Qwen2.5-Coder model the
daemon ships with, loaded vocabulary-only. Together they cover the Qwen, DeepSeek and
StarCoder templates; no vocabulary-only file of CodeLlama or Codestral ships there.

A prompt's control tokens must be exactly the ones the template puts in (BOS, the
three FIM markers) at the places it puts them, whatever the buffer holds: the texts of
every template's markers and stop tokens, every control token of the vocabulary, their
pieces and near misses, and arbitrary text around them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import llama_cpp as llama
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fim.llama.vocabulary import Vocabulary, open_vocabulary
from fim.templates import KNOWN_TEMPLATES, TemplateError

ROOT = Path(__file__).resolve().parents[2]
VOCABS = Path(
    os.environ.get("FIM_LSP_VOCABS")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fim-lsp" / "vocabs"
)
#: Vocabulary file -> the template its FIM tokens must be detected as.
VOCAB_TEMPLATES = {
    "ggml-vocab-deepseek-coder.gguf": "deepseek-coder",
    "ggml-vocab-starcoder.gguf": "starcoder",
    "ggml-vocab-refact.gguf": "starcoder",
}


@pytest.fixture(scope="session")
def vocab_dir() -> Path:
    """The vocabulary-only GGUFs, fetched by the project's own script when missing."""
    if not all((VOCABS / name).is_file() for name in VOCAB_TEMPLATES):
        fetched = subprocess.run(
            ["bash", str(ROOT / "scripts" / "fetch-vocabs.sh")],
            capture_output=True,
            text=True,
            env={**os.environ, "FIM_LSP_VOCABS": str(VOCABS)},
        )
        if fetched.returncode != 0:
            pytest.fail(f"scripts/fetch-vocabs.sh failed:\n{fetched.stdout}\n{fetched.stderr}")
    return VOCABS


def template_texts() -> list[str]:
    """Every marker and stop text of every known template."""
    texts: list[str] = []
    for template in KNOWN_TEMPLATES:
        texts += [template.prefix, template.suffix, template.middle, *template.stop]
    return texts


def control_texts(vocabulary: Vocabulary) -> list[str]:
    """The text of every control token of this vocabulary."""
    return [vocabulary.token_text(token) for token in range(vocabulary.size) if vocabulary.is_control(token)]


def near_misses(text: str) -> list[str]:
    """A control text, and what a user's buffer could hold instead: pieces, spacing, doubles."""
    half = len(text) // 2
    return [
        text,
        " " + text,
        text + "\n",
        "\u2581" + text,
        text[:half],
        text[half:],
        text + text,
        text.replace("|", "｜"),
        text.replace("\u2581", " "),
        text.upper(),
    ]


def buffers(specials: list[str]) -> st.SearchStrategy[str]:
    pieces = [variant for text in specials for variant in near_misses(text)]
    piece = st.one_of(
        st.sampled_from(pieces),
        st.text(max_size=8),
        st.sampled_from(["<", ">", "|", "｜", "\u2581", "fim", "_", " ", "\n", "<s>", "</s>", "[", "]"]),
    )
    return st.lists(piece, max_size=12).map("".join)


def structural_positions(
    vocabulary: Vocabulary, prompt: list[int], prefix_len: int, suffix_len: int
) -> set[int]:
    """Where the template itself puts control tokens in a prompt of these part lengths."""
    template = vocabulary.template
    head = 1 if template.bos_id is not None else 0
    if template.order == "psm":
        # BOS, <prefix> prefix..., <suffix> suffix..., <middle>
        return {*range(head), head, head + 1 + prefix_len, len(prompt) - 1}
    # BOS, <suffix> suffix..., <prefix> prefix..., <middle>
    return {*range(head), head, head + 1 + suffix_len, len(prompt) - 1}


def assert_no_injection(vocabulary: Vocabulary, prefix: str, suffix: str) -> None:
    template = vocabulary.template
    prefix_ids, suffix_ids = vocabulary.tokenize(prefix), vocabulary.tokenize(suffix)
    prompt, _stream_end = template.build(prefix_ids, suffix_ids)
    markers = {template.prefix_id, template.suffix_id, template.middle_id} | template.stop_ids
    special = {
        index for index, token in enumerate(prompt) if vocabulary.is_control(token) or token in markers
    }
    expected = structural_positions(vocabulary, prompt, len(prefix_ids), len(suffix_ids))
    injected = [(index, vocabulary.token_text(prompt[index])) for index in sorted(special - expected)]
    assert not injected, (
        f"buffer text became control tokens: {injected} (prefix {prefix!r}, suffix {suffix!r})"
    )
    assert special == expected


@pytest.fixture(scope="module", params=sorted(VOCAB_TEMPLATES))
def shipped_vocabulary(request: pytest.FixtureRequest, vocab_dir: Path) -> Iterator[Vocabulary]:
    with open_vocabulary(vocab_dir / request.param) as vocabulary:
        yield vocabulary


@pytest.fixture(scope="module")
def qwen_vocabulary(model_path: Path) -> Iterator[Vocabulary]:
    with open_vocabulary(model_path) as vocabulary:
        yield vocabulary


@pytest.mark.parametrize(("file_name", "template_name"), sorted(VOCAB_TEMPLATES.items()))
def test_templates_are_detected_from_real_vocabularies(
    vocab_dir: Path, file_name: str, template_name: str
) -> None:
    with open_vocabulary(vocab_dir / file_name) as vocabulary:
        resolved = vocabulary.template
        assert resolved.template.name == template_name
        # The detected ids are the vocabulary's own marker tokens, and control tokens.
        for token, text in (
            (resolved.prefix_id, resolved.template.prefix),
            (resolved.suffix_id, resolved.template.suffix),
            (resolved.middle_id, resolved.template.middle),
        ):
            assert vocabulary.token_text(token) == text
            assert vocabulary.is_control(token)


def test_deepseek_coder_puts_bos_first_in_psm_order(vocab_dir: Path) -> None:
    with open_vocabulary(vocab_dir / "ggml-vocab-deepseek-coder.gguf") as vocabulary:
        resolved = vocabulary.template
        assert resolved.order == "psm"
        assert resolved.bos_id is not None and resolved.bos_id == llama.llama_vocab_bos(vocabulary._vocab)
        prompt, stream_end = resolved.build(vocabulary.tokenize("a = 1\n"), vocabulary.tokenize("\n"))
        assert prompt[:2] == [resolved.bos_id, resolved.prefix_id]
        assert stream_end == 2 + len(vocabulary.tokenize("a = 1\n"))


def test_starcoder_uses_its_trained_spm_order(vocab_dir: Path) -> None:
    with open_vocabulary(vocab_dir / "ggml-vocab-starcoder.gguf") as vocabulary:
        resolved = vocabulary.template
        assert (resolved.order, resolved.bos_id) == ("spm", None)
        prompt, stream_end = resolved.build([7], [9])
        assert prompt == [resolved.suffix_id, 9, resolved.prefix_id, 7, resolved.middle_id]
        assert stream_end == 0


def test_a_vocabulary_without_fim_tokens_is_refused_by_name(vocab_dir: Path) -> None:
    # Qwen2 (not the Coder) has no FIM tokens: the daemon says so instead of guessing.
    with (
        pytest.raises(TemplateError, match="fill-in-the-middle"),
        open_vocabulary(vocab_dir / "ggml-vocab-qwen2.gguf"),
    ):
        pass


def test_every_control_text_alone_stays_plain_text(shipped_vocabulary: Vocabulary) -> None:
    specials = template_texts() + control_texts(shipped_vocabulary)
    for text in specials:
        for variant in near_misses(text):
            assert_no_injection(shipped_vocabulary, variant, variant)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_buffer_injects_a_control_token(shipped_vocabulary: Vocabulary, data: st.DataObject) -> None:
    specials = template_texts() + control_texts(shipped_vocabulary)
    prefix = data.draw(buffers(specials), label="prefix")
    suffix = data.draw(buffers(specials), label="suffix")
    assert_no_injection(shipped_vocabulary, prefix, suffix)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_buffer_injects_a_control_token_for_qwen(qwen_vocabulary: Vocabulary, data: st.DataObject) -> None:
    assert qwen_vocabulary.template.template.name == "qwen2.5-coder"
    specials = template_texts() + control_texts(qwen_vocabulary)
    prefix = data.draw(buffers(specials), label="prefix")
    suffix = data.draw(buffers(specials), label="suffix")
    assert_no_injection(qwen_vocabulary, prefix, suffix)
