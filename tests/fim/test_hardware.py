"""Machine facts and the llama.cpp build: this machine for real, other machines by their tools' output.

This machine has no GPU and is not a Mac, so the parsers for nvidia-smi, rocm-smi,
vulkaninfo and sysctl are checked on those tools' documented output formats.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fim import hardware

CPUINFO = Path("/proc/cpuinfo")


@pytest.mark.skipif(not CPUINFO.is_file(), reason="reads /proc/cpuinfo to cross-check")
def test_cpu_on_this_machine() -> None:
    info = hardware.cpu_info()
    text = CPUINFO.read_text()
    flags = set(next(line for line in text.splitlines() if line.startswith(("flags", "Features"))).split())
    pairs = set()
    physical = core = ""
    for line in text.splitlines():
        if line.startswith("physical id"):
            physical = line.split(":")[1].strip()
        elif line.startswith("core id"):
            core = line.split(":")[1].strip()
            pairs.add((physical, core))
    available = len(os.sched_getaffinity(0))
    assert info.physical_cores == max(1, min(len(pairs) or available, available))
    assert info.logical_cores == available
    assert info.model and info.model in text
    if info.is_x86:
        assert info.instruction_sets["AVX2"] == ("avx2" in flags)
        assert info.instruction_sets["AVX-512"] == ({"avx512f", "avx512bw", "avx512vl"} <= flags)
        assert info.instruction_sets["AMX"] == ("amx_tile" in flags)
    assert hardware.physical_cores() == info.physical_cores


def test_arm_cpuinfo_gives_neon() -> None:
    text = (
        "processor\t: 0\nBogoMIPS\t: 48.00\n"
        "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimddp i8mm\n"
        "CPU implementer\t: 0x41\n"
    )
    model, flags, cores = hardware.parse_proc_cpuinfo(text)
    info = hardware.CpuInfo(model or "arm", "aarch64", flags, 4, 4)
    assert (
        info.instruction_sets["NEON"] and info.instruction_sets["DOTPROD"] and info.instruction_sets["I8MM"]
    )
    assert not info.instruction_sets["SVE"]
    assert cores == 0  # no "core id" lines: the caller falls back to sysfs or the CPU count


def test_mac_sysctl(monkeypatch: pytest.MonkeyPatch) -> None:
    """An Apple Silicon Mac: no /proc, the thread count comes from the performance cores."""
    answers = {
        "machdep.cpu.brand_string": "Apple M2 Pro",
        "hw.physicalcpu": "12",
        "hw.logicalcpu": "12",
        "hw.perflevel0.physicalcpu": "8",
        "hw.optional.neon": "1",
        "hw.optional.arm.FEAT_DotProd": "1",
        "hw.optional.arm.FEAT_I8MM": "0",
    }
    monkeypatch.setattr(hardware, "_sysctl", lambda *names: {n: answers[n] for n in names if n in answers})
    info = hardware._mac_cpu_info("arm64", 12)
    assert (info.model, info.physical_cores, info.performance_cores) == ("Apple M2 Pro", 12, 8)
    assert info.instruction_sets["NEON"] and not info.instruction_sets["I8MM"]
    intel = {
        "machdep.cpu.brand_string": "Intel(R) Core(TM) i9-9880H",
        "hw.physicalcpu": "8",
        "machdep.cpu.features": "FPU SSE4.2 AVX1.0 F16C FMA",
        "machdep.cpu.leaf7_features": "BMI2 AVX2",
    }
    monkeypatch.setattr(hardware, "_sysctl", lambda *names: {n: intel[n] for n in names if n in intel})
    info = hardware._mac_cpu_info("x86_64", 16)
    assert (
        info.instruction_sets["AVX2"]
        and info.instruction_sets["FMA"]
        and not info.instruction_sets["AVX-512"]
    )
    assert info.physical_cores == 8 and info.performance_cores is None


def test_memory_on_this_machine() -> None:
    info = hardware.memory_info()
    if Path("/proc/meminfo").is_file():
        total, available = hardware.parse_meminfo(Path("/proc/meminfo").read_text())
        assert info.total == total
        assert 0 < info.available <= info.total
        assert abs(info.available - available) < info.total // 10 or info.cgroup_limit


def test_meminfo_and_vm_stat_parsers() -> None:
    assert hardware.parse_meminfo("MemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable: 600 kB\n") == (
        1000 * 1024,
        600 * 1024,
    )
    vm_stat = (
        "Mach Virtual Memory Statistics: (page size of 16384 bytes)\n"
        "Pages free:                               10000.\nPages active:       999.\n"
        "Pages inactive:                            2000.\nPages speculative:  500.\n"
    )
    assert hardware.parse_vm_stat(vm_stat) == (10000 + 2000 + 500) * 16384


def test_gpu_tool_parsers() -> None:
    nvidia = hardware.parse_nvidia_smi("NVIDIA GeForce RTX 4090, 24564, 23000, 550.54.14\n")
    assert [(g.vendor, g.name, g.backend, g.memory_total, g.driver) for g in nvidia] == [
        ("NVIDIA", "NVIDIA GeForce RTX 4090", "cuda", 24564 * 2**20, "550.54.14")
    ]
    vulkan = hardware.parse_vulkaninfo_summary(
        "Devices:\n========\n"
        "GPU0:\n\tapiVersion = 1.3.255\n\tvendorID = 0x1002\n"
        "\tdeviceType = PHYSICAL_DEVICE_TYPE_DISCRETE_GPU\n"
        "\tdeviceName = AMD Radeon RX 7900 XTX (RADV NAVI31)\n"
        "GPU1:\n\tvendorID = 0x10005\n\tdeviceType = PHYSICAL_DEVICE_TYPE_CPU\n"
        "\tdeviceName = llvmpipe (LLVM 15.0.6, 256 bits)\n"
    )
    assert [(g.vendor, g.name, g.backend) for g in vulkan] == [
        ("AMD", "AMD Radeon RX 7900 XTX (RADV NAVI31)", "vulkan")
    ]
    rocm = hardware.parse_rocm_smi("device,Card series,Card model\ncard0,Radeon RX 7900 XTX,0x744c\n")
    assert [(g.name, g.backend) for g in rocm] == [("Radeon RX 7900 XTX", "rocm")]


def test_no_gpu_here() -> None:
    """This machine has none of the GPU tools: nothing may be invented."""
    tools = ("nvidia-smi", "rocm-smi", "vulkaninfo")
    if any(hardware.shutil.which(tool) for tool in tools) or os.uname().sysname == "Darwin":
        pytest.skip("this machine has a GPU tool")
    assert hardware.find_gpus() == []


def test_system_info_parser() -> None:
    text = "CPU : SSE3 = 1 | AVX2 = 1 | AMX_INT8 = 0 | REPACK = 1 | CUDA : ARCHS = 890 | USE_GRAPHS = 1 |"
    sections = hardware.parse_system_info(text)
    assert sections["CPU"] == {"SSE3": "1", "AVX2": "1", "AMX_INT8": "0", "REPACK": "1"}
    assert sections["CUDA"] == {"ARCHS": "890", "USE_GRAPHS": "1"}


def test_llama_build_here() -> None:
    """The venv's llama-cpp-python: CPU only, built with the project's flags (make venv does that)."""
    cpu = hardware.cpu_info()
    build = hardware.llama_build(cpu)
    assert build.llama_cpp_python == "0.3.36"
    assert build.gpu_offload is False
    assert "CPU" in build.backends and build.backends["CPU"].get("AVX2") in ("0", "1")
    assert [device.kind for device in build.devices] == ["CPU"]
    assert build.cpu_flag_differences == []
    assert build.as_dict()["built_with_project_cpu_flags"] is True
    if cpu.is_x86 and cpu.instruction_sets["AVX2"]:
        # A -march=native build on an AMX machine would say AMX_INT8 = 1: that is reported.
        changed = {**build.backends["CPU"], "AMX_INT8": "1", "AVX2": "0"}
        differences = hardware.compare_cpu_build(cpu, changed)
        assert any(d.startswith("AMX_INT8 is on") for d in differences)
        assert any(d.startswith("AVX2 is off") for d in differences)
