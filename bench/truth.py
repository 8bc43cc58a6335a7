"""Are the harness's numbers the target's? Each step's client-side time against the server's own.

    .venv/bin/python bench/truth.py                         # 100, 1,000 and 10,000 sessions (~6 min)
    .venv/bin/python bench/truth.py --quick                 # 20 sessions, ~30 s (tests/user/test_truth.py)
    .venv/bin/python bench/truth.py --starve                # and 1,000 again with the generator starved
    .venv/bin/python bench/truth.py --sessions '' --churn 25,50,90   # new sessions/s at 25/50/90 % of --capacity

For each session count a real ``lp-harness emulator`` and a real ``locust -f locustfile.py
--headless`` are started here (and stopped, by PID). Before the load the loopback round trip is
measured apart from the harness: a plain TCP echo on 127.0.0.1, 2,000 round trips of 64 bytes. The
run's summary (each step's percentiles, within 1 %) and the emulator's ledger (each request's
server-side time) then give, per step, the harness's own overhead: client - server - round trip
(harness/reports/overhead.py), against the target of 1 ms at p50 and 5 ms at p99. The summary's
``load_generator`` verdict says whether the run was below saturation.

Where the overhead comes from: an idle client (``bench/truth_probe.py``, its own process, one socket, a
GetClock every 20 ms) runs through the middle of each load, and once before any. Its round trip is
what the emulator, the kernel and waking an idle process cost under that load; the loaded harness's
client time above it is the generator's own (``probe`` in each run, ``idle_probe``).

The emulator's own CPU over each run is ``emulator_cpu_percent_mean``: the two share the cores here.

``--starve`` repeats ``--starve-sessions`` (1,000) with the locust process pinned to one core and a busy
process pinned beside it (``taskset``), and reports the verdict: it must turn ``saturated`` and say
when. Output: ``--out`` (JSON; default bench/results/truth.json) and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from harness.reports.overhead import overhead_rows  # noqa: E402

BIN = Path(sys.executable).parent
EXTRA = ("--lp-messages", "2", "--lp-message-interval", "1")  # talking sessions: publish is a step too
# Sessions started together stay in step (each lasts as long), and every hold's end becomes a burst
# of closes and new sessions queueing behind each other: spawned over one hold they are staggered.
HOLD_S = 5  # each held session's length (--hold)
PING_S = 1.0  # its keepalive interval (--ping-interval)


def loopback_rtt(n: int = 2000) -> dict[str, float]:
    """The round trip of 64 bytes over a TCP connection on 127.0.0.1, p50 and p99 in ms."""
    server = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(64):
                conn.sendall(data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    times = []
    with socket.create_connection(server.getsockname()) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = b"x" * 64
        for _ in range(n):
            started = time.perf_counter()
            client.sendall(payload)
            got = 0
            while got < len(payload):
                got += len(client.recv(64))
            times.append((time.perf_counter() - started) * 1000.0)
    server.close()
    times.sort()
    return {"p50": round(statistics.median(times), 4), "p99": round(times[int(0.99 * len(times)) - 1], 4)}


def start_emulator(log: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [str(BIN / "lp-harness"), "emulator", "--host", "127.0.0.1", "--port", "0", "--log-level", "WARNING",
         "--agents", "20000", "--agent-reply-delay", "10"],  # an agent for every session: nobody queues
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        proc.kill()
        raise RuntimeError(f"the emulator did not start: {url!r} (see {log})")
    return proc, url


def admin(url: str, path: str, method: str = "GET") -> dict[str, Any]:
    with urllib.request.urlopen(urllib.request.Request(url + path, method=method), timeout=10) as answer:
        return json.loads(answer.read() or b"{}")


def run_load(
    url: str, sessions: int, seconds: int, work: Path, pin: list[str] | None = None, churn: float | None = None
) -> dict[str, Any]:
    """One headless locust run against ``url``: ``sessions`` users holding and pinging; its summary.

    ``churn``: instead, that many new sessions a second (the open model, ``--lp-arrival-rate``), each
    closing as soon as its conversation is open (``--lp-hold 0``), with up to ``sessions`` at once."""
    reports = work / f"reports-{sessions}-{'pinned' if pin else 'free'}-{churn or 0:g}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LP_", "LOCUST_"))}
    env |= {"LP_ACCOUNT": "truth", "LP_IDP": url, "LP_ASYNCMESSAGINGENT": url, "LP_REPORTS_DIR": str(reports)}
    rate = max(1.0, sessions / HOLD_S)  # spawned over one session's length: the sessions stay staggered
    shape = ["--lp-hold", f"{HOLD_S:g}", "--lp-ping-interval", f"{PING_S:g}", *EXTRA]
    if churn:
        rate, shape = sessions, ["--lp-scenario", "arrival", "--lp-arrival-rate", f"{churn:g}", "--lp-hold", "0"]
    cmd = [*(pin or []), str(BIN / "locust"), "-f", str(ROOT / "locustfile.py"), "--headless", "--only-summary",
           "-u", str(sessions), "-r", str(rate), "-t", f"{seconds}s", "--stop-timeout", "10", *shape]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds + 120)
    folders = sorted(p for p in reports.iterdir() if (p / "summary.json").is_file()) if reports.is_dir() else []
    if not folders:
        raise RuntimeError(f"locust wrote no summary (exit {out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return json.loads((folders[-1] / "summary.json").read_text())


def start_probe(url: str, delay_s: float, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """bench/truth_probe.py: an idle client's GetClock round trips while the load runs."""
    return subprocess.Popen([sys.executable, str(ROOT / "bench" / "truth_probe.py"), url, str(delay_s), str(seconds), str(out)], cwd=ROOT)


def probe_result(proc: subprocess.Popen[bytes], out: Path) -> dict[str, Any] | None:
    proc.wait(timeout=60)
    return json.loads(out.read_text()) if proc.returncode == 0 and out.is_file() else None


def measure(
    url: str, sessions: int, seconds: int, work: Path, rtt: dict[str, float], pin: list[str] | None = None,
    churn: float | None = None, emulator_pid: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    admin(url, "/admin/ledger/reset", "POST")
    emulator = psutil.Process(emulator_pid) if emulator_pid else None
    cpu_before, wall_before = (sum(emulator.cpu_times()[:2]) if emulator else 0.0), time.monotonic()
    out = work / f"probe-{sessions}-{'pinned' if pin else 'free'}-{churn or 0:g}.json"
    probe = start_probe(url, seconds / 3, seconds / 2, out)  # the middle of the run: the load is on
    summary = run_load(url, sessions, seconds, work, pin, churn)
    emulator_cpu = None  # the other process on the same cores: which of the two saturated
    if emulator is not None:
        emulator_cpu = round(100.0 * (sum(emulator.cpu_times()[:2]) - cpu_before) / (time.monotonic() - wall_before), 1)
    generator = summary.get("load_generator") or {}
    result = {
        "sessions": sessions,
        "churn_per_s": churn,
        "arrival": summary.get("arrival"),
        "pinned": bool(pin),
        "rows": overhead_rows(summary, admin(url, "/admin/ledger"), rtt),
        "load_generator": {k: generator.get(k) for k in ("verdict", "saturated_share", "saturated_periods", "reasons")}
        | {"total": generator.get("total")},
        "emulator_cpu_percent_mean": emulator_cpu,
        "socket_failures": summary["phases"]["socket"]["failures"],
        "probe": probe_result(probe, out),
    }
    beside(result["rows"], result["probe"])
    return result


def beside(rows: list[dict[str, Any]], probe: dict[str, Any] | None) -> None:
    """Each step the idle client times too: its p50/p99, and the loaded client's time above it (the generator's)."""
    for row in rows:
        idle = (probe or {}).get(row["step"])
        for q in ("p50", "p99"):
            value = idle[f"{q}_ms"] if idle else None
            row[f"idle_client_{q}_ms"] = value
            row[f"generator_{q}_ms"] = None if value is None else round(row[f"client_{q}_ms"] - value, 3)


def main(argv: list[str] | None = None) -> int:
    global HOLD_S, PING_S
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", default="100,1000,10000", help="comma-separated session counts")
    parser.add_argument("--seconds", type=int, default=60, help="each run's length")
    parser.add_argument("--quick", action="store_true", help="20 sessions for 15 s (the fast test)")
    parser.add_argument("--starve", action="store_true", help="repeat one count with the generator starved")
    parser.add_argument("--starve-sessions", type=int, default=1000, help="the count the starved run repeats")
    parser.add_argument("--churn", default="", help="comma-separated percentages of --capacity: new sessions/s, hold 0")
    parser.add_argument("--capacity", type=float, default=1000.0,
                        help="new sessions/s that saturate one process (bench/results/locust-capacity.md)")
    parser.add_argument("--hold", type=float, default=HOLD_S, help="seconds each held session lasts")
    parser.add_argument("--ping-interval", type=float, default=PING_S, help="seconds between a held session's pings")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "truth.json"))
    args = parser.parse_args(argv)
    HOLD_S, PING_S = args.hold, args.ping_interval
    counts = [20] if args.quick else [int(n) for n in args.sessions.split(",") if n.strip()]
    seconds = 15 if args.quick else args.seconds
    result: dict[str, Any] = {"command": " ".join(["bench/truth.py", *(argv or sys.argv[1:])]), "runs": []}
    with tempfile.TemporaryDirectory(prefix="lp-truth-") as tmp:
        work = Path(tmp)
        result["loopback_rtt_ms"] = rtt = loopback_rtt()
        emulator, url = start_emulator(work / "emulator.log")
        hog = None
        try:
            result["idle_probe"] = probe_result(start_probe(url, 0, 5, work / "probe-idle.json"), work / "probe-idle.json")
            for n in counts:
                result["runs"].append(measure(url, n, seconds, work, rtt, emulator_pid=emulator.pid))
            for percent in (float(p) for p in args.churn.split(",") if p.strip()):
                rate = args.capacity * percent / 100.0
                result["runs"].append(measure(url, max(50, int(rate)), seconds, work, rtt, churn=rate, emulator_pid=emulator.pid))
            if args.starve:
                hog = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-c", "while True: pass"])
                starved = args.starve_sessions
                pin = ["taskset", "-c", "1"]
                result["runs"].append(measure(url, starved, seconds, work, rtt, pin=pin, emulator_pid=emulator.pid))
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
            emulator.terminate()
            emulator.wait(timeout=30)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"loopback round trip: p50 {rtt['p50']} ms, p99 {rtt['p99']} ms")
    print(f"an idle client's GetClock, 20 ms apart, no load: {result.get('idle_probe')}")
    for run in result["runs"]:
        gen = run["load_generator"]
        what = f"churn {run['churn_per_s']:g}/s" if run.get("churn_per_s") else f"{run['sessions']} sessions"
        kept = f" (achieved {run['arrival'].get('achieved_rate')}/s)" if run.get("arrival") else ""
        print(f"\n{what}{kept}{' (starved)' if run['pinned'] else ''}: generator {gen['verdict']}"
              f" ({(gen.get('saturated_share') or 0):.1%} saturated; {'; '.join(gen.get('reasons') or [])[:160]}),"
              f" emulator CPU {run.get('emulator_cpu_percent_mean')} % on average,"
              f" socket failures {run['socket_failures']}; an idle client beside it: {run.get('probe')}")  # fmt: skip
        for row in run["rows"]:
            print(f"  {row['step']:<22} client p50 {row['client_p50_ms']:>8} p99 {row['client_p99_ms']:>8}"
                  f"  server p50 {row['server_p50_ms']:>7} p99 {row['server_p99_ms']:>7}"
                  f"  overhead p50 {row['overhead_p50_ms']:>7} p99 {row['overhead_p99_ms']:>7}"
                  f"  above an idle client p50 {row['generator_p50_ms']} p99 {row['generator_p99_ms']}"
                  f"  {'ok' if row['within_target'] else 'OVER'}")  # fmt: skip
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
