"""GGUF metadata and the memory arithmetic, against the real model files and llama.cpp itself.

The figures read from the header must be the model's (Qwen2.5-Coder-0.5B: 24 layers, 2 KV
heads of 64), and the arithmetic must give the bytes llama.cpp reports when it loads the
model: its model, repack, KV, output and compute buffers, for each KV cache type. The 1.5B
is checked too when it is cached (`fim-lsp model pull qwen2.5-coder-1.5b`).
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest

from fim import models
from fim.config import Config, engine_config
from fim.gguf_info import GGUFError, ModelShape, model_facts, read_gguf

MIB = 2**20
_BUFFER = re.compile(r"(\w+)\s+(model|KV|compute|output) buffer size\s*=\s*([\d.]+) MiB")


def cached_model(name: str) -> Path:
    path = models.cached_path(models.REGISTRY[name])
    if not path.is_file():
        pytest.skip(f"{name} is not cached: fim-lsp model pull {name}")
    return path


def llama_buffers(path: Path, config: Config) -> dict[str, float]:
    """Load the model as the daemon does and collect the buffer sizes llama.cpp logs (MiB)."""
    from fim.llama import LlamaEngine
    from fim.llama.log import quiet_llama

    quiet_llama()
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("fim.llama")
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        engine = LlamaEngine(engine_config(config, str(path)))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    engine.close()
    buffers: dict[str, float] = {}
    for line in lines:
        for device, kind, size in _BUFFER.findall(line):
            buffers[f"{device} {kind}"] = buffers.get(f"{device} {kind}", 0.0) + float(size)
    return buffers


def test_header_of_the_real_0_5b(model_path: Path) -> None:
    facts = model_facts(model_path)
    assert facts.architecture == "qwen2"
    assert (facts.layers, facts.heads, facts.kv_heads, facts.key_size, facts.value_size) == (
        24,
        14,
        2,
        64,
        64,
    )
    assert facts.embedding == 896 and facts.vocabulary == 151_936
    assert facts.context_length == 32_768
    assert facts.fim_template == "qwen2.5-coder"
    assert facts.file_type == "Q4_K_M"
    assert facts.file_size == models.REGISTRY["qwen2.5-coder-0.5b"].size
    # Weights ≈ parameters × bits/8, and the tensors fill the file up to its header.
    assert facts.weights_bytes() == facts.weight_bytes
    assert 0 < facts.file_size - facts.weight_bytes < 8 * MIB
    assert 4.5 < facts.bits_per_weight < 8


def test_kv_cache_arithmetic_by_hand(model_path: Path) -> None:
    facts = model_facts(model_path)
    # 2 × layers × n_ctx × kv_heads × head_dim × bytes per element.
    assert facts.kv_cache_bytes(8192, "f16") == 2 * 24 * 8192 * 2 * 64 * 2 == 96 * MIB
    assert facts.kv_cache_bytes(8192, "q8_0") == 2 * 24 * 8192 * 2 * 64 * 34 // 32 == 51 * MIB
    assert facts.kv_cache_bytes(4096, "q4_0") == 2 * 24 * 4096 * 2 * 64 * 18 // 32
    # The streams share the unified cache: more of them do not make it bigger.
    assert facts.memory(8192, "f16", 0).kv_cache == facts.memory(8192, "f16", 15).kv_cache
    assert facts.memory(8192, "f16", 3).sequences == 4
    with pytest.raises(ValueError, match="q5_1"):
        facts.kv_cache_bytes(8192, "q5_1")


@pytest.mark.parametrize("kv_type", ["f16", "q8_0", "q4_0"])
def test_estimate_matches_what_llama_cpp_allocates(model_path: Path, kv_type: str) -> None:
    config = Config(kv_cache_type=kv_type, n_ctx=8192, document_streams=3)
    buffers = llama_buffers(model_path, config)
    estimate = model_facts(model_path).memory(8192, kv_type, 3, repack="CPU_REPACK model" in buffers)
    assert buffers["CPU_Mapped model"] == pytest.approx(estimate.weights / MIB, abs=0.01)
    assert buffers.get("CPU_REPACK model", 0.0) == pytest.approx(estimate.repacked / MIB, abs=0.01)
    assert buffers["CPU KV"] == pytest.approx(estimate.kv_cache / MIB, abs=0.01)
    assert buffers["CPU output"] == pytest.approx(estimate.output / MIB, abs=0.01)
    # The compute buffer is dominated by one batch of logits; the rest is a few MiB.
    assert buffers["CPU compute"] == pytest.approx(estimate.compute / MIB, rel=0.03)


def test_estimate_matches_llama_cpp_for_the_1_5b() -> None:
    path = cached_model("qwen2.5-coder-1.5b")
    facts = model_facts(path)
    assert (facts.layers, facts.kv_heads, facts.key_size, facts.fim_template) == (28, 2, 128, "qwen2.5-coder")
    assert facts.kv_cache_bytes(8192, "f16") == 2 * 28 * 8192 * 2 * 128 * 2 == 224 * MIB
    buffers = llama_buffers(path, Config(n_ctx=8192))
    estimate = facts.memory(8192, "f16", 3, repack="CPU_REPACK model" in buffers)
    assert buffers["CPU_Mapped model"] == pytest.approx(estimate.weights / MIB, abs=0.01)
    assert buffers.get("CPU_REPACK model", 0.0) == pytest.approx(estimate.repacked / MIB, abs=0.01)
    assert buffers["CPU KV"] == pytest.approx(estimate.kv_cache / MIB, abs=0.01)
    assert buffers["CPU compute"] == pytest.approx(estimate.compute / MIB, rel=0.03)


@pytest.mark.parametrize("name", ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
def test_registry_figures_are_the_files(name: str) -> None:
    """``model info`` sizes a model before it is downloaded from these figures."""
    facts = model_facts(cached_model(name))
    shape = models.REGISTRY[name].shape
    assert shape == ModelShape(
        facts.layers,
        facts.kv_heads,
        facts.key_size,
        facts.value_size,
        facts.vocabulary,
        facts.weight_bytes,
        facts.repackable_bytes,
    )


def test_bad_files_are_named(tmp_path: Path, model_path: Path) -> None:
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_gguf(not_gguf)
    truncated = tmp_path / "truncated.gguf"
    with model_path.open("rb") as source, truncated.open("wb") as out:
        out.write(source.read(4096))
    with pytest.raises(GGUFError, match="truncated"):
        read_gguf(truncated)
    with pytest.raises(GGUFError, match="cannot read"):
        read_gguf(tmp_path / "absent.gguf")


def test_a_model_without_fim_tokens_has_no_template(tmp_path: Path, model_path: Path) -> None:
    """The same file with its FIM tokens renamed: the header reader must say so."""
    copy = tmp_path / "renamed.gguf"
    shutil.copyfile(model_path, copy)
    data = bytearray(copy.read_bytes()[: 16 * MIB])
    for token in (b"<|fim_prefix|>", b"<|fim_suffix|>", b"<|fim_middle|>"):
        # Same length, so the header layout is unchanged.
        data[:] = data.replace(token, token.replace(b"fim", b"xyz"))
    with copy.open("r+b") as handle:
        handle.write(data)
    assert model_facts(copy).fim_template is None
