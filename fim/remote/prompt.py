"""The raw FIM prompt for a remote server, built client-side from ``fim.templates``.

No two servers do FIM the same way (vLLM, TGI and llama-server refuse ``suffix`` on
``/v1/completions``, text-generation-webui appends it to the output), so every dialect
but llama-server's ``/infill`` sends one plain prompt string made here.

A server parses control-token text inside a prompt string as the control token, so the
user's own text could end the prefix early (``<|fim_middle|>`` typed in a file). The
in-process path tokenizes buffer text with special-token parsing off; here the buffer's
copies of the template's markers are broken with a zero-width joiner so that they stay
plain text.
"""

from __future__ import annotations

from fim.templates import KNOWN_TEMPLATES, FimTemplate

#: Inserted into a marker's text found in the user's buffer: it no longer spells the
#: marker, and a tokenizer sees two ordinary pieces.
MARKER_BREAK = "\u200d"

#: Substrings of served model names that tell the FIM family, checked in order.
FAMILY_HINTS: tuple[tuple[str, str], ...] = (
    ("qwen", "qwen2.5-coder"),
    ("deepseek", "deepseek-coder"),
    ("starcoder", "starcoder"),
    ("codellama", "codellama"),
    ("code-llama", "codellama"),
    ("codestral", "codestral"),
)


class TemplateChoiceError(ValueError):
    """``fimTemplate`` names no known family, or "auto" found none in the model name."""


def template_named(name: str) -> FimTemplate:
    for template in KNOWN_TEMPLATES:
        if template.name == name:
            return template
    known = ", ".join(t.name for t in KNOWN_TEMPLATES)
    raise TemplateChoiceError(f"fimTemplate {name!r} is not a known family (use auto or one of {known})")


def template_for_model(model_name: str) -> FimTemplate:
    """The family a served model's name (or GGUF path) belongs to, for ``fimTemplate: auto``."""
    lowered = model_name.lower()
    for hint, family in FAMILY_HINTS:
        if hint in lowered:
            return template_named(family)
    known = ", ".join(t.name for t in KNOWN_TEMPLATES)
    raise TemplateChoiceError(
        f"cannot tell the FIM template from the model name {model_name!r}; set fimTemplate to one of {known}"
    )


def marker_text(marker: str) -> str:
    """A marker as prompt text: SentencePiece's ``▁`` before CodeLlama's markers is a space."""
    return " " + marker[1:] if marker.startswith("▁<") else marker


def defuse(text: str, template: FimTemplate) -> str:
    """``text`` with every copy of the template's markers and stop strings broken."""
    for marker in (template.prefix, template.suffix, template.middle, *template.stop):
        plain = marker_text(marker).strip()
        if len(plain) > 1 and plain in text:
            text = text.replace(plain, plain[0] + MARKER_BREAK + plain[1:])
    return text


def fim_prompt(template: FimTemplate, prefix: str, suffix: str) -> str:
    """The whole prompt in the family's trained order; BOS is left to the server."""
    prefix, suffix = defuse(prefix, template), defuse(suffix, template)
    begin, hole, end = (marker_text(m) for m in (template.prefix, template.suffix, template.middle))
    if template.order == "spm":
        return f"{hole}{suffix}{begin}{prefix}{end}"
    return f"{begin}{prefix}{hole}{suffix}{end}"


def stop_strings(template: FimTemplate) -> list[str]:
    """What ends a completion besides the server's end-of-generation token."""
    return [marker_text(stop).strip() for stop in template.stop]
