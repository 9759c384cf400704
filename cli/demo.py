"""``make demo``: a real completion session against the real daemon and model.

It opens a fixture file in a daemon started as an editor starts it (with the model in
the daemon, as for every one-shot command: ``cli.complete.ONE_SHOT_OPTIONS``), then visits
several lines: each time the rest of the line is erased (as if the user were about to
write it), an inline completion is requested at the cursor, and the suggestion is
printed beside what the file really says there, with its latency.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cli.complete import ONE_SHOT_OPTIONS
from harness.client import DaemonClient, insert_text_of

DEMO_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "src" / "stats.py"
# (1-based line, text that stays before the cursor on that line)
HOLES = [
    (6, "    return sum("),
    (11, "    center = "),
    (17, "    return number "),
    (23, "        return"),
    (24, "    return fib"),
]


async def _session(model: str | None) -> int:
    text = DEMO_FILE.read_text()
    lines = text.split("\n")
    options = {**ONE_SHOT_OPTIONS, "model": model} if model else dict(ONE_SHOT_OPTIONS)
    client = DaemonClient(initialization_options=options)
    print(f"starting `fim-lsp serve` and loading {model or 'the default model'} ...")
    started = time.perf_counter()
    await client.start()
    try:
        status = await client.wait_ready()
        if status.get("state") != "ready":
            print(f"model failed to load: {status.get('error')}")
            return 1
        print(f"model ready in {time.perf_counter() - started:.1f} s: {status.get('modelPath')}")
        template = f"{status.get('template')} ({status.get('fimOrder')})"
        print(f"FIM template {template}, {status.get('threads')} threads\n")
        uri = DEMO_FILE.as_uri()
        client.open(uri, text, "python")
        for line_number, kept in HOLES:
            index = line_number - 1
            original = lines[index]
            assert original.startswith(kept), (original, kept)
            # Erase the rest of the line, as if the user had just typed `kept`.
            client.change(uri, (index, len(kept)), (index, len(original)), "")
            begin = time.perf_counter()
            result = await client.inline(uri, index, len(kept), invoked=False)
            latency = (time.perf_counter() - begin) * 1000
            insert, item_range = insert_text_of(result)
            typed = item_range.end.character - item_range.start.character if item_range else 0
            suggestion = insert[typed:]
            figures = (await client.status()).get("lastRequest") or {}
            print(f"{DEMO_FILE.name}:{line_number}:{len(kept) + 1}  {kept.strip()}")
            print(f"  suggestion: {suggestion!r}")
            print(f"  file says:  {original[len(kept) :]!r}")
            print(
                f"  latency {latency:.0f} ms (tokens reused {figures.get('tokens_reused')}, "
                f"evaluated {figures.get('tokens_evaluated')}, generated {figures.get('tokens_generated')})\n"
            )
            # Put the line back before visiting the next hole.
            client.change(uri, (index, len(kept)), (index, len(kept)), original[len(kept) :])
        counters = (await client.status()).get("counters", {})
        print(f"requests {counters.get('requests')}, model runs {counters.get('model_runs')}")
        return 0
    finally:
        await client.stop()


def run_demo(model: str | None = None) -> int:
    if not DEMO_FILE.is_file():
        # A user install (pipx, `make install`) carries the daemon, not the repository's fixtures.
        print(
            f"fim-lsp demo: {DEMO_FILE} is missing: the demo visits a file of the repository, which "
            "this install does not have. Run `make demo` in a clone, or try the daemon on your "
            "own file: fim-lsp complete FILE LINE:COLUMN"
        )
        return 2
    return asyncio.run(_session(model))
