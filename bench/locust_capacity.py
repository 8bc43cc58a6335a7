"""Capacity of the harness under real Locust processes: held sessions, ramp, churn, --processes.

    .venv/bin/python bench/locust_capacity.py --quick            # smoke check, < 60 s
    .venv/bin/python bench/locust_capacity.py                    # everything, 2 repeats (~15 min)
    .venv/bin/python bench/locust_capacity.py --only hold30 --repeats 3
    .venv/bin/python bench/locust_capacity.py --only churn,naive-churn --churn-users 200

Every measurement is a real ``locust -f locustfile.py --headless`` process pinned to one core
(``taskset -c 1``) against ``lp-harness emulator`` started separately and pinned to the other
(``taskset -c 0``), with ``LP_ACCOUNT=bench LP_IDP=<url> LP_ASYNCMESSAGINGENT=<url>`` and
``--lp-reports-dir`` under a temporary folder. While it runs the script samples, every
0.1-0.5 s, the emulator's ``GET /admin/ledger`` and psutil ``cpu_times`` (user+system) of
both process trees and the RSS of the locust tree. CPU % is of one core; a process tree at
>= 90 % of the cores it is pinned to is reported as saturated.

Scenarios (``--only``, comma separated):

- ``hold30``: ``--hold30-users`` (18,000) sessions at 30 s pings, ``--lp-hold`` longer than the
  run; once the ledger shows them all open, a window of one ping interval (every socket pings
  once in it) gives CPU while holding and RSS per session = (RSS at the end of the window -
  RSS before the first request) / sessions. The ramp to that count (first socket accepted to
  the last one) is the *ramp* rate. Locust is then stopped with SIGTERM (its graceful path:
  users close conversations and sockets, reports are written); summary.json's
  sockets.peak_open is read back.
- ``hold5``: the same with ``--hold5-users`` (10,000) sessions at 5 s pings (window 4 pings).
- ``churn``: ``--lp-hold 0`` (full sessions back to back) with ``--churn-users`` users; after a
  warm-up, a window's completed sessions (ledger ``cm.UpdateConversationField`` ok) / window,
  and per client core = sessions / client CPU seconds in the window. The whole run's rate
  from summary.json (close-conversation count / run duration) is reported next to it.
- ``naive-churn``: the same with ``-f bench/naive_locustfile.py`` (HttpUser + blocking
  websocket-client, ``LP_HOLD=0``); ratios against ``churn`` are reported.
- ``naive-hold``: ``--naive-hold-users`` naive sessions at 5 s pings (RSS and CPU per session).
- ``procs``: ``locust --processes 2`` with ``--procs-users`` (24,000: more than one process's
  20,000 open files allow) against ``lp-harness emulator --processes 2`` at 30 s pings.

Bounded: at most 30,000 users, every locust run has ``-t`` and a wall-clock kill; only the
processes this script started are signalled, by PID. Everything on 127.0.0.1.
Output: ``--out`` (default bench/results/locust-capacity.json, or locust-capacity-quick.json).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import platform
import signal
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

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
MAX_USERS = 30_000
SATURATED_PCT = 90.0
CLOSE_TYPE = "cm.UpdateConversationField"
LOCUST_ENV: dict[str, str] = {}  # --locust-env, for A/B runs (e.g. GEVENT_RESOLVER=block)


# ====================================================================== processes
class Tree:
    """A process started by this script (and its children, found while it runs), by PID only."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_path: Path, capture_first_line: bool) -> None:
        self.name = name
        self.cmd = cmd
        self.log = open(log_path, "wb")  # noqa: SIM115 -- closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_first_line else self.log,
            stderr=self.log,
            start_new_session=True,  # a Ctrl-C on this script does not reach it: we stop it, by PID
        )
        self.pids: set[int] = {self.proc.pid}
        self._procs: dict[int, psutil.Process] = {self.proc.pid: psutil.Process(self.proc.pid)}
        self._cpu_gone = 0.0  # CPU of members that exited
        self._last: dict[int, float] = {}
        self.first_line = ""
        if capture_first_line:
            assert self.proc.stdout is not None
            self.first_line = self.proc.stdout.readline().decode().strip()
            threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.write(line)

    def refresh(self) -> None:
        """Pick up forked children (locust --processes, emulator --processes)."""
        try:
            for child in self._procs[self.proc.pid].children(recursive=True):
                if child.pid not in self._procs:
                    self._procs[child.pid] = child
                    self.pids.add(child.pid)
        except psutil.Error:
            pass

    def cpu_s(self) -> float:
        """user+system seconds of every member so far (exited members keep their last reading)."""
        total = 0.0
        for pid, proc in list(self._procs.items()):
            try:
                t = proc.cpu_times()
                self._last[pid] = t.user + t.system
            except psutil.Error:
                pass
            total += self._last.get(pid, 0.0)
        return total

    def rss(self) -> int:
        total = 0
        for proc in list(self._procs.values()):
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def member_stats(self) -> list[dict[str, Any]]:
        out = []
        for pid, proc in self._procs.items():
            with contextlib.suppress(psutil.Error):
                out.append({"pid": pid, "rss_mb": round(proc.memory_info().rss / 2**20, 1), "fds": proc.num_fds()})
        return out

    def running(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL; then any child we saw that is still alive, by its PID."""
        if self.running():
            self.signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.signal(signal.SIGKILL)
                self.wait(5.0)
        for pid in self.pids - {self.proc.pid}:
            proc = self._procs[pid]
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    proc.kill()
        self.log.close()
        return self.proc.returncode


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LP_", "LOCUST_"))}
    env["PYTHONUNBUFFERED"] = "1"
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env.pop(k, None)
    return env


def start_emulator(work: Path, cpus: str, processes: int, tag: str,
                   launcher: list[str] | None = None) -> tuple[Tree, str]:
    """``launcher``: what runs the emulator in place of ``lp-harness emulator`` (a profiling wrapper)."""
    launch = launcher or [str(VENV_BIN / "lp-harness"), "emulator"]
    cmd = ["taskset", "-c", cpus, *launch, "--host", "127.0.0.1", "--port", "0",
           "--idle-timeout", "900", "--log-level", "WARNING"]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    emu = Tree("emulator", cmd, clean_env(), work / f"{tag}-emulator.log", capture_first_line=True)
    if not emu.first_line.startswith("http://"):
        emu.stop()
        raise RuntimeError(f"emulator did not start: {emu.first_line!r} (see {work / f'{tag}-emulator.log'})")
    ledger(emu.first_line)  # answers
    emu.refresh()
    return emu, emu.first_line


def ledger(url: str, timeout: float = 10.0) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/admin/ledger", timeout=timeout) as r:  # noqa: S310 -- 127.0.0.1 only
        return json.loads(r.read())


def start_locust(work: Path, tag: str, url: str, cpus: str, users: int, rate: float, run_time_s: int,
                 extra: list[str], naive: bool = False, processes: int = 1, env_extra: dict[str, str] | None = None) -> Tree:
    users = min(users, MAX_USERS)
    env = clean_env()
    env.update({"LP_ACCOUNT": "bench", "LP_IDP": url, "LP_ASYNCMESSAGINGENT": url})
    env.update(env_extra or {})
    env.update(LOCUST_ENV)
    cmd = ["taskset", "-c", cpus, str(VENV_BIN / "locust"), "--headless", "--only-summary", "--loglevel", "WARNING",
           "-u", str(users), "-r", str(rate), "-t", f"{run_time_s}s"]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    if naive:
        # --stop-timeout: websocket-client's close() swallows GreenletExit (a bare except), so a naive user
        # killed in the middle of a close carries on forever; a graceful stop lets it finish its session.
        cmd += ["-f", "bench/naive_locustfile.py", "--host", url, "--stop-timeout", "10", "--csv", str(work / f"{tag}-csv")]
    else:
        cmd += ["-f", "locustfile.py", "--lp-reports-dir", str(work / f"{tag}-reports"), *extra]
    return Tree("locust", cmd, env, work / f"{tag}-locust.log", capture_first_line=False)


def summary_of(work: Path, tag: str) -> dict[str, Any] | None:
    found = sorted(glob.glob(str(work / f"{tag}-reports" / "*" / "summary.json")))
    if not found:
        return None
    return json.loads(Path(found[-1]).read_text())


# ====================================================================== sampling
class Sampler:
    """Samples the ledger and both process trees; keeps (t, sample) rows."""

    def __init__(self, url: str, locust: Tree, emu: Tree) -> None:
        self.url, self.locust, self.emu = url, locust, emu
        self.rows: list[dict[str, Any]] = []
        self.ledger_errors = 0

    def sample(self) -> dict[str, Any]:
        self.locust.refresh()
        row: dict[str, Any] = {"t": time.monotonic(), "loc_cpu": self.locust.cpu_s(), "emu_cpu": self.emu.cpu_s(),
                               "loc_rss": self.locust.rss()}
        try:
            led = ledger(self.url, timeout=5.0)
        except OSError:
            self.ledger_errors += 1
            led = None
        if led is not None:
            eps = led.get("endpoints", {})
            row.update({
                "open": led["sockets"]["open"],
                "accepted": led["sockets"]["accepted"],
                "authorize": eps.get("anonymous-authorize", {}).get("received", 0),
                "closed_ok": eps.get(CLOSE_TYPE, {}).get("ok", 0),
                "ponged": led["pings"]["ponged"],
                "rejected": led["sockets"]["rejected"],
                "fd_limit_hits": led["sockets"].get("fd_limit_hits", 0),
            })
        self.rows.append(row)
        return row

    def until(self, pred: Any, timeout: float, every: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.sample()
            if "open" in row and pred(row):
                return row
            if not self.locust.running():
                return None
            time.sleep(every)
        return None

    def hold_for(self, seconds: float, every: float) -> dict[str, Any]:
        end = time.monotonic() + seconds
        row = self.sample()
        while time.monotonic() < end:
            time.sleep(min(every, max(0.0, end - time.monotonic())))
            row = self.sample()
        return row


def window(a: dict[str, Any], b: dict[str, Any], loc_cores: int, emu_cores: int) -> dict[str, Any]:
    dt = b["t"] - a["t"]
    loc = 100.0 * (b["loc_cpu"] - a["loc_cpu"]) / dt
    emu = 100.0 * (b["emu_cpu"] - a["emu_cpu"]) / dt
    saturated = [n for n, pct, cores in (("locust", loc, loc_cores), ("emulator", emu, emu_cores))
                 if pct >= SATURATED_PCT * cores]
    return {"seconds": round(dt, 2), "locust_cpu_pct": round(loc, 1), "emulator_cpu_pct": round(emu, 1),
            "locust_cpu_s": b["loc_cpu"] - a["loc_cpu"], "saturated": saturated}


def cores_of(cpus: str) -> int:
    return len(cpus.split(","))


# ====================================================================== scenarios
def run_hold(args: argparse.Namespace, work: Path, tag: str, users: int, ping: float, pings_in_window: int,
             naive: bool = False, processes: int = 1, emu_processes: int = 1) -> dict[str, Any]:
    """Ramp to ``users`` held sessions, hold a window of ``pings_in_window`` ping intervals, stop."""
    users = min(users, MAX_USERS)
    win_s = ping * pings_in_window
    ramp_budget = max(20.0, users / 200.0)
    bound = int(ramp_budget + win_s + 30)
    emu, url = start_emulator(work, args.emulator_cpus, emu_processes, tag)
    locust = None
    try:
        extra = ["--lp-hold", str(bound + 120), "--lp-ping-interval", str(ping), "--lp-pong-timeout", str(ping)]
        env_extra = {"LP_HOLD": str(bound + 120), "LP_PING_INTERVAL": str(ping)} if naive else None
        locust = start_locust(work, tag, url, args.locust_cpus, users, args.spawn_rate, bound, extra,
                              naive=naive, processes=processes, env_extra=env_extra)
        s = Sampler(url, locust, emu)
        t_start = time.monotonic()
        before = s.until(lambda r: r["authorize"] > 0, 60.0, 0.05)  # locust booted, first request in
        rss_base = max((r["loc_rss"] for r in s.rows if r.get("authorize", 1) == 0), default=None)
        boot_s = (before["t"] - t_start) if before else None
        first = s.until(lambda r: r["accepted"] > 0, 30.0, 0.05)
        full = s.until(lambda r: r["open"] >= users or r["rejected"] or r["fd_limit_hits"], ramp_budget, 0.1)
        result: dict[str, Any] = {"tag": tag, "users": users, "ping_s": ping, "naive": naive,
                                  "locust_processes": processes, "emulator_processes": emu_processes,
                                  "boot_s": round(boot_s, 2) if boot_s else None}
        if first is None or full is None or full["open"] < users:
            last = s.rows[-1]
            result["error"] = (f"only {last.get('open')} of {users} sockets open after {ramp_budget:.0f} s "
                               f"(rejected {last.get('rejected')}, emulator fd-limit hits {last.get('fd_limit_hits')}, "
                               f"locust running {locust.running()})")
            result["locust_members"] = locust.member_stats()
            result["emulator_members"] = emu.member_stats()
            return result
        ramp_s = full["t"] - first["t"]
        rw = window(first, full, cores_of(args.locust_cpus), cores_of(args.emulator_cpus))
        result["ramp"] = {"seconds": round(ramp_s, 2), "sessions_per_s": round(users / ramp_s, 1), **rw,
                          "client_cpu_ms_per_session": round(1000 * rw["locust_cpu_s"] / users, 3),
                          "sessions_per_client_core_s": round(users / rw["locust_cpu_s"], 1) if rw["locust_cpu_s"] else None}
        settle = s.hold_for(3.0, 0.5)
        end = s.hold_for(win_s, 1.0)
        w = window(settle, end, cores_of(args.locust_cpus), cores_of(args.emulator_cpus))
        held = min(r["open"] for r in s.rows if r["t"] >= settle["t"] and "open" in r)
        rss_end = end["loc_rss"]
        result["hold"] = {
            **w,
            "sockets_open_min": held,
            "pongs_per_s": round((end["ponged"] - settle["ponged"]) / w["seconds"], 1),
            "locust_rss_mb": round(rss_end / 2**20, 1),
            "locust_rss_base_mb": round(rss_base / 2**20, 1) if rss_base else None,
            "rss_per_session_kb": round((rss_end - rss_base) / 1024 / users, 2) if rss_base else None,
            "cpu_ms_per_session_per_min": round(60_000 * w["locust_cpu_s"] / w["seconds"] / users, 4),
        }
        result["locust_members"] = locust.member_stats()
        result["emulator_members"] = emu.member_stats()
        t_stop = time.monotonic()
        locust.signal(signal.SIGTERM)  # graceful: close conversations and sockets, write reports
        rc = locust.wait(120.0)
        result["stop"] = {"seconds": round(time.monotonic() - t_stop, 2), "locust_exit": rc}
        after = ledger(url)
        result["after"] = {"sockets": after["sockets"], "conversations": after["conversations"]}
        summ = None if naive else summary_of(work, tag)
        if summ is not None:
            result["summary"] = {"sockets": summ["sockets"], "pings": summ["pings"],
                                 "phases": {k: {"sessions": v["sessions"], "failures": v["failures"],
                                                "categories": v["categories"]} for k, v in summ["phases"].items()},
                                 "steps_ms": step_latencies(summ)}
        return result
    finally:
        if locust is not None:
            locust.stop()
        emu.stop()


def step_latencies(summ: dict[str, Any]) -> dict[str, Any]:
    """p50/p95/failures of the steps a ramp loads most: a saturated client shows here first."""
    keep = ("connect", "request-conversation", "time-to-conversation", "ping")
    return {name: {k: st.get(k) for k in ("count", "failures", "p50_ms", "p95_ms", "p99_ms")}
            for name, st in summ.get("steps", {}).items() if name in keep}


def run_churn(args: argparse.Namespace, work: Path, tag: str, naive: bool) -> dict[str, Any]:
    users, warm, win_s = args.churn_users, args.churn_warmup, args.churn_window
    bound = int(warm + win_s + args.churn_margin)
    emu, url = start_emulator(work, args.churn_emulator_cpus, args.churn_emulator_processes, tag)
    locust = None
    try:
        extra = ["--lp-hold", "0", "--lp-ping-interval", "60"]
        locust = start_locust(work, tag, url, args.locust_cpus, users, users, bound, extra, naive=naive,
                              env_extra={"LP_HOLD": "0"} if naive else None)
        s = Sampler(url, locust, emu)
        first = s.until(lambda r: r["closed_ok"] > 0, 60.0, 0.05)
        result: dict[str, Any] = {"tag": tag, "users": users, "naive": naive,
                                  "emulator_processes": args.churn_emulator_processes,
                                  "emulator_cpus": args.churn_emulator_cpus, "locust_cpus": args.locust_cpus}
        if first is None:
            result["error"] = "no session completed"
            return result
        a = s.hold_for(warm, 0.5)
        b = s.hold_for(win_s, 0.5)
        w = window(a, b, cores_of(args.locust_cpus), cores_of(args.churn_emulator_cpus))
        done = b["closed_ok"] - a["closed_ok"]
        result["window"] = {
            **w,
            "sessions": done,
            "sessions_per_s": round(done / w["seconds"], 1),
            "sessions_per_client_core_s": round(done / w["locust_cpu_s"], 1) if w["locust_cpu_s"] else None,
            "client_cpu_ms_per_session": round(1000 * w["locust_cpu_s"] / done, 3) if done else None,
            "emulator_cpu_ms_per_session": round(10 * w["emulator_cpu_pct"] * w["seconds"] / done, 3) if done else None,
        }
        rc = locust.wait(bound + 60.0)
        result["locust_exit"] = rc
        after = ledger(url)
        result["after"] = {"sockets_open": after["sockets"]["open"], "conversations": after["conversations"],
                           "rejected": after["sockets"]["rejected"]}
        summ = None if naive else summary_of(work, tag)
        if summ is not None:
            steps = summ["steps"]
            count = steps.get("close-conversation", {}).get("count", 0)
            dur = summ["run"].get("duration_s") or summ["run"].get("duration")
            result["summary"] = {"close_conversation_count": count, "duration_s": dur,
                                 "sessions_per_s": round(count / dur, 1) if dur else None,
                                 "failures": {k: v["failures"] for k, v in summ["phases"].items()}}
        return result
    finally:
        if locust is not None:
            locust.stop()
        emu.stop()


# ====================================================================== driver
def spread(values: list[float]) -> dict[str, Any]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {}
    return {"median": round(statistics.median(vals), 2), "min": round(min(vals), 2), "max": round(max(vals), 2),
            "runs": vals}


def dig(d: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


AGG = {
    "hold": ["ramp.sessions_per_s", "ramp.locust_cpu_pct", "ramp.emulator_cpu_pct", "ramp.client_cpu_ms_per_session",
             "ramp.sessions_per_client_core_s", "hold.sockets_open_min",
             "hold.locust_cpu_pct", "hold.emulator_cpu_pct", "hold.locust_rss_mb", "hold.rss_per_session_kb",
             "hold.pongs_per_s", "summary.sockets.peak_open", "stop.seconds",
             "summary.phases.socket.failures", "summary.steps_ms.request-conversation.p50_ms",
             "summary.steps_ms.request-conversation.p95_ms", "summary.steps_ms.connect.p50_ms"],
    "churn": ["window.sessions_per_s", "window.sessions_per_client_core_s", "window.locust_cpu_pct",
              "window.emulator_cpu_pct", "window.client_cpu_ms_per_session", "window.emulator_cpu_ms_per_session",
              "summary.sessions_per_s"],
}


def tree_state() -> dict[str, Any]:
    """Which code was measured: HEAD and the files that differ from it (the tree is shared and moving)."""
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {"head": git("rev-parse", "--short", "HEAD"), "changed": git("status", "--short").splitlines()}


def others_running() -> bool:
    """Is the other capacity bench (bench/emulator_capacity.py) running? Its load would distort ours."""
    return bool(subprocess.run(["pgrep", "-f", "emulator_capacity"], capture_output=True, text=True).stdout.split())


class Watch(threading.Thread):
    """Notes whether the other bench ran at any moment during one of our runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen = False
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(2.0):
            self.seen = self.seen or others_running()


def wait_quiet(limit_s: float) -> float:
    """Wait (at most ``limit_s``) until the other bench is gone and both cores are idle-ish."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        if not others_running() and max(psutil.cpu_percent(interval=1.0, percpu=True)) < 25.0:
            break
        time.sleep(4.0)
    return round(time.monotonic() - start, 1)


def machine_state() -> dict[str, Any]:
    busy = psutil.cpu_percent(interval=0.5, percpu=True)
    return {"loadavg": [round(x, 2) for x in os.getloadavg()], "per_cpu_busy_pct": busy,
            "emulator_capacity_running": others_running()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small counts and windows, one repeat (< 60 s)")
    ap.add_argument("--only", default="hold30,hold5,churn,naive-churn,naive-hold,procs")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--hold30-users", type=int, default=18_000)
    ap.add_argument("--hold5-users", type=int, default=10_000)
    ap.add_argument("--naive-hold-users", type=int, default=5_000)
    ap.add_argument("--procs-users", type=int, default=24_000)
    ap.add_argument("--spawn-rate", type=float, default=1000, help="locust -r for the hold runs")
    ap.add_argument("--churn-users", type=int, default=200)
    ap.add_argument("--churn-warmup", type=float, default=4.0)
    ap.add_argument("--churn-window", type=float, default=15.0)
    ap.add_argument("--churn-margin", type=float, default=8.0, help="seconds of -t after the window")
    ap.add_argument("--locust-cpus", default="1")
    ap.add_argument("--emulator-cpus", default="0")
    ap.add_argument("--churn-emulator-cpus", default="0")
    ap.add_argument("--churn-emulator-processes", type=int, default=1)
    ap.add_argument("--locust-env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra environment for the locust processes (A/B runs); repeatable")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                    help="before each run wait up to S s for bench/emulator_capacity.py to finish and the cores to idle")
    ap.add_argument("--out")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, locust reports)")
    args = ap.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop the locust and emulator we started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    LOCUST_ENV.update(dict(item.split("=", 1) for item in args.locust_env))
    wanted = [x.strip() for x in args.only.split(",") if x.strip()]
    if args.quick:
        args.repeats = 1
        args.hold30_users, args.hold5_users, args.naive_hold_users, args.procs_users = 1500, 1500, 500, 2000
        args.churn_warmup, args.churn_window, args.churn_margin = 1.5, 3.0, 3.0
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / (
        "locust-capacity-quick.json" if args.quick else "locust-capacity.json")
    work = Path(tempfile.mkdtemp(prefix="lp-locust-capacity-"))
    doc: dict[str, Any] = {
        "command": "python bench/locust_capacity.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"python": platform.python_version(), "cpus": os.cpu_count(),
                 "open_files_limit": __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE),
                 "machine_before": machine_state()},
        "pinning": {"locust": args.locust_cpus, "emulator": args.emulator_cpus},
        "locust_env": LOCUST_ENV,
        "tree": tree_state(),
        "scenarios": {},
    }
    if doc["host"]["machine_before"]["emulator_capacity_running"]:
        print("warning: bench/emulator_capacity.py is running: numbers will be disturbed", file=sys.stderr)
    quick = args.quick

    plan: list[tuple[str, Any]] = []
    if "hold30" in wanted:
        plan.append(("hold30", lambda t: run_hold(args, work, t, args.hold30_users, 30.0 if not quick else 2.0, 1)))
    if "hold5" in wanted:
        plan.append(("hold5", lambda t: run_hold(args, work, t, args.hold5_users, 5.0 if not quick else 2.0, 4 if not quick else 1)))
    if "naive-hold" in wanted:
        plan.append(("naive-hold", lambda t: run_hold(args, work, t, args.naive_hold_users, 5.0 if not quick else 2.0, 4 if not quick else 1,
                                                      naive=True)))
    if "churn" in wanted:
        plan.append(("churn", lambda t: run_churn(args, work, t, naive=False)))
    if "naive-churn" in wanted:
        plan.append(("naive-churn", lambda t: run_churn(args, work, t, naive=True)))
    if "procs" in wanted:
        plan.append(("procs", lambda t: run_hold(args, work, t, args.procs_users, 30.0 if not quick else 2.0, 1,
                                                 processes=2, emu_processes=2)))
    started = time.monotonic()
    try:
        for rep in range(args.repeats):
            for name, fn in plan:
                tag = f"{name}-{rep + 1}"
                waited = wait_quiet(args.wait_quiet) if args.wait_quiet else 0.0
                before = machine_state()
                watch = Watch()
                watch.start()
                t0 = time.monotonic()
                try:
                    res = fn(tag)
                except Exception as exc:  # recorded, the next scenario still runs
                    res = {"tag": tag, "error": f"{type(exc).__name__}: {exc}"}
                watch.done.set()
                res["waited_for_quiet_s"] = waited
                res["machine_before"] = before
                res["machine_after"] = machine_state()
                res["disturbed"] = watch.seen or before["emulator_capacity_running"]
                res["wall_s"] = round(time.monotonic() - t0, 1)
                doc["scenarios"].setdefault(name, {"runs": []})["runs"].append(res)
                flag = " [DISTURBED: emulator_capacity ran]" if res["disturbed"] else ""
                print(f"[{time.monotonic() - started:6.1f}s] {tag}: {brief(name, res)}{flag}", file=sys.stderr, flush=True)
    finally:
        for name, entry in doc["scenarios"].items():
            keys = AGG["churn"] if "churn" in name else AGG["hold"]
            clean = [r for r in entry["runs"] if not r.get("disturbed")] or entry["runs"]
            entry["summary"] = {k: spread([dig(r, k) for r in clean]) for k in keys}
            entry["summary_runs"] = [r["tag"] for r in clean]
        churn, naive = doc["scenarios"].get("churn"), doc["scenarios"].get("naive-churn")
        if churn and naive:
            ratios = {}
            for k in ("window.sessions_per_s", "window.sessions_per_client_core_s"):
                a, b = churn["summary"].get(k, {}).get("median"), naive["summary"].get(k, {}).get("median")
                ratios[k] = round(a / b, 2) if a and b else None
            doc["churn_vs_naive"] = ratios
        doc["total_wall_s"] = round(time.monotonic() - started, 1)
        doc["work_dir"] = str(work) if args.keep else None
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {out} ({doc['total_wall_s']} s)", file=sys.stderr)
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    return 0


def brief(name: str, res: dict[str, Any]) -> str:
    if "error" in res:
        return "ERROR " + res["error"]
    if "churn" in name:
        w = res["window"]
        return (f"{w['sessions_per_s']}/s, {w['sessions_per_client_core_s']}/client-core-s, locust {w['locust_cpu_pct']}%"
                f" emulator {w['emulator_cpu_pct']}%, saturated {w['saturated']}")
    r, h = res["ramp"], res["hold"]
    return (f"ramp {r['sessions_per_s']}/s (locust {r['locust_cpu_pct']}% emu {r['emulator_cpu_pct']}%); "
            f"held {h['sockets_open_min']} locust {h['locust_cpu_pct']}% emu {h['emulator_cpu_pct']}% "
            f"rss {h['locust_rss_mb']} MB ({h['rss_per_session_kb']} KB/session); "
            f"peak {dig(res, 'summary.sockets.peak_open')}; stop {dig(res, 'stop.seconds')} s; "
            f"socket-phase failures {dig(res, 'summary.phases.socket.failures')}, request-conversation p50/p95 "
            f"{dig(res, 'summary.steps_ms.request-conversation.p50_ms')}/{dig(res, 'summary.steps_ms.request-conversation.p95_ms')} ms")


if __name__ == "__main__":
    sys.exit(main())
