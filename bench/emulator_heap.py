"""The emulator with a heap profile: where its memory goes while a load runs.

    .venv/bin/python bench/emulator_heap.py --dir /tmp/heap --every 60 -- --idle-timeout 900
    .venv/bin/python bench/soak.py --duration 12m --warmup 3m --emulator-heap /tmp/heap
    .venv/bin/python bench/soak.py --duration 20m --emulator-heap /tmp/heap --heap-frames 0   # no tracer

Runs ``lp-harness emulator`` (the arguments after ``--``) in this process with :mod:`tracemalloc`
on (``--frames`` deep; 0 = off). Every ``--every`` seconds (and on SIGUSR1) a thread appends one
JSON line to ``DIR/heap.jsonl`` with:

- RSS, and the allocators' own view: glibc's heap (in use / free: objects over 512 bytes and C
  libraries are malloc'd) and, without the tracer, pymalloc's arenas (objects up to 512 bytes).
  RSS growing while both stay flat is neither Python objects nor the heap; free space growing in
  them is fragmentation, not a leak.
- what the emulator holds (``/admin/health``'s ``held``: consumers, conversations, cached tokens),
  its open sockets, and live instances of its own classes and a few that can pile up.
- what only a full gc pass frees (cyclic garbage waiting in the oldest generation), by type: it
  is collected here, after the snapshot, so each line shows about a period's worth.
- with the tracer: the memory it traced, before and after that pass, and the top ``--top``
  allocation sites by size difference since the baseline (the first snapshot at or after
  ``--baseline-at`` s) and since the previous snapshot, by line and by stack.

The tracer slows every allocation and its snapshots cost memory of their own: compare a profiled
RSS only with itself, and judge growth on a run without the tracer.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Class names whose live instances are counted at each snapshot (a count that only grows is a leak).
WATCHED = {
    "Sock", "Session", "Consumer", "Conversation", "FastLane", "FastSocket", "WebSocketResponse",
    "Task", "Future", "TimerHandle", "Handle", "TransportSocket", "RequestHandler", "deque", "OrderedDict",
    "Request", "UrlMappingMatchInfo", "HttpExchange", "Response", "Handshake", "frame", "coroutine",
}


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ["arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"]]


def malloc_kb() -> dict[str, int]:
    """glibc's view (objects over 512 bytes, and C libraries, are malloc'd): heap, in use, free, mmapped."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    return {"heap_kb": info.arena // 1024, "in_use_kb": info.uordblks // 1024,
            "free_kb": info.fordblks // 1024, "mmapped_kb": info.hblkhd // 1024}


def pymalloc_kb() -> dict[str, int]:
    """pymalloc's arenas (objects up to 512 bytes): mapped, in allocated blocks, free in them.

    Empty under tracemalloc (it wraps the allocator, and the interpreter then prints no arena stats).
    """
    if tracemalloc.is_tracing():
        return {}
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode(errors="replace")

    def number(label: str) -> int:
        m = re.search(re.escape(label) + r"[^=]*=\s*([\d,]+)", text)
        return int(m.group(1).replace(",", "")) // 1024 if m else -1

    arenas = re.search(r"^(\d+) arenas \*", text, re.M)
    return {"arenas": int(arenas.group(1)) if arenas else -1, "allocated_kb": number("# bytes in allocated blocks"),
            "available_kb": number("# bytes in available blocks"), "unused_pools_kb": number("unused pools")}


def registries() -> dict[str, int]:
    """What the emulator says it holds (``/admin/health``'s ``held``) and its open sockets."""
    from harness.emulator.server import Emulator

    for obj in gc.get_objects():
        if isinstance(obj, Emulator):
            return {**obj.registry.held(), "tokens_cached": obj.idp.cached_tokens(), "sockets": len(obj.sockets.open)}
    return {}


def sites(stats: list[tracemalloc.StatisticDiff], top: int) -> list[dict[str, Any]]:
    return [
        {"site": str(s.traceback[0]), "kb": round(s.size / 1024, 1), "diff_kb": round(s.size_diff / 1024, 1),
         "count": s.count, "count_diff": s.count_diff, "stack": [str(f) for f in s.traceback][:6]}
        for s in stats[:top]
    ]


class Profiler:
    """Takes snapshots on a timer (and on SIGUSR1) and writes one JSON line for each."""

    def __init__(self, out: Path, every: float, baseline_at: float, top: int) -> None:
        self.out, self.every, self.baseline_at, self.top = out, every, baseline_at, top
        self.started = time.monotonic()
        self.baseline: tracemalloc.Snapshot | None = None
        self.previous: tracemalloc.Snapshot | None = None
        self.lock = threading.Lock()

    def snapshot(self) -> None:
        with self.lock:
            t = round(time.monotonic() - self.started, 1)
            tracing = tracemalloc.is_tracing()
            kinds = Counter(type(o).__name__ for o in gc.get_objects())
            row: dict[str, Any] = {"t": t, "rss_kb": rss_kb(), "malloc": malloc_kb(), "pymalloc": pymalloc_kb(),
                                   "registries": registries(), "gc_objects": sum(kinds.values()),
                                   "objects": {k: n for k, n in kinds.items() if k in WATCHED}}
            snap = None
            if tracing:
                snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
                row["traced_kb"] = tracemalloc.get_traced_memory()[0] // 1024
            # What only a full collection frees (cyclic garbage waiting in the oldest generation), by type.
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                row["gc_collected"] = gc.collect()
                row["garbage"] = dict(Counter(type(o).__name__ for o in gc.garbage).most_common(12))
                gc.garbage.clear()
            finally:
                gc.set_debug(0)
            if tracing:
                row["traced_after_gc_kb"] = tracemalloc.get_traced_memory()[0] // 1024
            if snap is not None:
                if self.baseline is None and t >= self.baseline_at:
                    self.baseline = snap
                elif self.baseline is not None:
                    row["since_baseline"] = sites(snap.compare_to(self.baseline, "lineno"), self.top)
                    row["since_baseline_by_stack"] = sites(snap.compare_to(self.baseline, "traceback"), 8)
                if self.previous is not None:
                    row["since_previous"] = sites(snap.compare_to(self.previous, "lineno"), self.top)
                self.previous = snap
            with open(self.out / "heap.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")

    def run(self) -> None:
        while True:
            time.sleep(self.every)  # a sampling period
            try:
                self.snapshot()
            except Exception as exc:  # noqa: BLE001 -- a failed snapshot must not stop the emulator
                print(f"emulator_heap: snapshot failed: {exc!r}", file=sys.stderr)


def main() -> int:
    argv = sys.argv[1:]
    emulator_args = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True, help="where heap.jsonl is written")
    ap.add_argument("--every", type=float, default=60.0)
    ap.add_argument("--baseline-at", type=float, default=0.0, help="seconds after start of the baseline snapshot")
    ap.add_argument("--frames", type=int, default=8, help="traceback depth; 0 = no tracemalloc (RSS, allocators, gc)")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args(own)
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    from harness.emulator.cli import main as emulator_main  # imported first: modules are not what grows

    if args.frames > 0:
        tracemalloc.start(args.frames)
    profiler = Profiler(out, args.every, args.baseline_at, args.top)
    threading.Thread(target=profiler.run, daemon=True, name="heap-profile").start()
    signal.signal(signal.SIGUSR1, lambda *_: threading.Thread(target=profiler.snapshot, daemon=True).start())
    return emulator_main(emulator_args)


if __name__ == "__main__":
    sys.exit(main())
