"""``fim-lsp doctor [--json]``: check everything a completion depends on, and say what to do.

Sections, in order: the machine (CPU, instruction sets, cores, RAM, GPUs), the llama.cpp
build (version, GPU offload, system info, the project's CPU flags), the models (cached,
hashes, memory need for the options in force), the engine processes (``sharedEngine``:
where their sockets are, which run, whether the last load failed), a measurement of about 5 seconds with the
configured model (prefill and decode speed, the latency of a keystroke and of a cold
file open), advice (model, threads, nCtx, kvCacheType, gpuLayers and the GPU build
command), the editors (found, plugin installed, daemon found) and remote backends.

The options in force are the daemon's: defaults, then FIM_LSP_OPTIONS, then
``--options`` and ``--model``. The exit status is 1 when a check failed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cli.doctor_advice import KEYSTROKE_TARGET_MS, MEMORY_HEADROOM, gpu_build_command
from cli.doctor_report import Report, Section

if TYPE_CHECKING:
    from cli.doctor_measure import Measurement
    from fim.config import Config
    from fim.hardware import CpuInfo, Gpu, LlamaBuild, MemoryInfo


def add_parser(commands: Any, run: Callable[[argparse.Namespace], int]) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check the machine, llama.cpp, models, speed and editors; say what to do",
        description="Check everything fim-lsp depends on and print what to do about each problem.",
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.add_argument("--model", help="registry name or .gguf path (default: the options' model)")
    doctor.add_argument("--options", help="daemon options as JSON, as an editor would send them")
    doctor.add_argument("--no-measure", action="store_true", help="skip the 5-second speed measurement")
    doctor.add_argument(
        "--verify", action="store_true", help="hash every cached model again (otherwise only changed files)"
    )
    doctor.set_defaults(run=run)


def run_doctor(args: argparse.Namespace) -> int:
    from fim import __version__

    report = Report(__version__)
    build_report(report, args)
    if args.json:
        import json

        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.render())
    return 1 if report.failed else 0


def build_report(report: Report, args: argparse.Namespace) -> None:
    from cli.doctor_editors import check_editors
    from cli.options import load_config
    from fim import hardware

    config, problems = load_config(args.options, args.model)
    settings = report.section("config", "Options")
    settings.data["options"] = _config_data(config)
    for problem in problems:
        settings.add("fail", str(problem), "fix the value in FIM_LSP_OPTIONS / --options")
    settings.add(
        "info",
        f"model {config.model}, nCtx {config.n_ctx}, kvCacheType {config.kv_cache_type}, "
        f"documentStreams {config.document_streams}, threads {config.threads or 'auto'}, "
        f"gpuLayers {config.gpu_layers}",
    )

    cpu, memory, gpus = hardware.cpu_info(), hardware.memory_info(), hardware.find_gpus()
    check_machine(report.section("machine", "Machine"), cpu, memory, gpus)
    build = check_llama(report.section("llama", "llama.cpp build"), cpu, gpus)
    models_section = report.section("models", "Models")
    model_facts = check_models(models_section, config, memory, build, args.verify)
    check_engine(report.section("engine", "Engine process (sharedEngine)"), config)
    measurement = None
    speed = report.section("speed", "Speed (about 5 s with the configured model)")
    if args.no_measure:
        speed.add("info", "skipped (--no-measure)")
    elif model_facts is None:
        speed.add("info", "skipped: the configured model is not available (see Models)")
    else:
        measurement = check_speed(speed, config, model_facts, build)
    advise(report.section("advice", "Advice"), config, cpu, memory, gpus, build, measurement, model_facts)
    check_editors(report.section("editors", "Editors"))
    check_remote_backends(report.section("remote", "Remote backends"), config)


def _config_data(config: Config) -> dict[str, Any]:
    import msgspec

    return dict(msgspec.to_builtins(config))


# ------------------------------------------------------------------------------ machine


def check_machine(section: Section, cpu: CpuInfo, memory: MemoryInfo, gpus: list[Gpu]) -> None:
    from fim.gguf_info import human_bytes

    section.data.update(cpu=cpu.as_dict(), memory=memory.as_dict(), gpus=[gpu.as_dict() for gpu in gpus])
    sets = [name for name, present in cpu.instruction_sets.items() if present]
    section.add("info", f"CPU: {cpu.model} ({cpu.architecture})")
    section.add("info", f"instruction sets: {', '.join(sets) or 'none of the SIMD sets llama.cpp uses'}")
    cores = f"{cpu.physical_cores} physical cores, {cpu.logical_cores} logical"
    if cpu.performance_cores:
        cores += f", {cpu.performance_cores} performance cores"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    section.data["load_average"] = load
    section.add("info", cores + (f"; load average {load:.1f}" if load is not None else ""))
    if load is not None and load > cpu.logical_cores:
        section.add(
            "warn",
            f"the machine is busy (load {load:.1f} on {cpu.logical_cores} cores): the speed "
            "measured below is lower than on an idle machine",
            "run `fim-lsp doctor` again when the machine is idle for figures that hold",
        )
    limit = f" (container limit {human_bytes(memory.cgroup_limit)})" if memory.cgroup_limit else ""
    ram = f"RAM: {human_bytes(memory.available)} available of {human_bytes(memory.total)}{limit}"
    section.add("info", ram)
    if not gpus:
        section.add("info", "GPU: none found (looked for nvidia-smi, rocm-smi, vulkaninfo, Apple Metal)")
    for gpu in gpus:
        size = f", {human_bytes(gpu.memory_total)}" if gpu.memory_total else ""
        section.add("info", f"GPU: {gpu.vendor} {gpu.name}{size} (llama.cpp backend: {gpu.backend})")


# ---------------------------------------------------------------------------- llama.cpp

#: How to rebuild llama-cpp-python with the project's flags (and a GPU backend).
REBUILD = "from a clone: `make install` (or `make venv` for the development venv)"


def check_llama(section: Section, cpu: CpuInfo, gpus: list[Gpu]) -> LlamaBuild | None:
    from fim import hardware

    try:
        build = hardware.llama_build(cpu)
    except Exception as error:  # a broken native library must not stop the other checks
        section.add("fail", f"llama-cpp-python cannot be loaded: {error}", REBUILD)
        return None
    section.data.update(build.as_dict())
    section.add("info", f"llama-cpp-python {build.llama_cpp_python}; system info: {build.system_info}")
    devices = ", ".join(f"{device.name} ({device.kind})" for device in build.devices) or "none listed"
    section.add("info", f"devices: {devices}")
    if build.cpu_flag_differences:
        section.add(
            "warn",
            "not built with the project's CPU flags: " + "; ".join(build.cpu_flag_differences),
            f"rebuild it: {REBUILD}. The project names this CPU's instruction sets one by one and "
            "leaves AMX out (its kernels crash on some virtual machines)",
        )
    elif cpu.is_x86:
        section.add("ok", "built with the project's CPU flags for this CPU")
    if build.gpu_offload:
        gpu_devices = ", ".join(device.description or device.name for device in build.gpu_devices)
        if build.gpu_devices:
            section.add("ok", f"GPU offload compiled in; llama.cpp sees: {gpu_devices}")
        else:
            section.add(
                "warn",
                "GPU offload compiled in, but llama.cpp sees no GPU device",
                "check the GPU driver (nvidia-smi / vulkaninfo / rocm-smi must list the GPU)",
            )
    elif gpus:
        section.add(
            "warn",
            f"this build is CPU only, but the machine has a GPU ({gpus[0].name})",
            f"build for it: {gpu_build_command(gpus[0].backend)}",
        )
    else:
        section.add("ok", "CPU-only build (no GPU here)")
    return build


# ------------------------------------------------------------------------------- models


def _repacks(build: LlamaBuild | None, cpu_has_simd: bool = True) -> bool:
    return bool(build and build.backends.get("CPU", {}).get("REPACK") == "1" and cpu_has_simd)


def check_models(
    section: Section, config: Config, memory: MemoryInfo, build: LlamaBuild | None, verify: bool
) -> Any:
    """Cached models with their hashes and memory need; returns the configured model's facts."""
    from cli.model_command import memory_lines
    from fim import models
    from fim.gguf_info import GGUFError, human_bytes, mib, model_facts

    repack = _repacks(build)
    rows = []
    configured_facts = None
    for entry in models.REGISTRY.values():
        path = models.cached_path(entry)
        row: dict[str, Any] = {"name": entry.name, "cached": path.is_file(), "path": str(path)}
        rows.append(row)
        if not path.is_file():
            continue
        verified = models.is_verified(entry, path, rehash=verify)
        row["verified"] = verified
        row["sha256"] = models.expected_sha256(entry, path)
        size = human_bytes(path.stat().st_size)
        refetch = f"fetch it again: fim-lsp model rm {entry.name} && fim-lsp model pull {entry.name}"
        if not verified:
            problem = "SHA-256 does not match" if row["sha256"] else "no record of a verified download"
            section.add("fail", f"{entry.name}: {size}, {problem}", refetch)
            continue
        try:
            facts = model_facts(path)
        except GGUFError as error:
            section.add("fail", f"{entry.name}: {error}", refetch)
            continue
        estimate = facts.memory(config.n_ctx, config.kv_cache_type, config.document_streams, repack=repack)
        row["memory"] = estimate.as_dict()
        fits = estimate.total < memory.available * MEMORY_HEADROOM
        section.add(
            "ok" if fits else "warn",
            f"{entry.name}: {size}, SHA-256 verified; needs {mib(estimate.total)} with these options",
            None if fits else "not enough free RAM for it with these options: see Advice",
        )
    section.data["registry"] = rows
    cached = [row["name"] for row in rows if row["cached"]]
    if not cached:
        section.add("warn", "no registry model is cached", f"fim-lsp model pull {models.DEFAULT_MODEL}")
    try:
        path = models.resolve(config.model, fetch=False)
    except models.ModelError as error:
        fix = (
            f"fim-lsp model pull {config.model}"
            if config.model in models.REGISTRY
            else "set `model` to a registry name or a .gguf file"
        )
        section.add("fail", f"configured model: {error}", fix)
        return None
    try:
        configured_facts = model_facts(path)
    except GGUFError as error:
        section.add("fail", f"configured model: {error}", "point `model` at a GGUF file")
        return None
    estimate = configured_facts.memory(
        config.n_ctx, config.kv_cache_type, config.document_streams, repack=repack
    )
    section.data["configured"] = {"facts": configured_facts.as_dict(), "memory": estimate.as_dict()}
    template = configured_facts.fim_template
    if template is None:
        section.add(
            "fail",
            f"configured model {path.name} has no fill-in-the-middle tokens",
            f"use a FIM code model, e.g. {models.DEFAULT_MODEL}",
        )
    arithmetic = "\n".join(memory_lines(estimate))
    section.add(
        "info",
        f"configured model {config.model}: {configured_facts.layers} layers, {configured_facts.kv_heads} KV "
        f"heads × {configured_facts.head_dim}, {configured_facts.parameters / 1e9:.2f}B parameters × "
        f"{configured_facts.bits_per_weight:.2f} bits, FIM template {template}; memory:\n{arithmetic}",
    )
    return configured_facts


# -------------------------------------------------------------------------------- speed


def check_speed(section: Section, config: Config, facts: Any, build: LlamaBuild | None) -> Measurement | None:
    from cli.doctor_measure import KEYSTROKE_GENERATED, expected_latency_ms, measure
    from fim.gguf_info import mib

    try:
        measurement = measure(config, facts.path)
    except Exception as error:  # a load failure is a finding, not a crash
        section.add(
            "fail",
            f"the model did not load: {error}",
            "see the Models section; `fim-lsp serve --log-file F` logs llama.cpp's own reason",
        )
        return None
    section.data["measurement"] = measurement.as_dict()
    load = measurement.load
    llama_says = ", ".join(f"{name} {size:.1f} MiB" for name, size in load.buffers_mib.items())
    rss = f"; resident memory grew by {mib(load.rss_growth)}" if load.rss_growth else ""
    section.add("info", f"loaded in {load.seconds:.1f} s; llama.cpp allocated: {llama_says}{rss}")
    if config.gpu_layers and build and build.gpu_offload:
        if load.offloaded and load.offloaded[0] > 0:
            section.add("ok", f"offloaded {load.offloaded[0]}/{load.offloaded[1]} layers to the GPU")
        else:
            section.add(
                "fail",
                f"gpuLayers is {config.gpu_layers} but llama.cpp offloaded no layer",
                "check the GPU driver and free GPU memory; `fim-lsp serve --log-file F` logs why",
            )
    elif config.gpu_layers > 0:
        section.add(
            "warn",
            f"gpuLayers is {config.gpu_layers} but this llama.cpp has no GPU backend: it runs on the CPU",
            "build one (see the llama.cpp build section), or leave gpuLayers at its default",
        )
    prefill, decode = measurement.prefill_tok_s, measurement.decode_tok_s
    section.add(
        "info",
        f"prefill {prefill:.0f} tok/s ({measurement.prefill_tokens} tokens), decode {decode:.1f} tok/s "
        f"({measurement.decode_tokens} tokens), {measurement.threads} threads",
    )
    at_cursor = max(1, measurement.keystroke_evaluated) + config.suffix_tokens
    keystroke = expected_latency_ms(at_cursor, KEYSTROKE_GENERATED, prefill, decode)
    cold_tokens = config.prefix_tokens + config.suffix_tokens
    cold = expected_latency_ms(cold_tokens, KEYSTROKE_GENERATED, prefill, decode)
    section.data["expected"] = {
        "keystroke_ms": keystroke,
        "cold_open_ms": cold,
        "tokens_at_cursor": at_cursor,
    }
    section.add(
        "ok" if keystroke <= KEYSTROKE_TARGET_MS else "warn",
        f"typical keystroke ({at_cursor} tokens at the cursor + {KEYSTROKE_GENERATED} generated): "
        f"about {keystroke:.0f} ms (one measured: {measurement.keystroke_ms:.0f} ms)",
        None if keystroke <= KEYSTROKE_TARGET_MS else "over 500 ms: see Advice",
    )
    section.add(
        "info",
        f"cold file open (prefixTokens {config.prefix_tokens} evaluated, then {KEYSTROKE_GENERATED} "
        f"generated): about {cold / 1000:.1f} s; idle prefill does this in the background when a file opens",
    )
    return measurement


# ------------------------------------------------------------------------------- advice


def advise(
    section: Section,
    config: Config,
    cpu: CpuInfo,
    memory: MemoryInfo,
    gpus: list[Gpu],
    build: LlamaBuild | None,
    measurement: Measurement | None,
    facts: Any,
) -> None:
    from cli.doctor_advice import advice_findings

    for status, text, fix in advice_findings(config, cpu, memory, gpus, build, measurement, facts):
        section.add(status, text, fix)


# ------------------------------------------------------------------------------ remote


# ------------------------------------------------------------------------------- engine


def check_engine(section: Section, config: Config) -> None:
    """Where the model runs: the shared engine processes of this user, or each daemon."""
    from fim.backend import ModelLoadError
    from fim.shared.wire import LOAD_FAILED, RUNTIME_DIR_ENV, live_hosts, runtime_dir

    section.data["shared_engine"] = config.shared_engine
    if config.backend != "llama.cpp":
        section.add("info", f"the model runs on {config.backend} servers: no engine process here")
        return
    if not config.shared_engine:
        section.add(
            "warn",
            "sharedEngine is off: each daemon loads its own copy of the model, and a crash in "
            "llama.cpp ends the editor's connection",
            'leave `"sharedEngine"` at its default (true) unless you debug the engine in process',
        )
        return
    try:
        folder = runtime_dir()
    except ModelLoadError as error:
        section.add("fail", str(error), f"unset {RUNTIME_DIR_ENV} or point it at a folder with mode 0700")
        return
    hosts = live_hosts(folder)
    section.data.update(folder=str(folder), running=[{"socket": str(s), "pid": p} for s, p in hosts])
    section.add(
        "info",
        f"sockets and logs in {folder}; {len(hosts)} engine process(es) running"
        + (": pid " + ", ".join(str(pid) for _socket, pid in hosts) if hosts else ""),
    )
    for log_path in sorted(folder.glob("engine-*.sock.log")):
        try:
            lines = log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            continue
        if lines and lines[-1].startswith(LOAD_FAILED):
            section.add(
                "warn",
                f"the last engine process of {log_path.name} did not load its model: "
                + lines[-1].removeprefix(LOAD_FAILED),
                f"fix the model file or options; the whole log: {log_path}",
            )


def check_remote_backends(section: Section, config: Config) -> None:
    """Hook for remote backends (llama-server, Ollama, vLLM...): not built in this version.

    When the Config gains remote endpoints, this checks for each one: reachable, the
    model it serves, and whether that model has FIM tokens. Until then it reports
    nothing, and ``--json`` says that no remote backend is supported.
    """
    section.data["supported"] = False
    section.data["configured"] = []
