"""The doctor's 5-second measurement: the configured model's real speed on this machine.

It loads the model as the daemon does (same options, through ``fim``'s public API) and
times, on real code (fim's own source, present in every install):

1. a cold prefill of about 512 tokens (prefill tok/s; 128 on a machine too slow for 512 in 3 s);
2. a keystroke: one character typed at the end of that text, then 10 generated tokens,
   reusing the document's stream as the daemon does (the keystroke's real latency);
3. a free-running decode of up to 32 tokens (decode tok/s; fewer if they would take over 1.5 s).

While loading it listens to llama.cpp's own log for the buffers it allocated and for how
many layers it offloaded to a GPU, so the report shows the arithmetic beside llama.cpp's
own figures and can confirm that an offload really happened.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fim.backend import CompletionRequest
from fim.config import Config, engine_config

#: Tokens generated after a keystroke in the "typical keystroke" figure.
KEYSTROKE_GENERATED = 10
PREFILL_TOKENS = 512
PREFILL_PROBE_TOKENS = 128
#: Above this estimated time the long prefill is skipped and the probe's figure is used.
PREFILL_CAP_S = 3.0
DECODE_TOKENS = 32
DECODE_CAP_MS = 1500
SAMPLE_SOURCE = Path(__file__).resolve().parents[1] / "fim" / "postprocess.py"

_BUFFER = re.compile(r"(\w+)\s+(model|KV|compute|output) buffer size\s*=\s*([\d.]+) MiB")
_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")


@dataclass
class LoadReport:
    seconds: float
    #: llama.cpp's buffers as it logged them: "CPU_Mapped model", "CPU KV", "CUDA0 compute"...
    buffers_mib: dict[str, float] = field(default_factory=dict)
    #: (offloaded, total) layers, when llama.cpp said so.
    offloaded: tuple[int, int] | None = None
    rss_growth: int | None = None


@dataclass
class Measurement:
    model_path: str
    threads: int
    load: LoadReport
    prefill_tokens: int
    prefill_tok_s: float
    decode_tokens: int
    decode_tok_s: float
    keystroke_evaluated: int
    keystroke_ms: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _LlamaLog(logging.Handler):
    """Collects llama.cpp's log lines (forwarded by fim.llama.log at debug level)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def parse_load_log(lines: list[str]) -> tuple[dict[str, float], tuple[int, int] | None]:
    """llama.cpp's buffer sizes and offloaded layers from its load log."""
    buffers: dict[str, float] = {}
    offloaded = None
    for line in lines:
        for device, kind, size in _BUFFER.findall(line):
            key = f"{device} {kind}"
            buffers[key] = buffers.get(key, 0.0) + float(size)
        found = _OFFLOADED.search(line)
        if found:
            offloaded = (int(found.group(1)), int(found.group(2)))
    return buffers, offloaded


def _rss() -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def sample_text(tokens: int, count_tokens: Any) -> str:
    """About ``tokens`` tokens of real Python code, cut at a line end."""
    source = SAMPLE_SOURCE.read_text()
    lines = source.splitlines(keepends=True)
    text = ""
    for line in lines:
        if count_tokens(text + line) > tokens:
            break
        text += line
    return text


def measure(config: Config, model_path: Path) -> Measurement:
    """Load ``model_path`` with ``config``'s engine options and time it (about 5 s)."""
    from fim.llama import LlamaEngine
    from fim.llama.log import quiet_llama

    quiet_llama()
    llama_log = logging.getLogger("fim.llama")
    handler = _LlamaLog()
    previous_level = llama_log.level
    llama_log.addHandler(handler)
    llama_log.setLevel(logging.DEBUG)
    started = time.perf_counter()
    rss_before = _rss()
    try:
        engine = LlamaEngine(engine_config(config, str(model_path)))
    finally:
        llama_log.removeHandler(handler)
        llama_log.setLevel(previous_level)
    loaded = time.perf_counter()
    rss_after = _rss()
    buffers, offloaded = parse_load_log(handler.lines)
    load = LoadReport(
        seconds=loaded - started,
        buffers_mib=buffers,
        offloaded=offloaded,
        rss_growth=rss_after - rss_before if rss_before is not None and rss_after is not None else None,
    )
    try:
        key = "doctor://sample.py"
        text = sample_text(PREFILL_TOKENS, engine.count_tokens)
        # 1. Cold prefill: a short probe first, so a slow machine is not kept waiting on
        #    512 tokens; then the rest of the text, reusing the probe's tokens.
        engine.reset_work_sequence()
        engine.forget(key)
        probe_text = sample_text(PREFILL_PROBE_TOKENS, engine.count_tokens)
        probe = engine.complete(
            CompletionRequest(probe_text, "", max_tokens=1, stream_key=key, prompt_lookup=False)
        )
        prefill = probe.stats
        if probe.stats.prefill_ms / 1000 * PREFILL_TOKENS / PREFILL_PROBE_TOKENS < PREFILL_CAP_S:
            prefill = engine.complete(
                CompletionRequest(text, "", max_tokens=1, stream_key=key, prompt_lookup=False)
            ).stats
        else:
            text = probe_text
        prefill_tokens = prefill.tokens_evaluated
        prefill_rate = prefill_tokens / max(prefill.prefill_ms / 1000, 1e-6)
        # 2. A keystroke: one more character, then the 10 generated tokens the user waits for.
        keystroke = engine.complete(
            CompletionRequest(
                text + "x", "", max_tokens=KEYSTROKE_GENERATED, stream_key=key, prompt_lookup=False
            )
        ).stats
        # 3. Decode speed over a longer answer, as many tokens as fit in about 1.5 s.
        rough_rate = max(1, keystroke.tokens_generated - 1) / max(keystroke.decode_ms / 1000, 1e-3)
        steps = max(8, min(DECODE_TOKENS, int(rough_rate * DECODE_CAP_MS / 1000)))
        decode = engine.complete(
            CompletionRequest(
                text + "\n\ndef summary_table(rows):\n    lines = [\n",
                "",
                max_tokens=steps,
                stream_key=key,
                prompt_lookup=False,
            )
        ).stats
        decoded = max(1, decode.tokens_generated - 1)  # the first token comes from prefill logits
        decode_rate = decoded / max(decode.decode_ms / 1000, 1e-6)
        threads = int(engine.describe().get("n_threads", 0))
    finally:
        engine.close()
    return Measurement(
        model_path=str(model_path),
        threads=threads,
        load=load,
        prefill_tokens=prefill_tokens,
        prefill_tok_s=prefill_rate,
        decode_tokens=decoded,
        decode_tok_s=decode_rate,
        keystroke_evaluated=keystroke.tokens_evaluated,
        keystroke_ms=keystroke.total_ms,
        seconds=time.perf_counter() - started,
    )


def expected_latency_ms(tokens_in: int, generated: int, prefill_tok_s: float, decode_tok_s: float) -> float:
    """Evaluate ``tokens_in`` prompt tokens, then generate ``generated`` tokens.

    A batch of a few tokens costs at least one decode step, whatever the prefill rate.
    """
    if prefill_tok_s <= 0 or decode_tok_s <= 0:
        return float("inf")
    evaluate = max(tokens_in / prefill_tok_s, 1 / decode_tok_s) if tokens_in else 0.0
    return 1000 * (evaluate + generated / decode_tok_s)
