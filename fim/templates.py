"""FIM prompt formats as data, detected from the model's vocabulary.

A template names the three control tokens by their text and the order they go in, and
the family's repository format: the tokens that introduce the repository and each file
(Qwen2.5-Coder's ``<|repo_name|>`` and ``<|file_sep|>``), or, for families without them
(DeepSeek-Coder), a path comment before each file. The prompt is assembled as token
ids: control tokens are inserted by id and buffer text is tokenized with special-token
parsing off, so text such as ``<|fim_middle|>`` inside the user's code can never become
a control token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from fim import languages
from fim.backend import RepositoryContext

Order = Literal["psm", "spm"]


@dataclass(frozen=True)
class FimTemplate:
    """One model family's FIM format."""

    name: str
    prefix: str
    suffix: str
    middle: str
    order: Order
    #: Extra token texts that end generation besides the vocabulary's own end tokens.
    stop: tuple[str, ...] = ()
    #: Whether the model expects its BOS token first.
    add_bos: bool = False
    #: The token before the repository's name, and the one before each file's path, in
    #: the family's repository-level format; None: files get path comments instead.
    repo_name: str | None = None
    file_separator: str | None = None


QWEN = FimTemplate(
    name="qwen2.5-coder",
    prefix="<|fim_prefix|>",
    suffix="<|fim_suffix|>",
    middle="<|fim_middle|>",
    order="psm",
    stop=(
        "<|endoftext|>",
        "<|im_end|>",
        "<|fim_pad|>",
        "<|file_sep|>",
        "<|repo_name|>",
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
    ),
    repo_name="<|repo_name|>",
    file_separator="<|file_sep|>",
)

# DeepSeek-Coder writes its tokens with U+FF5C (fullwidth vertical line) and U+2581.
DEEPSEEK = FimTemplate(
    name="deepseek-coder",
    prefix="<｜fim▁begin｜>",
    suffix="<｜fim▁hole｜>",
    middle="<｜fim▁end｜>",
    order="psm",
    stop=("<｜end▁of▁sentence｜>", "<|EOT|>"),
    add_bos=True,
)

STARCODER = FimTemplate(
    name="starcoder",
    prefix="<fim_prefix>",
    suffix="<fim_suffix>",
    middle="<fim_middle>",
    order="spm",
    stop=("<|endoftext|>", "<file_sep>", "<fim_pad>"),
    repo_name="<reponame>",
    file_separator="<file_sep>",
)

CODELLAMA = FimTemplate(
    name="codellama",
    prefix="▁<PRE>",
    suffix="▁<SUF>",
    middle="▁<MID>",
    order="spm",
    stop=("▁<EOT>",),
    add_bos=True,
)

CODESTRAL = FimTemplate(
    name="codestral",
    prefix="[PREFIX]",
    suffix="[SUFFIX]",
    middle="[MIDDLE]",
    order="spm",
    stop=("</s>",),
    add_bos=True,
)

KNOWN_TEMPLATES: tuple[FimTemplate, ...] = (QWEN, DEEPSEEK, STARCODER, CODELLAMA, CODESTRAL)


class TemplateError(Exception):
    """The model's vocabulary has no usable FIM tokens."""


@dataclass(frozen=True)
class ResolvedTemplate:
    """A template bound to one vocabulary's token ids."""

    template: FimTemplate
    prefix_id: int
    suffix_id: int
    middle_id: int
    order: Order
    bos_id: int | None
    stop_ids: frozenset[int]
    repo_name_id: int | None = None
    file_separator_id: int | None = None

    def build(
        self, prefix_ids: Sequence[int], suffix_ids: Sequence[int], context_ids: Sequence[int] = ()
    ) -> tuple[list[int], int]:
        """Assemble the prompt; returns the ids and how many leading ids are file prefix.

        ``context_ids`` (other files, from ``repository_ids``) go first, after BOS, so
        that they are a leading part of every prompt for the document. The second value
        marks the end of the part of the prompt that is a leading part of the document's
        own token stream (PSM only; 0 for SPM), which the engine uses to share KV cache
        between requests at different cursors.
        """
        head = [self.bos_id] if self.bos_id is not None else []
        head += context_ids
        if self.order == "psm":
            tokens = [*head, self.prefix_id, *prefix_ids]
            stream_end = len(tokens)
            tokens += [self.suffix_id, *suffix_ids, self.middle_id]
            return tokens, stream_end
        tokens = [*head, self.suffix_id, *suffix_ids, self.prefix_id, *prefix_ids, self.middle_id]
        return tokens, 0

    def repository_ids(
        self, repository: RepositoryContext, tokenize: Callable[[str], list[int]]
    ) -> list[int]:
        """The other files and the current file's header, in the family's repository format.

        Each piece of text is tokenized on its own, so the ids of a file do not depend on
        its neighbours and the control tokens stay ids.
        """
        ids: list[int] = []
        separator = self.file_separator_id
        if separator is not None:
            if self.repo_name_id is not None:
                ids += [self.repo_name_id, *tokenize(f"{repository.name}\n")]
            for path, text in repository.files:
                ids += [separator, *tokenize(f"{path}\n{text.rstrip()}\n")]
            ids += [separator, *tokenize(f"{repository.current_path}\n")]
            return ids
        for path, text in repository.files:
            ids += tokenize(f"{path_comment(path)}\n{text.rstrip()}\n\n")
        ids += tokenize(f"{path_comment(repository.current_path)}\n")
        return ids


def path_comment(path: str) -> str:
    """A line comment naming a file, in the file's own language (``# pkg/a.py``)."""
    markers = languages.language_for("", path).line_comment
    return f"{markers[0] if markers else '#'} {path}"


TokenLookup = Callable[[str], int | None]


def detect(
    lookup: TokenLookup,
    *,
    vocab_fim_ids: tuple[int, int, int] = (-1, -1, -1),
    id_to_text: Callable[[int], str] | None = None,
    bos_id: int | None = None,
    eog_ids: frozenset[int] = frozenset(),
    order: Order | None = None,
) -> ResolvedTemplate:
    """Pick the template whose control tokens exist in the vocabulary.

    ``lookup`` maps a token's text to its id when the text is exactly one token.
    ``vocab_fim_ids`` are llama.cpp's own FIM ids (``llama_vocab_fim_pre/suf/mid``); when
    they are set but match no known template, a generic PSM template is built from them.
    ``order`` overrides the family's trained order.
    """
    for template in KNOWN_TEMPLATES:
        ids = (lookup(template.prefix), lookup(template.suffix), lookup(template.middle))
        if None in ids:
            continue
        prefix_id, suffix_id, middle_id = (int(i) for i in ids if i is not None)
        stop_ids = {i for text in template.stop if (i := lookup(text)) is not None}
        return ResolvedTemplate(
            template=template,
            prefix_id=prefix_id,
            suffix_id=suffix_id,
            middle_id=middle_id,
            order=order or template.order,
            bos_id=bos_id if template.add_bos else None,
            stop_ids=frozenset(stop_ids) | eog_ids,
            repo_name_id=lookup(template.repo_name) if template.repo_name else None,
            file_separator_id=lookup(template.file_separator) if template.file_separator else None,
        )
    if min(vocab_fim_ids) >= 0:
        names = tuple(id_to_text(i) if id_to_text else str(i) for i in vocab_fim_ids)
        generic = FimTemplate("generic", names[0], names[1], names[2], "psm")
        return ResolvedTemplate(
            template=generic,
            prefix_id=vocab_fim_ids[0],
            suffix_id=vocab_fim_ids[1],
            middle_id=vocab_fim_ids[2],
            order=order or "psm",
            bos_id=None,
            stop_ids=eog_ids,
        )
    known = ", ".join(t.name for t in KNOWN_TEMPLATES)
    raise TemplateError(
        f"the model's vocabulary has no fill-in-the-middle tokens (looked for {known}); "
        "use a code model trained for FIM such as Qwen2.5-Coder"
    )
