"""``fim-lsp doctor``: the real report on this machine, its arithmetic, and its advice.

The full run loads the real model and measures it, so its figures are checked for
consistency (the keystroke estimate follows from the measured speeds, the memory from
the GGUF header), never against fixed speeds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli.doctor_advice import _kv_cache, _n_ctx, all_layers_value
from cli.doctor_measure import expected_latency_ms, parse_load_log
from fim import hardware
from fim.config import Config, parse
from fim.gguf_info import model_facts

FIM_LSP = [sys.executable, "-m", "cli"]


def doctor(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "FIM_LSP_OPTIONS"}
    environment.update(env)
    return subprocess.run(
        [*FIM_LSP, "doctor", *args], capture_output=True, text=True, env=environment, timeout=600
    )


@pytest.fixture(scope="module")
def report(model_path: Path) -> dict[str, Any]:
    done = doctor("--json")
    assert done.returncode in (0, 1), done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    assert data["ok"] == (done.returncode == 0)
    return data


def findings(report: dict[str, Any], section: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = report["sections"][section]["findings"]
    return found


def test_every_section_is_there(report: dict[str, Any]) -> None:
    assert list(report["sections"]) == [
        "config",
        "machine",
        "llama",
        "models",
        "engine",
        "speed",
        "advice",
        "editors",
        "remote",
    ]
    for key, section in report["sections"].items():
        for finding in section["findings"]:
            assert finding["status"] in ("ok", "info", "warn", "fail"), key
            if finding["status"] in ("warn", "fail"):
                assert finding["fix"], f"{key}: '{finding['text']}' says nothing about what to do"


def test_machine_and_build_are_this_machine(report: dict[str, Any]) -> None:
    machine = report["sections"]["machine"]["data"]
    cpu = hardware.cpu_info()
    assert machine["cpu"]["physical_cores"] == cpu.physical_cores
    assert machine["cpu"]["instruction_sets"] == cpu.instruction_sets
    assert machine["gpus"] == [gpu.as_dict() for gpu in hardware.find_gpus()]
    llama = report["sections"]["llama"]["data"]
    assert llama["llama_cpp_python"] == "0.3.36"
    assert llama["built_with_project_cpu_flags"] is True
    assert llama["gpu_offload"] is False
    assert any(f["text"] == "CPU-only build (no GPU here)" for f in findings(report, "llama"))


def test_models_are_verified_and_sized(report: dict[str, Any], model_path: Path) -> None:
    rows = {row["name"]: row for row in report["sections"]["models"]["data"]["registry"]}
    default = rows["qwen2.5-coder-0.5b"]
    assert default["cached"] and default["verified"]
    configured = report["sections"]["models"]["data"]["configured"]
    facts = model_facts(model_path)
    memory = configured["memory"]
    # The defaults: nCtx 8192, f16, 3 streams.
    assert memory["kv_cache_bytes"] == 2 * facts.layers * 8192 * facts.kv_heads * facts.head_dim * 2
    assert memory["weights_bytes"] == facts.weight_bytes
    assert (memory["n_ctx"], memory["kv_cache_type"], memory["sequences"]) == (8192, "f16", 4)
    text = next(f["text"] for f in findings(report, "models") if f["text"].startswith("configured model"))
    assert "KV cache" in text and "96.0 MiB" in text


def test_speed_is_measured_and_the_estimates_follow(report: dict[str, Any]) -> None:
    speed = report["sections"]["speed"]["data"]
    measured = speed["measurement"]
    assert measured["prefill_tok_s"] > 0 and measured["decode_tok_s"] > 0
    assert measured["threads"] == hardware.physical_cores()
    # llama.cpp's own figure for the KV cache is the arithmetic's.
    assert measured["load"]["buffers_mib"]["CPU KV"] == pytest.approx(96.0)
    expected = speed["expected"]
    assert expected["keystroke_ms"] == pytest.approx(
        expected_latency_ms(
            expected["tokens_at_cursor"], 10, measured["prefill_tok_s"], measured["decode_tok_s"]
        )
    )
    assert expected["cold_open_ms"] > expected["keystroke_ms"]


def test_advice_names_each_setting(report: dict[str, Any]) -> None:
    texts = [f["text"] for f in findings(report, "advice")]
    for topic in ("model:", "threads:", "nCtx", "kvCacheType", "GPU:"):
        assert any(text.startswith(topic) for text in texts), topic
    model = next(text for text in texts if text.startswith("model:"))
    for name in ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "qwen2.5-coder-7b"):
        assert name in model


def test_editors_and_remote(report: dict[str, Any]) -> None:
    editors = report["sections"]["editors"]["data"]
    assert {"neovim", "emacs", "code", "code-server"} <= set(editors)
    assert report["sections"]["remote"]["data"] == {"supported": False, "configured": []}


def test_text_report_without_measurement(model_path: Path) -> None:
    done = doctor("--no-measure")
    assert done.returncode in (0, 1), done.stderr
    text = done.stdout
    for title in ("Machine", "llama.cpp build", "Models", "Speed", "Advice", "Editors"):
        assert f"\n{title}" in text
    assert "skipped (--no-measure)" in text
    assert "model: no measurement" in text
    assert text.rstrip().splitlines()[-1].endswith(("failed", "(see → for what to do)"))


def test_bad_options_and_a_missing_model_fail_with_a_fix(tmp_path: Path) -> None:
    bad = doctor("--no-measure", "--json", "--options", '{"nCtx": 3}')
    data = json.loads(bad.stdout)
    assert bad.returncode == 1
    problem = findings(data, "config")[0]
    assert problem["status"] == "fail" and "nCtx" in problem["text"] and problem["fix"]
    missing = doctor("--no-measure", "--json", "--model", str(tmp_path / "absent.gguf"))
    data = json.loads(missing.stdout)
    assert missing.returncode == 1
    failed = [f for f in findings(data, "models") if f["status"] == "fail"]
    assert failed and "absent.gguf" in failed[0]["text"] and failed[0]["fix"]
    not_pulled = doctor("--no-measure", "--json", "--model", "qwen2.5-coder-7b", FIM_LSP_CACHE=str(tmp_path))
    failed = [f for f in findings(json.loads(not_pulled.stdout), "models") if f["status"] == "fail"]
    assert failed[0]["fix"] == "fim-lsp model pull qwen2.5-coder-7b"


def test_engine_section_names_its_folder_and_a_failed_load(engine_folder: Path) -> None:
    from fim.shared.wire import LOAD_FAILED

    log = engine_folder / "engine-0123456789abcdef.sock.log"
    log.write_text(f"starting\n{LOAD_FAILED}/models/x.gguf: model file not found\n")
    data = json.loads(doctor("--no-measure", "--json").stdout)
    engine = data["sections"]["engine"]
    assert engine["data"]["shared_engine"] is True
    assert engine["data"]["folder"] == str(engine_folder) and engine["data"]["running"] == []
    warned = [f for f in engine["findings"] if f["status"] == "warn"]
    assert len(warned) == 1 and "/models/x.gguf: model file not found" in warned[0]["text"]
    assert str(log) in warned[0]["fix"]
    off = json.loads(doctor("--no-measure", "--json", "--options", '{"sharedEngine": false}').stdout)
    warned = [f for f in findings(off, "engine") if f["status"] == "warn"]
    assert len(warned) == 1 and "sharedEngine is off" in warned[0]["text"] and warned[0]["fix"]
    # A folder others may enter is refused, and left as it was (it may be /tmp).
    shared = engine_folder / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    done = json.loads(doctor("--no-measure", "--json", FIM_LSP_RUNTIME_DIR=str(shared)).stdout)
    failed = [f for f in findings(done, "engine") if f["status"] == "fail"]
    assert len(failed) == 1 and "other users may enter it" in failed[0]["text"] and failed[0]["fix"]
    assert shared.stat().st_mode & 0o777 == 0o755


def test_load_log_parser() -> None:
    lines = [
        "load_tensors: offloaded 25/25 layers to GPU",
        "load_tensors:        CUDA0 model buffer size =   462.96 MiB",
        "llama_kv_cache:      CUDA0 KV buffer size =    96.00 MiB",
        "sched_reserve:      CUDA0 compute buffer size =   300.25 MiB",
    ]
    buffers, offloaded = parse_load_log(lines)
    assert offloaded == (25, 25)
    assert buffers == {"CUDA0 model": 462.96, "CUDA0 KV": 96.0, "CUDA0 compute": 300.25}


def test_latency_arithmetic() -> None:
    # 3 tokens at 200 tok/s take less than one decode step (40 ms at 25 tok/s): one step.
    assert expected_latency_ms(3, 10, 200.0, 25.0) == pytest.approx(40 + 400)
    assert expected_latency_ms(1536, 10, 200.0, 25.0) == pytest.approx(7680 + 400)
    assert expected_latency_ms(3, 10, 0.0, 25.0) == float("inf")


def test_advice_for_context_and_gpu_layers() -> None:
    status, text, fix = _n_ctx(Config(n_ctx=4096, document_streams=3))
    assert (
        status == "warn" and "4 × 1728 = 6912" in text and fix == '"nCtx": 7168, or fewer "documentStreams"'
    )
    assert _n_ctx(Config())[0] == "ok"
    # The advised "all layers" value is one the options accept.
    value = all_layers_value(24)
    assert value in (-1, 25)
    assert parse({"gpuLayers": value})[1] == []


def test_advice_on_the_kv_cache_type(model_path: Path) -> None:
    facts = model_facts(model_path)
    plenty = hardware.MemoryInfo(total=64 * 2**30, available=32 * 2**30)
    assert _kv_cache(Config(), plenty, facts, True)[0] == "ok"
    status, _text, fix = _kv_cache(Config(kv_cache_type="q4_0"), plenty, facts, True)
    assert status == "warn" and fix and '"kvCacheType": "q8_0"' in fix
    # 886 MiB needed with f16 and only 600 MiB free: q8_0 is advised, with its size.
    short = hardware.MemoryInfo(total=2**30, available=600 * 2**20)
    status, _text, fix = _kv_cache(Config(), short, facts, True)
    assert status == "warn" and fix and '"kvCacheType": "q8_0" (KV 96.0 MiB -> 51.0 MiB)' in fix
