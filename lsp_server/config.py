"""The daemon's options: one msgspec Struct, camelCase on the wire, documented defaults.

Options arrive in ``initializationOptions``, ``workspace/didChangeConfiguration`` and
the ``workspace/configuration`` pull (section ``fimLsp``). A value of the wrong type or
out of range is reported by field name and the default for that field stays in force;
every other field still applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

Positive = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class Config(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=False):
    """Every option of the daemon; the README's option table mirrors this."""

    #: Registry name (see ``fim-lsp model list``) or a path to a .gguf file.
    model: str = "qwen2.5-coder-0.5b"
    #: Fetch a registry model on start if it is not cached (the only network access).
    allow_download: bool = False
    #: KV cache size in tokens, shared by the request and the document streams.
    n_ctx: Annotated[int, msgspec.Meta(ge=512, le=131072)] = 8192
    #: CPU threads; 0 means the number of physical cores.
    threads: NonNegative = 0
    gpu_layers: NonNegative = 0
    flash_attn: bool = True
    kv_cache_type: Literal["f16", "q8_0", "q4_0"] = "f16"
    #: Documents whose token streams stay in the KV cache.
    document_streams: Annotated[int, msgspec.Meta(ge=0, le=15)] = 3
    #: Token budget for text before the cursor.
    prefix_tokens: Annotated[int, msgspec.Meta(ge=16, le=65536)] = 1536
    #: Token budget for text after the cursor (re-evaluated on every keystroke).
    suffix_tokens: Annotated[int, msgspec.Meta(ge=0, le=8192)] = 0
    #: FIM order: "auto" uses the order the model family was trained on.
    fim_order: Literal["auto", "psm", "spm"] = "auto"
    #: Wait this long after a keystroke before starting a generation.
    debounce_ms: Annotated[int, msgspec.Meta(ge=0, le=5000)] = 0
    #: Generated-token cap for a single-line completion.
    max_tokens: Positive = 64
    #: Generated-token cap for a multi-line completion.
    max_tokens_multiline: Positive = 192
    #: Stop generating after this long (prefill included).
    time_budget_ms: Annotated[int, msgspec.Meta(ge=50, le=60000)] = 4000
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)] = 0.0
    top_k: Positive = 40
    top_p: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.9
    #: Language ids to serve; empty means all.
    enabled_languages: list[str] = msgspec.field(default_factory=list)
    disabled_languages: list[str] = msgspec.field(default_factory=list)
    #: "auto": multi-line in empty blocks; "never": always one line; "always": always blocks.
    multiline: Literal["auto", "always", "never"] = "auto"
    #: Offer completions inside comments and strings (single line).
    complete_in_comments: bool = True
    #: Reuse above the model.
    cache: bool = True
    cache_size: Positive = 256
    type_through: bool = True
    speculative: bool = False
    #: Draft tokens from text already in the prompt (output identical to greedy).
    prompt_lookup: bool = False
    #: Evaluate the open document into its stream while the user is idle.
    idle_prefill: bool = True
    idle_prefill_ms: NonNegative = 400
    log_level: Literal["error", "warning", "info", "debug"] = "info"


CONFIG_SECTION = "fimLsp"
_PATH = re.compile(r"at `\$\.(\w+)")
#: Options that need the model to be loaded again when they change.
MODEL_FIELDS = (
    "model",
    "n_ctx",
    "threads",
    "gpu_layers",
    "flash_attn",
    "kv_cache_type",
    "document_streams",
    "fim_order",
)


@dataclass(frozen=True)
class ConfigProblem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"fim-lsp: invalid setting `{self.field}`: {self.message}; using the default"


def _wire_names() -> dict[str, str]:
    return {field.encode_name: field.name for field in msgspec.structs.fields(Config)}


def parse(options: Any, base: Config | None = None) -> tuple[Config, list[ConfigProblem]]:
    """Merge ``options`` (a wire dict) over ``base``; bad fields are dropped and reported."""
    base = base or Config()
    if options is None:
        return base, []
    if isinstance(options, dict) and CONFIG_SECTION in options:
        section = options[CONFIG_SECTION]
        options = {} if isinstance(section, list) and not section else section
    if isinstance(options, list) and not options:
        # Lua and some JSON encoders cannot tell an empty object from an empty array.
        options = {}
    if not isinstance(options, dict):
        return base, [ConfigProblem("(root)", f"expected an object, got {type(options).__name__}")]
    merged: dict[str, Any] = msgspec.to_builtins(base)
    names = _wire_names()
    problems: list[ConfigProblem] = []
    for key in options:
        if key not in names:
            problems.append(ConfigProblem(key, "unknown option"))
    incoming = {key: value for key, value in options.items() if key in names}
    merged.update(incoming)
    while True:
        try:
            return msgspec.convert(merged, Config), problems
        except msgspec.ValidationError as error:
            found = _PATH.search(str(error))
            if not found or found.group(1) not in incoming:
                return base, [*problems, ConfigProblem("(root)", str(error))]
            key = found.group(1)
            problems.append(ConfigProblem(key, str(error).split(" - at ")[0]))
            merged[key] = msgspec.to_builtins(base)[key]
            del incoming[key]


def options_table() -> list[tuple[str, str, str]]:
    """(wire name, type, default) for every option, for the README and `fim-lsp config`."""
    rows = []
    defaults = msgspec.to_builtins(Config())
    for field in msgspec.structs.fields(Config):
        rows.append((field.encode_name, str(field.type), repr(defaults[field.encode_name])))
    return rows
