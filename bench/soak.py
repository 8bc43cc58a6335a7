"""Soak: hours of load with faults on, sampling both processes, to show nothing grows and nothing is lost.

    .venv/bin/python bench/soak.py                                  # 1 hour, 500 users, faults on
    .venv/bin/python bench/soak.py --duration 8h --users 2000       # an overnight soak
    .venv/bin/python bench/soak.py --duration 10m --warmup 2m       # a quick look

A real ``locust`` headless run (core 1) against ``lp-harness emulator`` (core 0), both started and
stopped here by PID, on 127.0.0.1. Faults are set on the emulator through its admin API (the
default: a few hold closes with 4401 and 4407, TCP resets, lost pongs and IDP 503s), so the
harness's backoff, reconnects (``--on-drop reconnect``, the default) and cleanup run all the
time. Every ``--sample-every`` seconds it records, for each process tree: RSS, open files, CPU %
of one core since the last sample; from the emulator's ledger: open sockets and conversations;
and from its ``/admin/health``: what it holds in memory (consumers, conversations, cached tokens:
each has a bound, docs/emulator.md "Memory"). ``--emulator-heap DIR`` runs the emulator under
``bench/emulator_heap.py`` (tracemalloc snapshots, allocator and gc figures to ``DIR/heap.jsonl``)
to find what grows; its RSS then includes the profiler's own, so judge growth on a run without it.

Pass criterion: RSS of each process grows less than ``--max-growth`` (5 %) from the end of the
warm-up to the end, and nothing is lost: after the stop the emulator has 0 sockets and 0
conversations open and the summary says 0 conversations left open. Result: ``--out`` (JSON, the
samples included) and one line per sample on the terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from locust_capacity import (  # noqa: E402
    ROOT,
    VENV_BIN,
    Tree,
    ledger,
    start_emulator,
    start_locust,
    summary_of,
)

DEFAULT_FAULTS = {
    "hold": ["close:4401,after=20,p=0.03", "close:4407,after=40,p=0.02", "reset,after=30,p=0.02", "no_pong,after=25,p=0.01"],
    "authenticate": ["status:503,p=0.005"],
}


def duration_s(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``8h``."""
    units = {"s": 1, "m": 60, "h": 3600}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def heap_launcher(heap_dir: str, every: float, baseline_at: float, frames: int) -> list[str]:
    """The emulator under ``bench/emulator_heap.py``: heap figures to ``heap_dir/heap.jsonl``."""
    return [str(VENV_BIN / "python"), str(ROOT / "bench" / "emulator_heap.py"), "--dir", heap_dir,
            "--every", str(every), "--baseline-at", str(baseline_at), "--frames", str(frames), "--"]


def health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/admin/health", timeout=10) as r:  # noqa: S310 -- 127.0.0.1 only
        return json.loads(r.read())


def put_faults(url: str, faults: dict[str, list[str]]) -> None:
    body = json.dumps({"seed": 1, "faults": faults}).encode()
    request = urllib.request.Request(f"{url}/admin/faults", data=body, method="PUT")  # 127.0.0.1 only
    with urllib.request.urlopen(request, timeout=10):
        pass


class Probe:
    """CPU % since the last sample, RSS and open files of one process tree."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.cpu, self.at = tree.cpu_s(), time.monotonic()

    def sample(self) -> dict[str, Any]:
        self.tree.refresh()
        cpu, now = self.tree.cpu_s(), time.monotonic()
        pct = 100.0 * (cpu - self.cpu) / max(now - self.at, 1e-6)
        self.cpu, self.at = cpu, now
        fds = sum(m["fds"] for m in self.tree.member_stats())
        return {"rss_mb": round(self.tree.rss() / 2**20, 1), "fds": fds, "cpu_pct": round(pct, 1)}


def growth(samples: list[dict[str, Any]], who: str, warmup_s: float, end_s: float) -> float | None:
    """RSS growth in % from the first sample after the warm-up to the last one under load."""
    after = [s for s in samples if warmup_s <= s["t"] <= end_s and s[who]["rss_mb"] > 0]
    if len(after) < 2:
        return None
    first, last = after[0][who]["rss_mb"], after[-1][who]["rss_mb"]
    return round(100.0 * (last - first) / first, 2) if first else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=duration_s, default=3600.0, help="how long the load runs (default 1h)")
    ap.add_argument("--warmup", type=duration_s, default=300.0, help="RSS growth is measured after this (default 5m)")
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--spawn-rate", type=float, default=50.0)
    ap.add_argument("--hold", type=float, default=60.0, help="seconds each session holds (default 60)")
    ap.add_argument("--ping-interval", type=float, default=15.0)
    ap.add_argument("--on-drop", default="reconnect", choices=["fail", "reconnect"],
                    help="the harness's --lp-on-drop (default reconnect: dropped holds come back)")
    ap.add_argument("--faults", help="JSON {target: [spec...]} for the emulator (default: a mix, see the source)")
    ap.add_argument("--sample-every", type=float, default=10.0)
    ap.add_argument("--max-growth", type=float, default=5.0, help="RSS growth allowed after the warm-up, %% (5)")
    ap.add_argument("--locust-cpus", default="1")
    ap.add_argument("--emulator-cpus", default="0")
    ap.add_argument("--emulator-heap", metavar="DIR",
                    help="run the emulator under bench/emulator_heap.py, heap snapshots to DIR/heap.jsonl")
    ap.add_argument("--heap-every", type=duration_s, default=60.0, help="seconds between heap snapshots (60)")
    ap.add_argument("--heap-frames", type=int, default=8, help="tracemalloc depth; 0 = allocator and gc figures only")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "soak.json"))
    args = ap.parse_args(argv)
    faults = json.loads(args.faults) if args.faults else DEFAULT_FAULTS
    extra = ["--lp-hold", str(args.hold), "--lp-ping-interval", str(args.ping_interval), "--stop-timeout", "30",
             "--lp-on-drop", args.on_drop]
    samples: list[dict[str, Any]] = []
    with TemporaryDirectory(prefix="lp-soak-") as tmp:
        work = Path(tmp)
        launcher = heap_launcher(args.emulator_heap, args.heap_every, args.warmup, args.heap_frames) if args.emulator_heap else None
        emu, url = start_emulator(work, args.emulator_cpus, 1, "soak", launcher)
        try:
            put_faults(url, faults)
            run_s = int(args.duration)
            loc = start_locust(work, "soak", url, args.locust_cpus, args.users, args.spawn_rate, run_s, extra)
            try:
                probes = {"locust": Probe(loc), "emulator": Probe(emu)}
                started = time.monotonic()
                while loc.running() and time.monotonic() - started < run_s + 120:
                    time.sleep(args.sample_every)  # a sampling period, not a synchronisation
                    led = ledger(url)
                    row = {"t": round(time.monotonic() - started, 1)}
                    row.update({name: probe.sample() for name, probe in probes.items()})
                    row["sockets_open"] = led["sockets"]["open"]
                    row["conversations_open"] = led["conversations"]["open"]
                    row["emulator_held"] = health(url).get("held")
                    samples.append(row)
                    print(json.dumps(row), flush=True)
                code = loc.wait(120)
            finally:
                loc.stop()
            final = ledger(url)
            summary = summary_of(work, "soak") or {}
        finally:
            emu.stop()
    conversations = summary.get("conversations") or {}
    result = {
        "command": " ".join(["bench/soak.py", *(argv if argv is not None else sys.argv[1:])]),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "faults": faults,
        "locust_exit": code,
        "rss_growth_pct": {who: growth(samples, who, args.warmup, args.duration) for who in ("locust", "emulator")},
        "end": {
            "emulator_sockets_open": final["sockets"]["open"],
            "emulator_conversations_open": final["conversations"]["open"],
            "conversations": conversations,
            "reconnect": summary.get("reconnect"),
            "phases": summary.get("phases"),
            "end_reason": (summary.get("run") or {}).get("end_reason"),
        },
        "samples": samples,
    }
    lost = final["sockets"]["open"] or final["conversations"]["open"] or conversations.get("left_open")
    grew = [w for w, g in result["rss_growth_pct"].items() if g is None or g >= args.max_growth]
    result["passed"] = not lost and not grew
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"rss growth after warm-up: {result['rss_growth_pct']}; left open: {conversations.get('left_open')}; "
          f"emulator open sockets/conversations: {final['sockets']['open']}/{final['conversations']['open']}; "
          f"{'PASS' if result['passed'] else 'FAIL'} -> {args.out}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
