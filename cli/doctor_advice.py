"""The doctor's advice: which model, threads, nCtx, kvCacheType and GPU settings fit this machine.

Everything is derived from what was measured and read, never from a table of machines:

* **model**: the measured prefill and decode speeds of the configured model are scaled
  to every registry model by its weight bytes (decoding reads every weight once per token,
  and prefill does work in proportion to them), giving each one's keystroke latency; the
  largest model whose keystroke stays under 500 ms and whose memory need fits in the free
  RAM is advised. Scaling by size is pessimistic for the smallest models (the vocabulary
  and per-token overheads do not shrink with them), so the advice errs toward speed.
* **threads**: the physical cores (performance cores on Apple Silicon); hyperthreads
  slow llama.cpp down.
* **nCtx**: the request and each document stream need prefixTokens + suffixTokens +
  maxTokensMultiline cells of the shared KV cache.
* **kvCacheType**: f16 unless memory is short, then q8_0 (about half the KV cache at the
  same SingleLine pass@1, measured); q4_0 is advised against (it lost most of the score).
* **GPU**: the build command for a GPU found here, then ``gpuLayers`` for all layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cli.doctor_measure import Measurement
    from cli.doctor_report import Status
    from fim.config import Config
    from fim.hardware import CpuInfo, Gpu, LlamaBuild, MemoryInfo

Advice = tuple["Status", str, "str | None"]

#: A keystroke (tokens at the cursor + 10 generated) should show a suggestion within this.
KEYSTROKE_TARGET_MS = 500.0
#: The model may use at most this share of the RAM that is free.
MEMORY_HEADROOM = 0.75


def gpu_build_command(backend: str) -> str:
    """How to build llama.cpp for a GPU backend (cuda, metal, vulkan, rocm)."""
    return f"from a clone: FIM_LSP_GPU={backend} make install"


def all_layers_value(layers: int) -> int:
    """The ``gpuLayers`` value meaning "every layer": -1 when the options accept it."""
    from fim.config import parse

    _config, problems = parse({"gpuLayers": -1})
    # llama.cpp counts the output layer as one more: layers + 1 offloads everything.
    return -1 if not problems else layers + 1


def _threads(config: Config, cpu: CpuInfo, measurement: Measurement | None) -> Advice:
    best = cpu.performance_cores or cpu.physical_cores
    if measurement and measurement.threads and config.threads == 0 and measurement.threads != best:
        return (
            "warn",
            f"threads: the engine chose {measurement.threads}, this machine has {best} physical cores",
            f'set "threads": {best}',
        )
    if config.threads == 0:
        return "ok", f"threads: auto, {best} (the physical cores)", None
    if config.threads > best:
        return (
            "warn",
            f"threads: {config.threads} is more than the {best} physical cores; hyperthreads slow llama.cpp",
            '"threads": 0 (the physical cores)',
        )
    return "ok", f"threads: {config.threads} of {best} physical cores", None


def _model(
    config: Config, memory: MemoryInfo, measurement: Measurement | None, facts: Any, repack: bool
) -> list[Advice]:
    from cli.doctor_measure import KEYSTROKE_GENERATED, expected_latency_ms
    from fim import models
    from fim.gguf_info import mib

    if measurement is None or facts is None:
        return [("info", "model: no measurement, so no model advice (run without --no-measure)", None)]
    at_cursor = max(1, measurement.keystroke_evaluated) + config.suffix_tokens
    lines = []
    fitting = []
    for entry in models.REGISTRY.values():
        ratio = facts.weight_bytes / entry.shape.weight_bytes
        prefill, decode = measurement.prefill_tok_s * ratio, measurement.decode_tok_s * ratio
        keystroke = expected_latency_ms(at_cursor, KEYSTROKE_GENERATED, prefill, decode)
        need = entry.shape.memory(config.n_ctx, config.kv_cache_type, config.document_streams, repack=repack)
        fits_memory = need.total < memory.available * MEMORY_HEADROOM
        fast = keystroke <= KEYSTROKE_TARGET_MS
        if fits_memory and fast:
            fitting.append((entry.shape.weight_bytes, entry.name))
        verdict = "fits" if fits_memory and fast else "too slow" if fits_memory else "not enough RAM"
        memory_text = mib(need.total)
        lines.append(f"{entry.name:22} keystroke ~{keystroke:>6.0f} ms, memory {memory_text:>11}  {verdict}")
    table = "\n".join(lines)
    if not fitting:
        return [
            (
                "warn",
                f"model: no registry model keeps a keystroke under {KEYSTROKE_TARGET_MS:.0f} ms here "
                f"(estimated from this measurement):\n{table}",
                "use a GPU build if there is a GPU, close other heavy programs, or accept slower suggestions",
            )
        ]
    best = max(fitting)[1]
    header = f"model: {best} is the largest that keeps a keystroke under {KEYSTROKE_TARGET_MS:.0f} ms here"
    if best == config.model:
        return [("ok", f"{header}; it is the one configured\n{table}", None)]
    pull = f"fim-lsp model pull {best}" if not models.cached_path(models.REGISTRY[best]).is_file() else None
    fix = f'"model": "{best}"' + (f" (first: {pull})" if pull else "")
    return [("info", f"{header} (estimated from this measurement):\n{table}", fix)]


def _n_ctx(config: Config) -> Advice:
    per_sequence = config.prefix_tokens + config.suffix_tokens + config.max_tokens_multiline
    sequences = 1 + config.document_streams
    need = per_sequence * sequences
    if config.n_ctx < need:
        suggested = -(-need // 1024) * 1024
        return (
            "warn",
            f"nCtx {config.n_ctx} is less than the request and {config.document_streams} document "
            f"streams need ({sequences} × {per_sequence} = {need} tokens): streams will push each other out",
            f'"nCtx": {suggested}, or fewer "documentStreams"',
        )
    return (
        "ok",
        f"nCtx {config.n_ctx} holds the request and {config.document_streams} document streams "
        f"({sequences} × {per_sequence} = {need} tokens)",
        None,
    )


def _kv_cache(config: Config, memory: MemoryInfo, facts: Any, repack: bool) -> Advice:
    from fim.gguf_info import mib

    if facts is None:
        return "info", f"kvCacheType: {config.kv_cache_type} (no model to size it for)", None
    sizes = {kind: facts.kv_cache_bytes(config.n_ctx, kind) for kind in ("f16", "q8_0", "q4_0")}
    total = facts.memory(config.n_ctx, config.kv_cache_type, config.document_streams, repack=repack).total
    if total > memory.available * MEMORY_HEADROOM and config.kv_cache_type == "f16":
        return (
            "warn",
            f"kvCacheType f16: the model needs {mib(total)} of {mib(memory.available)} free",
            f'"kvCacheType": "q8_0" (KV {mib(sizes["f16"])} -> {mib(sizes["q8_0"])}), or a smaller nCtx',
        )
    if config.kv_cache_type == "q4_0":
        return (
            "warn",
            f"kvCacheType q4_0: KV cache {mib(sizes['q4_0'])}, but q4_0 costs most of the quality "
            "(SingleLine pass@1 12% against 54% with f16 or q8_0, README: Models)",
            f'"kvCacheType": "q8_0" ({mib(sizes["q8_0"])}, the same pass@1 as f16)',
        )
    return (
        "ok",
        f"kvCacheType {config.kv_cache_type}: KV cache {mib(sizes[config.kv_cache_type])} "
        f"(f16 {mib(sizes['f16'])}, q8_0 {mib(sizes['q8_0'])} at the same pass@1, q4_0 "
        f"{mib(sizes['q4_0'])} at a quarter of it); memory is not short",
        None,
    )


def _gpu(config: Config, gpus: list[Gpu], build: LlamaBuild | None, facts: Any) -> list[Advice]:
    if not gpus:
        return [("info", "GPU: none here; every layer runs on the CPU", None)]
    layers = facts.layers if facts is not None else 28
    value = all_layers_value(layers)
    if build is None or not build.gpu_offload:
        return [
            (
                "warn",
                f"GPU: {gpus[0].name} is not used: llama.cpp was built for the CPU only",
                f'{gpu_build_command(gpus[0].backend)}, then set "gpuLayers": {value} and run '
                "`fim-lsp doctor` again to confirm the offload",
            )
        ]
    if config.gpu_layers == 0:
        fix = f'"gpuLayers": {value} (all layers)'
        return [("warn", "GPU: the build can offload but gpuLayers is 0", fix)]
    return [("ok", f"GPU: gpuLayers {config.gpu_layers} (the Speed section confirms the offload)", None)]


def advice_findings(
    config: Config,
    cpu: CpuInfo,
    memory: MemoryInfo,
    gpus: list[Gpu],
    build: LlamaBuild | None,
    measurement: Measurement | None,
    facts: Any,
) -> list[Advice]:
    repack = bool(build and build.backends.get("CPU", {}).get("REPACK") == "1")
    return [
        *_model(config, memory, measurement, facts, repack),
        _threads(config, cpu, measurement),
        _n_ctx(config),
        _kv_cache(config, memory, facts, repack),
        *_gpu(config, gpus, build, facts),
    ]
