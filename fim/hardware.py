"""Facts about this machine and its llama.cpp build, for sizing, advice and ``fim-lsp doctor``.

* ``cpu_info``: the CPU's model, its instruction sets (AVX2, AVX-512, AMX, NEON, ...),
  physical and logical cores. Linux reads ``/proc/cpuinfo`` and sysfs; macOS asks
  ``sysctl``; anything else falls back to ``os.cpu_count`` rather than failing.
* ``memory_info``: total and available RAM, and a container's cgroup limit when lower.
* ``find_gpus``: NVIDIA (``nvidia-smi``), AMD (``rocm-smi``), Vulkan devices
  (``vulkaninfo``) and Apple's Metal GPU, each only when its tool is present.
* ``llama_build``: what the installed llama.cpp was built with: version, whether it can
  offload to a GPU, its system-info string parsed, the ggml devices it sees, and whether
  its CPU features are the ones ``scripts/llama-cmake-args.sh`` would choose here.

The text parsers are separate functions, so they are tested on the output formats of
machines this project does not run on (a GPU, a Mac).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: How long one probing command may take.
PROBE_TIMEOUT_S = 5.0


def _run(command: list[str], timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """stdout of ``command``, or None when it is missing, fails or hangs."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


# ----------------------------------------------------------------------------------- CPU

#: Instruction-set names shown to users -> the Linux /proc/cpuinfo flags that make them up.
X86_FEATURES: dict[str, tuple[str, ...]] = {
    "AVX": ("avx",),
    "AVX2": ("avx2",),
    "FMA": ("fma",),
    "F16C": ("f16c",),
    "AVX-VNNI": ("avx_vnni",),
    "AVX-512": ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"),
    "AVX-512 VNNI": ("avx512_vnni",),
    "AVX-512 BF16": ("avx512_bf16",),
    "AMX": ("amx_tile",),
    "AMX-INT8": ("amx_int8",),
    "AMX-BF16": ("amx_bf16",),
}
#: The same for ARM (Linux's "Features" line; "asimd" is NEON).
ARM_FEATURES: dict[str, tuple[str, ...]] = {
    "NEON": ("asimd",),
    "DOTPROD": ("asimddp",),
    "I8MM": ("i8mm",),
    "SVE": ("sve",),
    "SME": ("sme",),
}
#: macOS sysctl spellings (machdep.cpu.features / leaf7_features) -> Linux flag names.
_MAC_X86_FLAGS = {
    "avx1.0": "avx",
    "avx2": "avx2",
    "fma": "fma",
    "f16c": "f16c",
    "bmi2": "bmi2",
    "sse4.2": "sse4_2",
    "avx512f": "avx512f",
    "avx512cd": "avx512cd",
    "avx512vl": "avx512vl",
    "avx512dq": "avx512dq",
    "avx512bw": "avx512bw",
    "avx512vnni": "avx512_vnni",
    "avx512vbmi": "avx512vbmi",
}


@dataclass
class CpuInfo:
    model: str
    architecture: str
    #: Raw flags in Linux's spelling (lower case, e.g. "avx512f", "asimd").
    flags: frozenset[str]
    physical_cores: int
    logical_cores: int
    #: Apple Silicon: the performance cores, which the thread count should not exceed.
    performance_cores: int | None = None

    @property
    def instruction_sets(self) -> dict[str, bool]:
        table = X86_FEATURES if self.is_x86 else ARM_FEATURES if self.is_arm else {}
        return {name: all(flag in self.flags for flag in needed) for name, needed in table.items()}

    @property
    def is_x86(self) -> bool:
        return self.architecture in ("x86_64", "amd64", "i686", "i386")

    @property
    def is_arm(self) -> bool:
        return self.architecture in ("arm64", "aarch64") or self.architecture.startswith("arm")

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "architecture": self.architecture,
            "instruction_sets": self.instruction_sets,
            "physical_cores": self.physical_cores,
            "logical_cores": self.logical_cores,
            "performance_cores": self.performance_cores,
        }


def parse_proc_cpuinfo(text: str) -> tuple[str, frozenset[str], int]:
    """Model name, flags and the number of distinct (package, core) pairs from /proc/cpuinfo."""
    model = ""
    flags: set[str] = set()
    cores: set[tuple[str, str]] = set()
    package = core = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("model name", "Model", "Hardware", "cpu model") and not model:
            model = value
        elif key in ("flags", "Features") and not flags:
            flags = set(value.lower().split())
        elif key == "physical id":
            package = value
        elif key == "core id":
            core = value
            cores.add((package, core))
    return model, frozenset(flags), len(cores)


def _sysfs_physical_cores(cpus: set[int]) -> int:
    pairs = set()
    for cpu in cpus:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        package, core = _read(f"{base}/physical_package_id"), _read(f"{base}/core_id")
        if package is None or core is None:
            return 0
        pairs.add((package.strip(), core.strip()))
    return len(pairs)


def _available_cpus() -> set[int] | None:
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return None


def _sysctl(*names: str) -> dict[str, str]:
    found = {}
    for name in names:
        value = _run(["sysctl", "-n", name])
        if value is not None and value.strip():
            found[name] = value.strip()
    return found


def cpu_info() -> CpuInfo:
    """The CPU as this process sees it (its affinity mask counts, e.g. under taskset)."""
    system = platform.system()
    arch = platform.machine().lower()
    logical = os.cpu_count() or 1
    available = _available_cpus()
    if available:
        logical = len(available)
    if system == "Darwin":
        return _mac_cpu_info(arch, logical)
    model, flags, core_pairs = "", frozenset[str](), 0
    text = _read("/proc/cpuinfo")
    if text:
        model, flags, core_pairs = parse_proc_cpuinfo(text)
    physical = _sysfs_physical_cores(available) if available else 0
    if not physical:
        physical = core_pairs
    if not physical:
        physical = logical
    # Cores listed in /proc/cpuinfo but outside the affinity mask cannot be used.
    physical = max(1, min(physical, logical))
    return CpuInfo(model or platform.processor() or arch, arch, flags, physical, logical)


def _mac_cpu_info(arch: str, logical: int) -> CpuInfo:
    values = _sysctl(
        "machdep.cpu.brand_string",
        "hw.physicalcpu",
        "hw.logicalcpu",
        "hw.perflevel0.physicalcpu",
        "machdep.cpu.features",
        "machdep.cpu.leaf7_features",
        "hw.optional.neon",
        "hw.optional.arm.FEAT_DotProd",
        "hw.optional.arm.FEAT_I8MM",
    )
    flags: set[str] = set()
    if arch in ("arm64", "aarch64"):
        for key, flag in (
            ("hw.optional.neon", "asimd"),
            ("hw.optional.arm.FEAT_DotProd", "asimddp"),
            ("hw.optional.arm.FEAT_I8MM", "i8mm"),
        ):
            if values.get(key) == "1":
                flags.add(flag)
    else:
        words = values.get("machdep.cpu.features", "") + " " + values.get("machdep.cpu.leaf7_features", "")
        for word in words.lower().split():
            flags.add(_MAC_X86_FLAGS.get(word, word))
    physical = int(values.get("hw.physicalcpu", logical))
    performance = values.get("hw.perflevel0.physicalcpu")
    return CpuInfo(
        model=values.get("machdep.cpu.brand_string", platform.processor() or arch),
        architecture=arch,
        flags=frozenset(flags),
        physical_cores=max(1, physical),
        logical_cores=int(values.get("hw.logicalcpu", logical)),
        performance_cores=int(performance) if performance else None,
    )


def physical_cores() -> int:
    """Threads worth giving llama.cpp: physical cores (performance cores on Apple Silicon)."""
    info = cpu_info()
    return info.performance_cores or info.physical_cores


# -------------------------------------------------------------------------------- memory


@dataclass
class MemoryInfo:
    total: int
    available: int
    #: A cgroup (container) limit below the machine's RAM, if any.
    cgroup_limit: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)


def parse_meminfo(text: str) -> tuple[int, int]:
    """(MemTotal, MemAvailable) in bytes from /proc/meminfo."""
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key.strip()] = int(parts[0]) * 1024
    total = values.get("MemTotal", 0)
    available = values.get("MemAvailable", values.get("MemFree", 0) + values.get("Cached", 0))
    return total, available


def parse_vm_stat(text: str) -> int:
    """Bytes free or reclaimable from macOS ``vm_stat`` (free, inactive, speculative pages)."""
    page = 4096
    found = re.search(r"page size of (\d+) bytes", text)
    if found:
        page = int(found.group(1))
    pages = 0
    for name in ("Pages free", "Pages inactive", "Pages speculative", "Pages purgeable"):
        match = re.search(rf"{name}:\s+(\d+)", text)
        if match:
            pages += int(match.group(1))
    return pages * page


def memory_info() -> MemoryInfo:
    if platform.system() == "Darwin":
        total = int(_sysctl("hw.memsize").get("hw.memsize", "0"))
        stat = _run(["vm_stat"])
        return MemoryInfo(total, parse_vm_stat(stat) if stat else 0)
    text = _read("/proc/meminfo")
    if text is None:
        pages = os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
        size = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0
        return MemoryInfo(pages * size, 0)
    total, available = parse_meminfo(text)
    limit_text = _read("/sys/fs/cgroup/memory.max")
    limit: int | None = None
    if limit_text and limit_text.strip().isdigit():
        limit = int(limit_text.strip())
        usage_text = _read("/sys/fs/cgroup/memory.current") or "0"
        usage = int(usage_text.strip()) if usage_text.strip().isdigit() else 0
        if limit < total:
            available = min(available, max(0, limit - usage))
        else:
            limit = None
    return MemoryInfo(total, available, limit)


# ---------------------------------------------------------------------------------- GPUs


@dataclass
class Gpu:
    vendor: str
    name: str
    #: "cuda", "rocm", "vulkan" or "metal": the FIM_LSP_GPU value that builds for it.
    backend: str
    memory_total: int | None = None
    memory_free: int | None = None
    driver: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """``nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version
    --format=csv,noheader,nounits`` (MiB)."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 4 or not parts[0]:
            continue
        total = int(parts[1]) * 2**20 if parts[1].isdigit() else None
        free = int(parts[2]) * 2**20 if parts[2].isdigit() else None
        gpus.append(Gpu("NVIDIA", parts[0], "cuda", total, free, parts[3] or None))
    return gpus


def parse_vulkaninfo_summary(text: str) -> list[Gpu]:
    """``vulkaninfo --summary``: one device per ``deviceName``; software rasterizers skipped."""
    gpus = []
    for block in re.split(r"\n(?=GPU\d+:)", text):
        name = re.search(r"deviceName\s*=\s*(.+)", block)
        kind = re.search(r"deviceType\s*=\s*(\S+)", block)
        if not name:
            continue
        if kind and "CPU" in kind.group(1).upper():
            continue  # llvmpipe and friends: a CPU, not a GPU
        vendor = re.search(r"vendorID\s*=\s*(0x[0-9a-fA-F]+)", block)
        vendors = {"0x10de": "NVIDIA", "0x1002": "AMD", "0x8086": "Intel", "0x106b": "Apple"}
        maker = vendors.get(vendor.group(1).lower(), "unknown") if vendor else "unknown"
        gpus.append(Gpu(maker, name.group(1).strip(), "vulkan"))
    return gpus


def parse_rocm_smi(text: str) -> list[Gpu]:
    """``rocm-smi --showproductname --csv``: device, card series, ..."""
    gpus: list[Gpu] = []
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return gpus
    header = [cell.strip().lower() for cell in lines[0].split(",")]
    column = next((i for i, name in enumerate(header) if "series" in name), None)
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.split(",")]
        if column is not None and column < len(cells) and cells[0].startswith("card"):
            gpus.append(Gpu("AMD", cells[column], "rocm"))
    return gpus


def find_gpus() -> list[Gpu]:
    """GPUs that llama.cpp could use here, found through each vendor's own tool."""
    gpus: list[Gpu] = []
    nvidia = _run(
        [
            "nvidia-smi",
            "--query-gpu=name,memory.total,memory.free,driver_version",
            "--format=csv,noheader,nounits",
        ]
    )
    if nvidia:
        gpus += parse_nvidia_smi(nvidia)
    rocm = _run(["rocm-smi", "--showproductname", "--csv"])
    if rocm:
        gpus += parse_rocm_smi(rocm)
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        brand = _sysctl("machdep.cpu.brand_string").get("machdep.cpu.brand_string", "Apple Silicon")
        memory = int(_sysctl("hw.memsize").get("hw.memsize", "0")) or None
        # Unified memory: the GPU shares the machine's RAM.
        gpus.append(Gpu("Apple", f"{brand} GPU", "metal", memory))
    vulkan = _run(["vulkaninfo", "--summary"])
    if vulkan:
        known = {gpu.name for gpu in gpus}
        gpus += [gpu for gpu in parse_vulkaninfo_summary(vulkan) if gpu.name not in known]
    return gpus


# --------------------------------------------------------------------------- llama.cpp

#: llama.cpp system-info names -> the /proc/cpuinfo flags that the project's CMake flags
#: (scripts/llama-cmake-args.sh) turn each one on with.
SYSTEM_INFO_FLAGS: dict[str, tuple[str, ...]] = {
    "AVX": ("avx",),
    "AVX2": ("avx2",),
    "FMA": ("fma",),
    "F16C": ("f16c",),
    "BMI2": ("bmi2",),
    "AVX_VNNI": ("avx_vnni",),
    "AVX512": ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"),
    "AVX512_VBMI": ("avx512vbmi",),
    "AVX512_VNNI": ("avx512_vnni",),
    "AVX512_BF16": ("avx512_bf16",),
}
#: Features the project's flags always leave out (AMX kernels crash on the VMs it is built on).
SYSTEM_INFO_NEVER = ("AMX_INT8",)
_DEVICE_TYPES = {0: "CPU", 1: "GPU", 2: "IGPU", 3: "ACCEL"}


def parse_system_info(text: str) -> dict[str, dict[str, str]]:
    """``llama_print_system_info()`` -> {backend: {feature: value}}.

    The string looks like ``CPU : SSE3 = 1 | AVX = 1 | ... | CUDA : ARCHS = 890 | ...``:
    a backend name, a colon, then ``name = value`` pairs separated by ``|``.
    """
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for piece in text.split("|"):
        piece = piece.strip()
        if not piece:
            continue
        head, colon, rest = piece.partition(" : ")
        if colon:
            current = sections.setdefault(head.strip(), {})
            piece = rest.strip()
        if current is None:
            current = sections.setdefault("", {})
        name, _, value = piece.partition("=")
        if name.strip():
            current[name.strip()] = value.strip()
    return sections


def expected_cpu_features(flags: frozenset[str]) -> dict[str, bool]:
    """What the project's CMake flags turn on for a CPU with ``flags`` (x86 only)."""
    expected = {name: all(flag in flags for flag in needed) for name, needed in SYSTEM_INFO_FLAGS.items()}
    expected.update({name: False for name in SYSTEM_INFO_NEVER})
    return expected


def compare_cpu_build(cpu: CpuInfo, cpu_section: dict[str, str]) -> list[str]:
    """Differences between the build's CPU features and the project's flags for this CPU.

    Empty when they agree (or off x86, where the project keeps llama.cpp's defaults).
    """
    if not cpu.is_x86:
        return []
    differences = []
    for name, wanted in expected_cpu_features(cpu.flags).items():
        built = cpu_section.get(name, "0") == "1"
        if built != wanted:
            state, project = ("on" if built else "off"), ("on" if wanted else "off")
            differences.append(f"{name} is {state}, the project's flags turn it {project}")
    return differences


@dataclass
class LlamaDevice:
    name: str
    description: str
    kind: str
    memory_free: int
    memory_total: int


@dataclass
class LlamaBuild:
    llama_cpp_python: str
    gpu_offload: bool
    system_info: str
    backends: dict[str, dict[str, str]]
    devices: list[LlamaDevice] = field(default_factory=list)
    #: Where the build's CPU features differ from the project's flags for this CPU.
    cpu_flag_differences: list[str] = field(default_factory=list)

    @property
    def gpu_devices(self) -> list[LlamaDevice]:
        return [device for device in self.devices if device.kind in ("GPU", "IGPU")]

    def as_dict(self) -> dict[str, Any]:
        return {
            "llama_cpp_python": self.llama_cpp_python,
            "gpu_offload": self.gpu_offload,
            "system_info": self.system_info,
            "backends": self.backends,
            "devices": [asdict(device) for device in self.devices],
            "built_with_project_cpu_flags": not self.cpu_flag_differences,
            "cpu_flag_differences": self.cpu_flag_differences,
        }


def _ggml_devices(llama_module: Any) -> list[LlamaDevice]:
    """The devices ggml registered, read through libggml next to llama-cpp-python's libllama."""
    lib_dir = Path(llama_module.__file__).parent / "lib"
    candidates = sorted(lib_dir.glob("libggml.*")) + sorted(lib_dir.glob("ggml.dll"))
    for candidate in candidates:
        try:
            ggml = ctypes.CDLL(str(candidate))
            count_devices = ggml.ggml_backend_dev_count
        except (OSError, AttributeError):
            continue
        count_devices.restype = ctypes.c_size_t
        ggml.ggml_backend_dev_get.restype = ctypes.c_void_p
        ggml.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
        for text_function in (ggml.ggml_backend_dev_name, ggml.ggml_backend_dev_description):
            text_function.restype = ctypes.c_char_p
            text_function.argtypes = [ctypes.c_void_p]
        ggml.ggml_backend_dev_type.restype = ctypes.c_int
        ggml.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
        size_pointer = ctypes.POINTER(ctypes.c_size_t)
        ggml.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, size_pointer, size_pointer]
        devices = []
        for index in range(count_devices()):
            device = ggml.ggml_backend_dev_get(index)
            free, total = ctypes.c_size_t(), ctypes.c_size_t()
            ggml.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
            devices.append(
                LlamaDevice(
                    name=(ggml.ggml_backend_dev_name(device) or b"").decode(errors="replace"),
                    description=(ggml.ggml_backend_dev_description(device) or b"").decode(errors="replace"),
                    kind=_DEVICE_TYPES.get(ggml.ggml_backend_dev_type(device), "unknown"),
                    memory_free=free.value,
                    memory_total=total.value,
                )
            )
        return devices
    return []


def llama_build(cpu: CpuInfo | None = None) -> LlamaBuild:
    """What the installed llama-cpp-python's llama.cpp can do on this machine."""
    import llama_cpp as llama  # loads the shared library: only callers that ask pay

    llama.llama_backend_init()
    info = llama.llama_print_system_info().decode("utf-8", errors="replace").strip()
    backends = parse_system_info(info)
    devices: list[LlamaDevice] = []
    with contextlib.suppress(OSError, AttributeError, ValueError):
        devices = _ggml_devices(llama)
    cpu = cpu or cpu_info()
    return LlamaBuild(
        llama_cpp_python=str(getattr(llama, "__version__", "unknown")),
        gpu_offload=bool(llama.llama_supports_gpu_offload()),
        system_info=info,
        backends=backends,
        devices=devices,
        cpu_flag_differences=compare_cpu_build(cpu, backends.get("CPU", {})),
    )
