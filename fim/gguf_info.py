"""What a GGUF file says about its model, and what the model needs in memory.

Read straight from the file's header (no llama.cpp, no model load), so ``fim-lsp model
info`` and ``fim-lsp doctor`` can describe any cached or local model in a fraction of a
second:

* ``read_gguf``: the metadata key/values and the tensor table of a GGUF v2/v3 file;
* ``ModelFacts``: the architecture figures the memory arithmetic needs (layers, KV heads,
  head sizes, parameters, bytes of weights, vocabulary, trained context, FIM template);
* ``MemoryEstimate``: weights (+ the copies llama.cpp repacks) + KV cache + llama.cpp's
  compute and output buffers for a context size, a KV element type and a number of
  sequences.

The arithmetic, checked against what llama.cpp itself reports when it loads the model
(``tests/fim/test_gguf_info.py``):

* weights ≈ parameters × bits per weight / 8 (exactly: the sum of the tensors' bytes);
* KV cache = layers × n_ctx × kv_heads × (key size + value size) × bytes per element,
  which is the usual 2 × layers × n_ctx × kv_heads × head_dim × bytes when keys and values
  have one head size. The cache is unified: the document streams share its ``n_ctx``
  cells with the request, so more streams do not make it bigger;
* compute buffer ≈ vocabulary × batch × 4 bytes (the logits of a full batch dominate it)
  and an output buffer of vocabulary × sequences × 4 bytes.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fim.templates import TemplateError, detect

GGUF_MAGIC = b"GGUF"

#: GGUF metadata value types.
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL, _STRING, _ARRAY = range(10)
_UINT64, _INT64, _FLOAT64 = 10, 11, 12
_SCALARS: dict[int, str] = {
    _UINT8: "<B",
    _INT8: "<b",
    _UINT16: "<H",
    _INT16: "<h",
    _UINT32: "<I",
    _INT32: "<i",
    _FLOAT32: "<f",
    _BOOL: "<?",
    _UINT64: "<Q",
    _INT64: "<q",
    _FLOAT64: "<d",
}

#: ggml tensor types: name, elements per block, bytes per block.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}

#: Bytes per KV-cache element for each ``kvCacheType`` (q8_0: 34 bytes per 32 values,
#: q4_0: 18 bytes per 32 values).
KV_BYTES_PER_ELEMENT: dict[str, float] = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32, "f32": 4.0}

#: Weight types llama.cpp 0.3.36's CPU backend repacks (its ``CPU_REPACK`` buffer).
REPACKED_TYPES = frozenset({"Q4_0", "Q4_K", "IQ4_NL"})

#: llama.cpp's batch size in the engine (``n_ubatch``): the compute buffer holds the logits
#: of this many tokens.
DEFAULT_UBATCH = 512

#: GGUF ``general.file_type`` values (llama.cpp's ``llama_ftype``) for the usual files.
FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    30: "IQ4_XS",
    32: "BF16",
}


class GGUFError(Exception):
    """The file is not a GGUF file this reader understands; the message says why."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int

    @property
    def elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    def nbytes(self) -> int | None:
        """Bytes of the tensor's data; None for a type this reader does not know."""
        known = GGML_TYPES.get(self.ggml_type)
        if known is None:
            return None
        _name, block, block_bytes = known
        return self.elements // block * block_bytes


@dataclass
class GGUFFile:
    """A GGUF file's header: metadata and tensor table (no tensor data is read)."""

    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    #: Where tensor data starts in the file.
    data_offset: int
    file_size: int

    def tensor_bytes(self) -> int:
        """Bytes of all tensor data; from the table, or the file layout for unknown types."""
        sizes = [tensor.nbytes() for tensor in self.tensors]
        if all(size is not None for size in sizes):
            return sum(size for size in sizes if size is not None)
        return self.file_size - self.data_offset


class _Reader:
    """Sequential little-endian reads over a memory-mapped file."""

    def __init__(self, buffer: Any, size: int) -> None:
        self.buffer = buffer
        self.size = size
        self.position = 0

    def unpack(self, fmt: str) -> Any:
        width = struct.calcsize(fmt)
        if self.position + width > self.size:
            raise GGUFError(f"truncated header at byte {self.position}")
        (value,) = struct.unpack_from(fmt, self.buffer, self.position)
        self.position += width
        return value

    def string(self) -> str:
        length = self.unpack("<Q")
        end = self.position + length
        if end > self.size:
            raise GGUFError(f"truncated string at byte {self.position}")
        raw = bytes(self.buffer[self.position : end])
        self.position = end
        return raw.decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind = self.unpack("<I")
            count = self.unpack("<Q")
            if item_kind in _SCALARS:
                fmt = _SCALARS[item_kind]
                width = struct.calcsize(fmt)
                end = self.position + width * count
                if end > self.size:
                    raise GGUFError(f"truncated array at byte {self.position}")
                values = list(struct.unpack_from(f"<{count}{fmt[1]}", self.buffer, self.position))
                self.position = end
                return values
            return [self.value(item_kind) for _ in range(count)]
        raise GGUFError(f"unknown metadata value type {kind} at byte {self.position}")


def read_gguf(path: Path) -> GGUFFile:
    """Parse the header of the GGUF file at ``path``; raises GGUFError naming the problem."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as error:
        raise GGUFError(f"{path}: cannot read it ({error.strerror or error})") from error
    with handle:
        size = path.stat().st_size
        if size < 24:
            raise GGUFError(f"{path}: not a GGUF file (only {size} bytes)")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            reader = _Reader(mapped, size)
            magic = bytes(mapped[:4])
            if magic != GGUF_MAGIC:
                raise GGUFError(f"{path}: not a GGUF file (magic {magic!r})")
            reader.position = 4
            version = reader.unpack("<I")
            if version not in (2, 3):
                raise GGUFError(f"{path}: GGUF version {version} is not supported (2 and 3 are)")
            tensor_count = reader.unpack("<Q")
            kv_count = reader.unpack("<Q")
            metadata: dict[str, Any] = {}
            for _ in range(kv_count):
                key = reader.string()
                metadata[key] = reader.value(reader.unpack("<I"))
            tensors = []
            for _ in range(tensor_count):
                name = reader.string()
                dims = reader.unpack("<I")
                shape = tuple(reader.unpack("<Q") for _ in range(dims))
                tensors.append(TensorInfo(name, shape, reader.unpack("<I"), reader.unpack("<Q")))
            alignment = int(metadata.get("general.alignment", 32))
            data_offset = -(-reader.position // alignment) * alignment
    return GGUFFile(path, version, metadata, tensors, data_offset, size)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a model needs resident, for one context size, KV type and sequence count."""

    weights: int
    #: Weights llama.cpp copies into CPU-friendly layouts at load ("repack": Q4_0, Q4_K and
    #: IQ4_NL matrices on AVX2 / NEON CPUs). Their file pages are read once and then idle.
    repacked: int
    kv_cache: int
    compute: int
    output: int
    n_ctx: int
    kv_cache_type: str
    sequences: int

    @property
    def total(self) -> int:
        return self.weights + self.repacked + self.kv_cache + self.compute + self.output

    def as_dict(self) -> dict[str, int | str]:
        return {
            "weights_bytes": self.weights,
            "repacked_bytes": self.repacked,
            "kv_cache_bytes": self.kv_cache,
            "compute_bytes": self.compute,
            "output_bytes": self.output,
            "total_bytes": self.total,
            "n_ctx": self.n_ctx,
            "kv_cache_type": self.kv_cache_type,
            "sequences": self.sequences,
        }


@dataclass(frozen=True)
class ModelShape:
    """The figures the memory arithmetic needs; read from a GGUF, or registry data for a
    model that is not downloaded yet."""

    layers: int
    kv_heads: int
    key_size: int
    value_size: int
    vocabulary: int
    #: Bytes of all weight tensors (the file size less its header, to within a few MB).
    weight_bytes: int
    #: Bytes of the tensors llama.cpp repacks on AVX2 / NEON CPUs (Q4_0, Q4_K, IQ4_NL
    #: matrices other than the token embedding).
    repackable_bytes: int = 0

    @property
    def head_dim(self) -> int:
        return self.key_size

    def kv_cache_bytes(self, n_ctx: int, kv_cache_type: str) -> int:
        """KV cache = layers × n_ctx × kv_heads × (key + value size) × bytes per element."""
        try:
            per_element = KV_BYTES_PER_ELEMENT[kv_cache_type]
        except KeyError:
            raise ValueError(
                f"kv cache type {kv_cache_type!r}: expected one of {sorted(KV_BYTES_PER_ELEMENT)}"
            ) from None
        return round(self.layers * n_ctx * self.kv_heads * (self.key_size + self.value_size) * per_element)

    def memory(
        self,
        n_ctx: int,
        kv_cache_type: str,
        document_streams: int,
        *,
        repack: bool = True,
        ubatch: int = DEFAULT_UBATCH,
    ) -> MemoryEstimate:
        """What llama.cpp allocates for this model with the daemon's context settings.

        ``repack``: whether this llama.cpp build repacks weights on this CPU (its system
        info says ``REPACK = 1`` and the CPU has AVX2 or NEON).
        """
        sequences = 1 + max(0, document_streams)
        return MemoryEstimate(
            weights=self.weight_bytes,
            repacked=self.repackable_bytes if repack else 0,
            kv_cache=self.kv_cache_bytes(n_ctx, kv_cache_type),
            compute=self.vocabulary * ubatch * 4,
            output=self.vocabulary * sequences * 4,
            n_ctx=n_ctx,
            kv_cache_type=kv_cache_type,
            sequences=sequences,
        )


@dataclass(frozen=True, kw_only=True)
class ModelFacts(ModelShape):
    """Everything ``model info`` and ``doctor`` show about one GGUF model."""

    path: Path
    architecture: str
    name: str
    embedding: int
    heads: int
    context_length: int
    parameters: int
    file_size: int
    file_type: str
    fim_template: str | None
    tensor_types: dict[str, int] = field(default_factory=dict)

    @property
    def bits_per_weight(self) -> float:
        return self.weight_bytes * 8 / self.parameters if self.parameters else 0.0

    def weights_bytes(self) -> int:
        """Weights ≈ parameters × bits/8 (exact here: bits/8 comes from the tensors' bytes)."""
        return round(self.parameters * self.bits_per_weight / 8)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "architecture": self.architecture,
            "name": self.name,
            "layers": self.layers,
            "embedding": self.embedding,
            "heads": self.heads,
            "kv_heads": self.kv_heads,
            "key_size": self.key_size,
            "value_size": self.value_size,
            "context_length": self.context_length,
            "vocabulary": self.vocabulary,
            "parameters": self.parameters,
            "weight_bytes": self.weight_bytes,
            "repackable_bytes": self.repackable_bytes,
            "bits_per_weight": round(self.bits_per_weight, 3),
            "file_size": self.file_size,
            "file_type": self.file_type,
            "fim_template": self.fim_template,
            "tensor_types": dict(self.tensor_types),
        }


def _fim_template(metadata: dict[str, Any]) -> str | None:
    tokens = metadata.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list):
        return None
    index = {text: i for i, text in enumerate(tokens) if isinstance(text, str)}
    ids = tuple(
        int(metadata.get(f"tokenizer.ggml.fim_{part}_token_id", -1)) for part in ("pre", "suf", "mid")
    )
    fim_ids: tuple[int, int, int] = (ids[0], ids[1], ids[2])
    try:
        resolved = detect(index.get, vocab_fim_ids=fim_ids, id_to_text=lambda i: str(tokens[i]))
    except TemplateError:
        return None
    return resolved.template.name


def model_facts(path: Path) -> ModelFacts:
    """Read ``path``'s header and derive the figures; raises GGUFError when one is missing."""
    gguf = read_gguf(path)
    meta = gguf.metadata
    arch = str(meta.get("general.architecture", ""))
    if not arch:
        raise GGUFError(f"{path}: no general.architecture in the metadata")

    def number(key: str, default: int | None = None) -> int:
        value = meta.get(f"{arch}.{key}", default)
        if isinstance(value, list):  # per-layer values (a few architectures): the largest
            value = max(value) if value else default
        if value is None:
            raise GGUFError(f"{path}: no {arch}.{key} in the metadata")
        return int(value)

    layers = number("block_count")
    embedding = number("embedding_length")
    heads = number("attention.head_count")
    kv_heads = number("attention.head_count_kv", heads)
    key_size = number("attention.key_length", embedding // heads)
    value_size = number("attention.value_length", key_size)
    tokens = meta.get("tokenizer.ggml.tokens")
    vocabulary = len(tokens) if isinstance(tokens, list) else number("vocab_size", 0)
    type_counts: dict[str, int] = {}
    repackable = 0
    for tensor in gguf.tensors:
        type_name = GGML_TYPES.get(tensor.ggml_type, (f"type{tensor.ggml_type}", 1, 1))[0]
        type_counts[type_name] = type_counts.get(type_name, 0) + 1
        if type_name in REPACKED_TYPES and tensor.name != "token_embd.weight" and len(tensor.shape) == 2:
            repackable += tensor.nbytes() or 0
    file_type_id = meta.get("general.file_type")
    file_type = (
        FILE_TYPES.get(int(file_type_id), f"ftype {file_type_id}") if file_type_id is not None else "unknown"
    )
    return ModelFacts(
        path=gguf.path,
        architecture=arch,
        name=str(meta.get("general.name", gguf.path.stem)),
        layers=layers,
        embedding=embedding,
        heads=heads,
        kv_heads=kv_heads,
        key_size=key_size,
        value_size=value_size,
        context_length=number("context_length", 0),
        vocabulary=vocabulary,
        parameters=sum(tensor.elements for tensor in gguf.tensors),
        weight_bytes=gguf.tensor_bytes(),
        repackable_bytes=repackable,
        file_size=gguf.file_size,
        file_type=file_type,
        fim_template=_fim_template(meta),
        tensor_types=type_counts,
    )


def human_bytes(count: float) -> str:
    """1,234,567 -> '1.2 MB' (decimal units, as file managers and registries show sizes)."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover - the loop always returns


def mib(count: float) -> str:
    """Bytes as MiB, the unit llama.cpp's own log uses."""
    return f"{count / 2**20:.1f} MiB"
