"""Messages per second one Locust process sustains: talking sessions against the emulator's agents.

    .venv/bin/python bench/chat_capacity.py                    # 1,000 and 10,000 sessions, silent and talking
    .venv/bin/python bench/chat_capacity.py --quick            # smoke check, small counts (~2 min)
    .venv/bin/python bench/chat_capacity.py --only 10000@5,10000@3 --no-baseline

Every run is a real ``locust -f locustfile.py --headless`` process pinned to core 1 against
``lp-harness emulator --agents <sessions> --agent-reply-delay <ms>`` pinned to core 0 (both started
and stopped here, by PID, through bench/locust_capacity.py's helpers). The session is the realistic
one of scenarios/chat.conf (``--lp-session realistic --lp-auth init-connection --lp-keepalive
getclock``, typing on, 40-character messages) with a hold longer than the run and enough messages
at a fixed ``--lp-message-interval`` to keep talking through the window, so the offered rate is
sessions / interval. One agent per session, so no conversation waits in the queue.

A run ramps at ``--spawn-rate`` (500/s) until the ledger shows every socket open, waits one message
interval (every session is talking), then measures a ``--window`` (60 s): from the emulator's
ledger the consumer messages received and the agent replies sent in it (achieved messages/s), from
psutil the CPU (user+system, % of one core) of each process tree (>= 90 % is saturated) and the
locust RSS per session (RSS at the end of the window - RSS before the first request, / sessions).
The window's own ``publish``, ``message-round-trip`` and ``get-clock`` counts, failures and
percentiles (median and max of 10 s blocks) come from Locust's per-second stats history
(``--csv-full-history``): summary.json covers the whole run, where the ramp dominates. Locust is
then stopped with SIGTERM (its graceful path) and its summary.json read: the messages section
(sent, replied, lost), the whole run's step percentiles and failure categories (``no reply``);
its totals are reconciled with the ledger's. The interval counts from a publish's answer, so a
slow publish lowers the rate a session offers: ``achieved_vs_offered`` below 1 is the publish
latency showing.

Runs (``--only``, comma separated, each ``SESSIONS@INTERVAL_S``; ``SESSIONS@0`` is silent):
the default is 1000@0, 1000@2, 10000@0, 10000@10. Unless ``--no-baseline``, each session count
talking gets its silent run (``--lp-messages 0``, the same session) in the same sitting. With
``--knee`` (default on), each talking run that struggles is repeated at 1.5, 2 and 3 times its
interval until it does not; one that does not, at 0.5, 0.25 and 0.15 times until it does: the knee
lies between the last two. Struggling means, in the window: locust >= 90 % of its core, under 95 %
of the offered rate, any publish or reply failing, or a publish p95 over ``--latency-limit-ms``.
``--gc-probe`` (on by default) puts a sitecustomize on the locust process's PYTHONPATH that times
its garbage collections: a full (gen2) collection stops the gevent loop and every socket with it,
so the window reports how often and how long. ``--freeze-runs 10000@10,...`` repeats runs with
``gc.freeze()`` (sent by SIGUSR1) once every socket is open, to show what the pauses cost.
Output: ``--out`` (JSON; default bench/results/chat-capacity.json).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from locust_capacity import (  # noqa: E402
    LOCUST_ENV,
    MAX_USERS,
    ROOT,
    SATURATED_PCT,
    VENV_BIN,
    Sampler,
    cores_of,
    dig,
    ledger,
    machine_state,
    start_emulator,
    start_locust,
    summary_of,
    tree_state,
    window,
)

SESSION = ["--lp-session", "realistic", "--lp-auth", "init-connection", "--lp-keepalive", "getclock",
           "--lp-getclock-interval", "30", "--lp-message-size", "40", "--lp-typing"]
WINDOW_STEPS = ("publish", "message-round-trip", "get-clock", "connect")
STEPS = ("publish", "message-round-trip", "first-agent-reply", "subscribe-conversations", "request-conversation",
         "connect", "get-clock")


# Written to the run's folder and put on the locust process's PYTHONPATH (``--gc-probe``): it times
# every garbage collection (gc.callbacks) and dumps them at exit; on SIGUSR1 it collects once and
# moves everything alive into the permanent generation (gc.freeze), for the ``--freeze-runs`` A/B.
GC_PROBE = '''
import atexit, gc, json, os, signal, time
_start = [0.0]
_pauses = []
def _timed(phase, info):
    if phase == "start":
        _start[0] = time.perf_counter()
    else:
        _pauses.append((info["generation"], (time.perf_counter() - _start[0]) * 1000.0, time.time()))
def _freeze(*_):
    gc.collect()
    gc.freeze()
    _pauses.append((-1, gc.get_freeze_count(), time.time()))
def _dump():
    with open(os.environ["LP_BENCH_GC_OUT"], "w") as f:
        json.dump(_pauses, f)
if os.environ.get("LP_BENCH_GC_OUT"):
    gc.callbacks.append(_timed)
    signal.signal(signal.SIGUSR1, _freeze)
    atexit.register(_dump)
'''


class ChatSampler(Sampler):
    """The capacity sampler plus the ledger's conversation traffic (messages and agents sections)."""

    def sample(self) -> dict[str, Any]:
        row = super().sample()
        try:
            led = ledger(self.url, timeout=5.0)
        except OSError:
            self.ledger_errors += 1
            return row
        msg, agents = led.get("messages", {}), led.get("agents", {})
        row.update({
            "consumer_content": dig(msg, "consumer.content") or 0,
            "consumer_receipts": sum((dig(msg, "consumer.receipts") or {}).values()),
            "agent_content": dig(msg, "agent.content") or 0,
            "replies_sent": dig(agents, "replies.sent") or 0,
            "queued": dig(agents, "queue.now") or 0,
        })
        return row


def run_chat(args: argparse.Namespace, work: Path, users: int, interval: float, freeze: bool = False) -> dict[str, Any]:
    """One run: ``users`` realistic sessions, a message every ``interval`` s each (0: silent).

    ``freeze``: gc.freeze() in the locust process once every socket is open (needs the GC probe).
    """
    users = min(users, MAX_USERS)
    tag = f"s{users}-i{interval:g}" + ("-freeze" if freeze else "")
    gc_out = work / f"{tag}-gc.json"
    env_extra = {"PYTHONPATH": str(work / "gcprobe"), "LP_BENCH_GC_OUT": str(gc_out)} if args.gc_probe else None
    ramp_budget = max(20.0, 2.0 * users / args.spawn_rate)
    settle = max(5.0, interval)
    bound = int(ramp_budget + settle + args.window + 60)
    messages = math.ceil(bound / interval) + 2 if interval else 0
    launcher = [str(VENV_BIN / "lp-harness"), "emulator", "--agents", str(users),
                "--agent-reply-delay", str(args.reply_delay)]
    emu, url = start_emulator(work, args.emulator_cpus, 1, tag, launcher=launcher)
    locust = None
    result: dict[str, Any] = {"tag": tag, "sessions": users, "interval_s": interval, "gc_freeze": freeze,
                              "messages_per_session": messages,
                              "offered_msg_per_s": round(users / interval, 1) if interval else 0.0}
    try:
        extra = [*SESSION, "--lp-messages", str(messages), "--lp-hold", str(bound + 120),
                 "--lp-reply-timeout", str(args.reply_timeout),
                 "--csv", str(work / f"{tag}-csv"), "--csv-full-history"]  # per-second rows: the window's own numbers
        if interval:
            extra += ["--lp-message-interval", f"{interval:g}"]
        locust = start_locust(work, tag, url, args.locust_cpus, users, args.spawn_rate, bound, extra, env_extra=env_extra)
        result["locust_args"] = extra
        s = ChatSampler(url, locust, emu)
        if s.until(lambda r: r["authorize"] > 0, 60.0, 0.05) is None:
            result["error"] = "locust sent no request in 60 s"
            return result
        rss_base = max((r["loc_rss"] for r in s.rows if r.get("authorize", 1) == 0), default=None)
        first = s.until(lambda r: r["accepted"] > 0, 30.0, 0.05)
        full = s.until(lambda r: r["open"] >= users or r["rejected"] or r["fd_limit_hits"], ramp_budget, 0.2)
        if first is None or full is None or full["open"] < users:
            last = s.rows[-1]
            result["error"] = (f"only {last.get('open')} of {users} sockets open after {ramp_budget:.0f} s "
                               f"(rejected {last.get('rejected')}, locust running {locust.running()})")
            return result
        lc, ec = cores_of(args.locust_cpus), cores_of(args.emulator_cpus)
        ramp = window(first, full, lc, ec)
        result["ramp"] = {**ramp, "sessions_per_s": round(users / ramp["seconds"], 1)}
        if freeze:
            locust.signal(signal.SIGUSR1)  # the collection it runs falls in the settle time, not the window
        a = s.hold_for(settle, 1.0)
        b = s.hold_for(args.window, 1.0)
        w = window(a, b, lc, ec)
        dt = w.pop("seconds")
        w.pop("locust_cpu_s")
        got = b["consumer_content"] - a["consumer_content"]
        replies = b["agent_content"] - a["agent_content"]
        result["window"] = {
            "seconds": dt, **w,
            "sockets_open_min": min(r["open"] for r in s.rows if r["t"] >= a["t"] and "open" in r),
            "messages_per_s": round(got / dt, 1),
            "replies_per_s": round(replies / dt, 1),
            "consumer_receipts_per_s": round((b["consumer_receipts"] - a["consumer_receipts"]) / dt, 1),
            "achieved_vs_offered": round(got / dt / result["offered_msg_per_s"], 3) if interval else None,
            "queued_max": max(r.get("queued", 0) for r in s.rows if r["t"] >= a["t"]),
            "locust_rss_mb": round(b["loc_rss"] / 2**20, 1),
            "rss_per_session_kb": round((b["loc_rss"] - rss_base) / 1024 / users, 2) if rss_base else None,
            "locust_cpu_ms_per_message": round(10 * w["locust_cpu_pct"] * dt / got, 3) if got else None,
            "emulator_cpu_ms_per_message": round(10 * w["emulator_cpu_pct"] * dt / got, 3) if got else None,
        }
        wall = time.time() - time.monotonic()
        result["window"]["wall"] = [round(a["t"] + wall, 1), round(b["t"] + wall, 1)]
        t_stop = time.monotonic()
        locust.signal(signal.SIGTERM)  # graceful: close conversations and sockets, write reports
        rc = locust.wait(150.0)
        result["stop"] = {"seconds": round(time.monotonic() - t_stop, 2), "locust_exit": rc}
        after = ledger(url)
        result["ledger_after"] = {"sockets": after["sockets"], "conversations": after["conversations"],
                                  "messages": after.get("messages"),
                                  "replies": {k: v for k, v in dig(after, "agents.replies").items()
                                              if not k.endswith("_ms")} if dig(after, "agents.replies") else None,
                                  "reply_latency_ms": dig(after, "agents.replies.latency_ms")}
        result["window_steps"] = window_steps(work / f"{tag}-csv_stats_history.csv", a["t"] + wall, b["t"] + wall)
        if args.gc_probe:
            result["gc"] = gc_pauses(gc_out, a["t"] + wall, b["t"] + wall)
        summ = summary_of(work, tag)
        if summ is not None:
            result["summary"] = digest(summ)
            result["reconcile"] = reconcile(summ, after)
        return result
    finally:
        if locust is not None:
            locust.stop()
        emu.stop()


def gc_pauses(path: Path, start: float, end: float) -> dict[str, Any]:
    """The locust process's garbage collections inside the window: count, time paused, longest.

    A collection stops the whole gevent loop: every socket's frames wait for it.
    """
    if not path.exists():
        return {}
    rows = json.loads(path.read_text())
    out: dict[str, Any] = {"frozen_objects": next((int(r[1]) for r in rows if r[0] == -1), None)}
    for gen in (0, 1, 2):
        ms = [r[1] for r in rows if r[0] == gen and start <= r[2] <= end]
        out[f"gen{gen}"] = {"count": len(ms), "paused_ms": round(sum(ms)), "max_ms": round(max(ms), 1) if ms else None,
                            "median_ms": round(statistics.median(ms), 1) if ms else None,
                            "share_pct": round(sum(ms) / 10 / (end - start), 2)}
    return out


def window_steps(path: Path, start: float, end: float) -> dict[str, Any]:
    """Each talk step inside the window alone, from Locust's per-second stats history.

    summary.json covers the whole run, ramp and stop included; a ramp of 10,000 sessions at
    500/s saturates the load generator and would dominate its percentiles. Locust writes, each
    second, every step's totals and its percentiles over the last ~10 s: counts and failures
    are differences across the window, percentiles the median and max of the 10 s blocks in it.
    """
    if not path.exists():
        return {}
    rows: dict[str, list[dict[str, str]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] in WINDOW_STEPS:
                rows.setdefault(row["Name"], []).append(row)
    out: dict[str, Any] = {}
    for name, rs in rows.items():
        def last_at(t: float, rs: list[dict[str, str]] = rs) -> dict[str, str] | None:
            before = [r for r in rs if int(r["Timestamp"]) <= t]
            return before[-1] if before else None

        a, b = last_at(start), last_at(end)
        if b is None:
            continue
        n0, f0 = (int(a["Total Request Count"]), int(a["Total Failure Count"])) if a else (0, 0)
        blocks = [r for r in (last_at(t) for t in range(int(start) + 10, int(end) + 1, 10)) if r is not None]
        pct = {q: [float(r[q]) for r in blocks if r[q] not in ("", "N/A")] for q in ("50%", "95%", "99%")}
        out[name] = {
            "count": int(b["Total Request Count"]) - n0,
            "failures": int(b["Total Failure Count"]) - f0,
            "per_s": round((int(b["Total Request Count"]) - n0) / (end - start), 1),
            **{f"p{q[:-1]}_ms_median": statistics.median(v) if v else None for q, v in pct.items()},
            **{f"p{q[:-1]}_ms_max": max(v) if v else None for q, v in pct.items()},
            "blocks_10s": len(blocks),
        }
    return out


def digest(summ: dict[str, Any]) -> dict[str, Any]:
    """What a capacity table needs from summary.json: messages, the talk's steps, the failures."""
    steps = summ.get("steps", {})
    return {
        "messages": summ.get("messages"),
        "steps_ms": {n: {k: steps[n].get(k) for k in ("count", "failures", "p50_ms", "p95_ms", "p99_ms")}
                     for n in STEPS if n in steps},
        "phases": {k: {"sessions": v["sessions"], "failures": v["failures"], "interrupted": v.get("interrupted"),
                       "categories": v["categories"]} for k, v in summ["phases"].items()},
        "sockets": summ.get("sockets"),
        "conversations": summ.get("conversations"),
        "duration_s": dig(summ, "run.duration_s"),
    }


def reconcile(summ: dict[str, Any], led: dict[str, Any]) -> dict[str, Any]:
    """The client's counts against the emulator's.

    Each message starts with its COMPOSING state (``--lp-typing``), so ``typing_sent`` counts the
    messages the client began; every one should have reached the emulator. Those neither counted
    sent nor failed were in flight when the stop ended their session.
    """
    m = summ.get("messages") or {}
    pub_fail = dig(summ, "steps.publish.failures") or 0
    content = dig(led, "messages.consumer.content") or 0
    return {
        "client_began": m.get("typing_sent"), "client_sent": m.get("sent"), "publish_failures": pub_fail,
        "ledger_consumer_content": content,
        "every_message_reached_emulator": m.get("typing_sent") == content,
        "in_flight_at_stop": content - (m.get("sent") or 0) - pub_fail,
        "client_received": m.get("received"), "ledger_agent_content": dig(led, "messages.agent.content"),
        "ledger_typing_from_consumers": dig(led, "messages.consumer.typing"),
    }


def plan_of(args: argparse.Namespace) -> list[tuple[int, float]]:
    runs = [(int(u), float(i)) for u, i in (x.strip().split("@") for x in args.only.split(",") if x.strip())]
    if not args.no_baseline:
        for users in sorted({u for u, i in runs if i}):
            if (users, 0.0) not in runs:
                runs.insert(runs.index(next(r for r in runs if r[0] == users)), (users, 0.0))
    return runs


def struggling(res: dict[str, Any], latency_limit_ms: float) -> bool:
    """Falling behind in the window: locust at >= 90 % of its core, under 95 % of the offered rate, a
    publish or reply failing (the whole run's counts would include the ramp and the stop), or the
    publish's p95 (median of the window's 10 s blocks) over ``latency_limit_ms``."""
    w = res.get("window")
    if w is None:
        return True
    ws = res.get("window_steps") or {}
    failed = sum((ws.get(n) or {}).get("failures", 0) for n in ("publish", "message-round-trip"))
    p95 = dig(ws, "publish.p95_ms_median") or 0.0
    return ("locust" in w["saturated"] or (w["achieved_vs_offered"] or 1) < 0.95 or failed > 0
            or p95 > latency_limit_ms)


def line(res: dict[str, Any]) -> str:
    if "error" in res:
        return "ERROR " + res["error"]
    w, m = res["window"], dig(res, "summary.messages") or {}
    st = res.get("window_steps") or {}
    return (f"{res['sessions']} sessions @ {res['interval_s']:g} s: {w['messages_per_s']} msg/s "
            f"(offered {res['offered_msg_per_s']}), replies {w['replies_per_s']}/s; locust {w['locust_cpu_pct']}% "
            f"emu {w['emulator_cpu_pct']}% saturated {w['saturated']}; rss {w['rss_per_session_kb']} KB/session; "
            f"window publish p50/p95 {dig(st, 'publish.p50_ms_median')}/{dig(st, 'publish.p95_ms_median')} ms, round trip "
            f"{dig(st, 'message-round-trip.p50_ms_median')}/{dig(st, 'message-round-trip.p95_ms_median')} ms, "
            f"failures {dig(st, 'publish.failures')}/{dig(st, 'message-round-trip.failures')}; whole run: "
            f"sent {m.get('sent')} replied {m.get('replied')} lost {m.get('lost')}; "
            f"no reply {dig(res, 'summary.phases.socket.categories.no reply') or 0}; gen2 gc "
            f"{dig(res, 'gc.gen2.count')} x {dig(res, 'gc.gen2.median_ms')} ms ({dig(res, 'gc.gen2.share_pct')} % of the window)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="1000@2,10000@10", help="runs, SESSIONS@INTERVAL_S (0: silent)")
    ap.add_argument("--no-baseline", action="store_true", help="no silent run for each talking session count")
    ap.add_argument("--knee", action=argparse.BooleanOptionalAction, default=True,
                    help="step the interval of the largest talking run to find where locust saturates")
    ap.add_argument("--latency-limit-ms", type=float, default=500.0,
                    help="a window whose publish p95 is above this is past the knee (default 500)")
    ap.add_argument("--quick", action="store_true", help="200 and 1,000 sessions, 15 s window, no knee")
    ap.add_argument("--window", type=float, default=60.0, help="measured seconds (default 60)")
    ap.add_argument("--spawn-rate", type=float, default=500)
    ap.add_argument("--reply-delay", default="50", help="--agent-reply-delay of the emulator (ms; default 50)")
    ap.add_argument("--reply-timeout", type=float, default=10.0)
    ap.add_argument("--budget", type=float, default=1800.0, help="no new run starts past this many seconds")
    ap.add_argument("--locust-cpus", default="1")
    ap.add_argument("--emulator-cpus", default="0")
    ap.add_argument("--gc-probe", action=argparse.BooleanOptionalAction, default=True,
                    help="time the locust process's garbage collections (a sitecustomize on its PYTHONPATH)")
    ap.add_argument("--freeze-runs", default="", metavar="SESSIONS@INTERVAL_S,...",
                    help="after the rest, these runs again with gc.freeze() in locust once every socket is open")
    ap.add_argument("--locust-env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra environment for the locust processes (A/B runs, probes); repeatable")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    LOCUST_ENV.update(dict(item.split("=", 1) for item in args.locust_env))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the finally blocks stop what we started
    if args.quick:
        args.only, args.window, args.knee = "200@1,1000@5", 15.0, False
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / "chat-capacity.json"
    work = Path(tempfile.mkdtemp(prefix="lp-chat-capacity-"))
    if args.freeze_runs and not args.gc_probe:
        ap.error("--freeze-runs needs the GC probe")
    (work / "gcprobe").mkdir()
    (work / "gcprobe" / "sitecustomize.py").write_text(GC_PROBE)
    doc: dict[str, Any] = {
        "command": "python bench/chat_capacity.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"python": platform.python_version(), "cpus": os.cpu_count(), "machine_before": machine_state()},
        "pinning": {"locust": args.locust_cpus, "emulator": args.emulator_cpus},
        "session_args": SESSION, "locust_env": LOCUST_ENV, "reply_delay_ms": args.reply_delay, "window_s": args.window,
        "saturated_at_pct": SATURATED_PCT, "latency_limit_ms": args.latency_limit_ms, "tree": tree_state(), "runs": [],
    }
    started = time.monotonic()

    def go(users: int, interval: float, freeze: bool = False) -> dict[str, Any] | None:
        if time.monotonic() - started > args.budget:
            doc.setdefault("skipped", []).append(f"{users}@{interval:g}" + (" freeze" if freeze else ""))
            return None
        before = machine_state()
        t0 = time.monotonic()
        try:
            res = run_chat(args, work, users, interval, freeze)
        except Exception as exc:  # recorded, the next run still goes
            res = {"tag": f"s{users}-i{interval:g}", "sessions": users, "interval_s": interval,
                   "error": f"{type(exc).__name__}: {exc}"}
        res["machine_before"], res["machine_after"] = before, machine_state()
        res["wall_s"] = round(time.monotonic() - t0, 1)
        doc["runs"].append(res)
        print(f"[{time.monotonic() - started:6.1f}s] {line(res)}", file=sys.stderr, flush=True)
        return res

    try:
        plan = plan_of(args)
        results = {(u, i): go(u, i) for u, i in plan}
        doc["knee"] = []
        for users, interval in ([(u, i) for u, i in plan if i] if args.knee else []):
            res = results[(users, interval)]
            if res is None:
                continue
            up = struggling(res, args.latency_limit_ms)
            knee: dict[str, Any] = {"sessions": users, "direction": "longer interval" if up else "shorter interval",
                                    "tried": [interval], "struggling": [up]}
            for factor in ((1.5, 2.0, 3.0) if up else (0.5, 0.25, 0.15)):
                r = go(users, round(interval * factor, 2))
                if r is None:
                    break
                knee["tried"].append(round(interval * factor, 2))
                knee["struggling"].append(struggling(r, args.latency_limit_ms))
                if knee["struggling"][-1] != up:
                    break
            doc["knee"].append(knee)
        for spec in (x.strip() for x in args.freeze_runs.split(",") if x.strip()):
            users, interval = spec.split("@")
            go(int(users), float(interval), freeze=True)
    finally:
        doc["total_wall_s"] = round(time.monotonic() - started, 1)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {out} ({doc['total_wall_s']} s)", file=sys.stderr)
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
