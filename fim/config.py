"""Every option of fim-lsp in one place: the struct, its defaults, its layers, its uses.

* ``Config``: one msgspec Struct, camelCase on the wire. Each default is written here and
  nowhere else; the README's option table mirrors it (a test checks).
* ``merge_layers``: the one function that stacks the settings layers (defaults,
  ``initializationOptions``, ``workspace/didChangeConfiguration`` or the
  ``workspace/configuration`` pull, the command line). A value of the wrong type or out
  of range is reported by field name and the layer below it stays in force for that
  field; every other field still applies.
* ``RELOAD_FIELDS``: the options that need the model loaded again, derived from the
  fields' metadata.
* ``derive``: the one mapping from a Config to what each part of ``fim`` takes (engine,
  context budgets, sampling, generation limits and policy).

It lives in ``fim`` rather than in the daemon because the command line, the daemon and
the harness's in-process benchmarks all need the same defaults.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from fim.backend import SamplingConfig
from fim.context import Budgets
from fim.models import DEFAULT_MODEL

if TYPE_CHECKING:
    from fim.llama import EngineConfig
    from fim.remote import RemoteSettings
    from fim.workspace import WorkspaceSettings

Positive = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
#: Field metadata: changing this option means loading the model again.
RELOADS_MODEL = msgspec.Meta(extra={"reloads_model": True})


class Config(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=False):
    """Every option of the daemon; the README's option table mirrors this."""

    #: Registry name (see ``fim-lsp model list``) or a path to a .gguf file.
    model: Annotated[str, RELOADS_MODEL] = DEFAULT_MODEL
    #: Fetch a registry model on start if it is not cached (the only network access).
    allow_download: bool = False
    #: Where the model runs: "llama.cpp" on this machine (see sharedEngine), or on a
    #: server that speaks "openai" (/v1/completions: vLLM, TGI, llama-server, LM Studio,
    #: llamafile), "llama-server" (/infill) or "ollama" (/api/generate).
    backend: Annotated[Literal["llama.cpp", "openai", "llama-server", "ollama"], RELOADS_MODEL] = "llama.cpp"
    #: Remote backends: the server's URL, or a list of servers to spread the documents over.
    endpoint: Annotated[str | list[str], RELOADS_MODEL] = ""
    #: Remote backends: the served model's name; empty asks the server (not Ollama).
    remote_model: Annotated[str, RELOADS_MODEL] = ""
    #: Remote backends: the model's FIM format; "auto" tells it from the model's name.
    fim_template: Annotated[
        Literal["auto", "qwen2.5-coder", "deepseek-coder", "starcoder", "codellama", "codestral"],
        RELOADS_MODEL,
    ] = "auto"
    #: Remote backends: the environment variable that holds a bearer token (the token
    #: itself is never logged or shown).
    api_key_env: Annotated[str, RELOADS_MODEL] = ""
    #: llama-server backend: fill with /infill (the server builds the prompt from the
    #: model's own tokens); false: /completion with the prompt built here.
    infill: Annotated[bool, RELOADS_MODEL] = True
    #: Remote backends: a server that does not accept the connection by then is down.
    connect_timeout_ms: Annotated[int, msgspec.Meta(ge=100, le=60000), RELOADS_MODEL] = 2000
    #: Remote backends: a request with no text by then fails (an overloaded server).
    first_token_timeout_ms: Annotated[int, msgspec.Meta(ge=100, le=600000), RELOADS_MODEL] = 10000
    #: KV cache size in tokens, shared by the request and the document streams.
    n_ctx: Annotated[int, msgspec.Meta(ge=512, le=131072), RELOADS_MODEL] = 8192
    #: CPU threads; 0 means the number of physical cores, and fewer while other
    #: processes keep the cores busy (one thread then decodes several times faster).
    threads: Annotated[NonNegative, RELOADS_MODEL] = 0
    #: Layers offloaded to a GPU; -1 means all of them. A llama.cpp built without a GPU
    #: backend runs every layer on the CPU whatever this says.
    gpu_layers: Annotated[int, msgspec.Meta(ge=-1), RELOADS_MODEL] = -1
    flash_attn: Annotated[bool, RELOADS_MODEL] = True
    kv_cache_type: Annotated[Literal["f16", "q8_0", "q4_0"], RELOADS_MODEL] = "f16"
    #: Hold the model in one engine process per user, shared by every editor window with
    #: the same model settings, instead of one copy per window; a crash in llama.cpp ends
    #: that process, never the daemon. It starts with the first window and exits after 10
    #: minutes without one. Off: the model runs inside each daemon (no crash isolation).
    shared_engine: Annotated[bool, RELOADS_MODEL] = True
    #: Documents whose token streams stay in the KV cache.
    document_streams: Annotated[int, msgspec.Meta(ge=0, le=15), RELOADS_MODEL] = 3
    #: Token budget for text before the cursor.
    prefix_tokens: Annotated[int, msgspec.Meta(ge=16, le=65536)] = 1536
    #: Token budget for text after the cursor (re-evaluated on every keystroke).
    suffix_tokens: Annotated[int, msgspec.Meta(ge=0, le=8192)] = 0
    #: Token budget for text after the cursor where the completion fills lines: a blank
    #: line, or a block body after an opener.
    fill_suffix_tokens: Annotated[int, msgspec.Meta(ge=0, le=8192)] = 0
    #: Token budget for text after the cursor where code right of it on its line ends
    #: the completion: the model must see that code to stop where it begins.
    span_suffix_tokens: Annotated[int, msgspec.Meta(ge=0, le=8192)] = 32
    #: FIM order: "auto" uses the order the model family was trained on.
    fim_order: Annotated[Literal["auto", "psm", "spm"], RELOADS_MODEL] = "auto"
    #: Wait this long after a keystroke before starting a generation.
    debounce_ms: Annotated[int, msgspec.Meta(ge=0, le=5000)] = 0
    #: Generated-token cap for a single-line completion.
    max_tokens: Positive = 64
    #: Generated-token cap for a multi-line completion.
    max_tokens_multiline: Positive = 192
    #: After a jump into a long file, hold the first request's prefill to about this long:
    #: the prefix is cut to the lines nearest the cursor that fit (at the measured prefill
    #: speed) and the whole prefix is warmed for the next request. 0: always the whole prefix.
    cold_prefill_ms: Annotated[int, msgspec.Meta(ge=0, le=60000)] = 800
    #: Stop decoding after this long; the prefill is not counted (what it evaluated stays
    #: in the cache, and a keystroke cancels it). A cut completion shows its whole words.
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
    #: Show the model definitions and code from other files of the workspace folders
    #: (never secrets, gitignored files or excludeGlobs). Off until a second draw confirms
    #: the exact-match gain measured with the 0.5B model (README, Benchmarks).
    workspace_context: bool = False
    #: Token budget for other files' context, put before the current file.
    workspace_tokens: Annotated[int, msgspec.Meta(ge=0, le=8192)] = 1024
    #: Glob patterns (.gitignore syntax, relative to a workspace folder) of files never read.
    exclude_globs: list[str] = msgspec.field(default_factory=list)
    #: Files indexed per workspace folder at most.
    max_indexed_files: Annotated[int, msgspec.Meta(ge=1, le=200000)] = 5000
    log_level: Literal["error", "warning", "info", "debug"] = "info"


CONFIG_SECTION = "fimLsp"
_PATH = re.compile(r"at `\$\.(\w+)")


def _reloads_model(annotation: Any) -> bool:
    """Whether a field's ``Annotated`` metadata (nested ones included) carries RELOADS_MODEL."""
    if typing.get_origin(annotation) is not Annotated:
        return False
    inner, *metadata = typing.get_args(annotation)
    return any(meta is RELOADS_MODEL for meta in metadata) or _reloads_model(inner)


#: Options that need the model to be loaded again when they change.
RELOAD_FIELDS = tuple(field.name for field in msgspec.structs.fields(Config) if _reloads_model(field.type))


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


def merge_layers(layers: Sequence[Any]) -> tuple[Config, list[list[ConfigProblem]]]:
    """Stack settings layers over the defaults, later layers winning field by field.

    The daemon's layers, lowest first: ``initializationOptions``, the workspace
    settings (pushed or pulled), the command line. Every merge starts again from the
    defaults, so a setting the user removes goes back to what the layers below say.
    Returns the Config and, for each layer, the problems found in it.
    """
    merged = Config()
    problems: list[list[ConfigProblem]] = []
    for layer in layers:
        merged, found = parse(layer, merged)
        problems.append(found)
    return merged, problems


@dataclass(frozen=True)
class GenerationSettings:
    """What the completion pipeline needs from a Config, besides the backend's own."""

    budgets: Budgets
    sampling: SamplingConfig
    max_tokens: int
    max_tokens_multiline: int
    time_budget_ms: int
    prompt_lookup: bool
    cold_prefill_ms: int | None
    multiline: Literal["auto", "always", "never"]
    complete_in_comments: bool


def derive(config: Config) -> GenerationSettings:
    """The one mapping from options to the context, sampling and generation settings."""
    return GenerationSettings(
        budgets=Budgets(
            prefix_tokens=config.prefix_tokens,
            suffix_tokens=config.suffix_tokens,
            fill_suffix_tokens=config.fill_suffix_tokens,
            span_suffix_tokens=config.span_suffix_tokens,
        ),
        sampling=SamplingConfig(temperature=config.temperature, top_k=config.top_k, top_p=config.top_p),
        max_tokens=config.max_tokens,
        max_tokens_multiline=config.max_tokens_multiline,
        time_budget_ms=config.time_budget_ms,
        prompt_lookup=config.prompt_lookup,
        cold_prefill_ms=config.cold_prefill_ms or None,
        multiline=config.multiline,
        complete_in_comments=config.complete_in_comments,
    )


def workspace_settings(config: Config) -> WorkspaceSettings:
    """What the workspace index and the context chooser take from the options."""
    from fim.workspace import WorkspaceSettings

    return WorkspaceSettings(
        enabled=config.workspace_context,
        budget_tokens=config.workspace_tokens,
        exclude_globs=tuple(config.exclude_globs),
        max_files=config.max_indexed_files,
    )


def engine_config(config: Config, model_path: str) -> EngineConfig:
    """The in-process engine's settings for a resolved model file."""
    from fim.llama import EngineConfig  # loads llama.cpp; only callers that load a model pay

    return EngineConfig(
        model_path=model_path,
        n_ctx=config.n_ctx,
        n_threads=config.threads or None,
        n_gpu_layers=config.gpu_layers,
        flash_attn=config.flash_attn,
        kv_cache_type=config.kv_cache_type,
        n_streams=config.document_streams,
        fim_order=None if config.fim_order == "auto" else config.fim_order,
    )


def endpoints(config: Config) -> tuple[str, ...]:
    """The ``endpoint`` option as a list of URLs (one URL may be given as a string)."""
    listed = [config.endpoint] if isinstance(config.endpoint, str) else config.endpoint
    return tuple(url.strip() for url in listed if url.strip())


def remote_settings(config: Config, local_vocabulary: str | None = None) -> RemoteSettings:
    """A remote backend's settings; ``local_vocabulary`` is a GGUF to count tokens with."""
    from fim.remote import RemoteSettings  # imports httpx; only remote backends pay

    assert config.backend != "llama.cpp"
    return RemoteSettings(
        dialect=config.backend,
        endpoints=endpoints(config),
        model=config.remote_model,
        fim_template=config.fim_template,
        api_key_env=config.api_key_env,
        connect_timeout_s=config.connect_timeout_ms / 1000,
        first_token_timeout_s=config.first_token_timeout_ms / 1000,
        n_ctx=config.n_ctx,
        use_infill=config.infill,
        local_vocabulary=local_vocabulary,
    )
