"""The load generator's own health: CPU, memory, file descriptors and event-loop lag.

A load test is only as true as its load generator: when the locust process runs out of CPU, or
its gevent loop runs late, every latency it measures (ping RTTs above all) grows by the time the
loop was busy, and the target looks slower than it is. Every locust process (local, master,
worker) runs one :class:`LoadGenMonitor`: a periodic gevent timer measures how late the loop
wakes it (the lag), and psutil samples CPU, RSS and the open file descriptors (each socket is
one, and the per-process limit caps how many sessions a process can hold).

Workers send their latest snapshot to the master with every stats report
(``report_to_master``/``worker_report``); :func:`merged` gives the master's view: its own row,
one per worker, and the workers' total. A process is *saturated* when its CPU is at or above
:data:`CPU_SATURATED` percent of a core, its loop is late by :data:`LAG_SATURATED_MS` on
average over the last :data:`WINDOW_S` seconds or stalled :data:`LAG_SPIKE_MS` at once since the
last sample (a full garbage collection of a big heap: every latency across it is that much longer),
its loop has work :data:`LOOP_BUSY_SATURATED`
percent of the time, or it is starved: its loop had work :data:`STARVED_SATURATED` percent of
the time more than it ran on the CPU (:mod:`harness.user.loopbusy`).
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import time
from collections import deque
from typing import Any, Final

import gevent
import psutil
from gevent.event import Event
from locust.runners import MasterRunner, WorkerRunner

from harness import heap
from harness.user.loadhealth import RunHealth, add_sample, section
from harness.user.loopbusy import LoopMeter, shares

log = logging.getLogger("lp-harness")

TICK_S: Final = 0.25  # the lag timer's period: short enough to see a busy loop, cheap enough to ignore
CPU_SAMPLE_S: Final = 2.0  # CPU/RSS/fds sampling period (psutil calls cost ~0.1 ms)
WINDOW_S: Final = 10.0  # lag statistics cover this many recent seconds
CPU_SATURATED: Final = 90.0  # percent of one core; a gevent process cannot use more than one
LAG_SATURATED_MS: Final = 50.0  # mean lateness of the loop over the window
LOOP_BUSY_SATURATED: Final = 75.0  # percent of wall time the loop has work: beyond it, it queues its own work
STARVED_SATURATED: Final = 15.0  # percent of wall time the loop had work but the process was off the CPU
LAG_SPIKE_MS: Final = 250.0  # a single late wake-up this long: the sample it falls in is saturated
FD_WARN_FRACTION: Final = 0.9  # open descriptors at 90% of the soft limit: new sockets will soon fail
STALE_AFTER_S: Final = 15.0  # a worker snapshot older than this is shown as stale
SAMPLE_INTERVAL_S: Final = 10.0  # the run over time: one sample of every process's total this often


def fd_limit() -> int | None:
    """The soft limit on open files of this process (None when unlimited or unknown)."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY else int(soft)


def assess(snapshot: dict[str, Any]) -> tuple[bool, list[str]]:
    """(saturated, reasons) for one process's snapshot; reasons also name non-saturating warnings."""
    saturated, reasons = False, []
    cpu = snapshot.get("cpu_percent") or 0.0
    lag = snapshot.get("lag_ms") or 0.0
    lag_max = snapshot.get("lag_max_ms") or 0.0
    stall = snapshot.get("lag_stall_ms") or 0.0
    if cpu >= CPU_SATURATED:
        saturated = True
        reasons.append(f"CPU {cpu:.0f}% >= {CPU_SATURATED:.0f}%")
    if lag >= LAG_SATURATED_MS:
        saturated = True
        reasons.append(f"event loop {lag:.0f} ms late on average >= {LAG_SATURATED_MS:.0f} ms")
    elif stall >= LAG_SPIKE_MS:
        saturated = True
        reasons.append(f"event loop stalled {stall:.0f} ms >= {LAG_SPIKE_MS:.0f} ms at once")
    elif lag_max >= LAG_SPIKE_MS:
        reasons.append(f"event loop stalled {lag_max:.0f} ms")
    busy, starved = snapshot.get("loop_busy_percent") or 0.0, snapshot.get("loop_starved_percent") or 0.0
    if starved >= STARVED_SATURATED:
        saturated = True
        reasons.append(
            f"starved of CPU: its loop had work {busy:.0f}% of the time but ran {busy - starved:.0f}% "
            "(another process shares its core)"
        )
    elif busy >= LOOP_BUSY_SATURATED:
        saturated = True
        reasons.append(f"loop busy {busy:.0f}% of the time >= {LOOP_BUSY_SATURATED:.0f}%")
    fds, limit = snapshot.get("fds"), snapshot.get("fd_limit")
    if fds is not None and limit and fds >= FD_WARN_FRACTION * limit:
        reasons.append(f"{fds} of {limit} file descriptors in use")
    return saturated, reasons


class LoadGenMonitor:
    """Samples this process; one per process, started at init and stopped when Locust quits."""

    def __init__(self, role: str = "local", tick_s: float = TICK_S, cpu_sample_s: float = CPU_SAMPLE_S) -> None:
        self.role = role
        self.tick_s = tick_s
        self.cpu_sample_s = cpu_sample_s
        self.process = psutil.Process()
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.fd_limit = fd_limit()
        self._lags: deque[tuple[float, float]] = deque()  # (monotonic time, lag ms)
        self._cpu = 0.0
        self._host_cpu = 0.0
        self._rss = 0
        self._fds: int | None = None
        self._busy = 0.0
        self._starved = 0.0
        self._stall = 0.0  # the longest late wake-up since the last sample
        self.loop = LoopMeter()
        self._busy_mark: tuple[float, float, float] | None = None  # (wall, idle, cpu seconds) at the last sample
        self._sampled_at = 0.0
        self._greenlet: gevent.Greenlet | None = None
        self._was_saturated = False
        self._cpu_primed = False
        self.ticked = Event()  # set after each lag measurement (tests wait on it)
        self.health = RunHealth(started_at=time.time())  # since the test started (reset_run)
        self.gc = heap.Pauses()  # the collector's pauses since the test started

    def reset_run(self) -> None:
        """A new test: the run-long health starts again (the live numbers carry on)."""
        self.health = RunHealth(started_at=time.time())
        self.gc.reset()

    # --- running
    def start(self) -> LoadGenMonitor:
        if self._greenlet is None or self._greenlet.dead:
            self.process.cpu_percent(None)  # the first call only sets psutil's reference point
            psutil.cpu_percent(None)
            self._sample(cpu=False)  # a CPU figure needs an interval: the first one comes after cpu_sample_s
            self.loop.start()
            self.gc.install()
            self._greenlet = gevent.spawn(self._run)
        return self

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        self.loop.stop()
        self.gc.remove()

    @property
    def running(self) -> bool:
        return self._greenlet is not None and not self._greenlet.dead

    def _run(self) -> None:
        next_sample = time.monotonic() + self.cpu_sample_s
        while True:
            before = time.monotonic()
            gevent.sleep(self.tick_s)
            now = time.monotonic()
            self.record_lag(now, max(0.0, (now - before - self.tick_s) * 1000.0))
            self.ticked.set()
            if now >= next_sample:
                next_sample = now + self.cpu_sample_s
                self._sample()

    def record_lag(self, now: float, lag_ms: float) -> None:
        self.health.record_lag(lag_ms)
        self._stall = max(self._stall, lag_ms)
        self._lags.append((now, lag_ms))
        while self._lags and self._lags[0][0] < now - WINDOW_S:
            self._lags.popleft()

    def _sample(self, cpu: bool = True) -> None:
        try:
            with self.process.oneshot():
                if cpu and not self._cpu_primed:
                    # The first interval after init holds Locust's own start-up (runner, target
                    # checks, first spawns): a 2-user run would read as "saturated". Measure from here.
                    self.process.cpu_percent(None)
                    self._cpu_primed = True
                elif cpu:
                    self._cpu = self.process.cpu_percent(None)
                if cpu:
                    self._measure_busy(self.process.cpu_times())
                self._rss = self.process.memory_info().rss
                self._fds = self.process.num_fds() if hasattr(self.process, "num_fds") else None
            if cpu:
                self._host_cpu = psutil.cpu_percent(None)
        except psutil.Error:  # never let monitoring take a run down
            return
        self._sampled_at = time.time()
        saturated, reasons = assess(self._live())  # not snapshot(): the run-long record is not needed here
        self._stall = 0.0  # the next sample judges its own interval's stalls
        cpu_now = self._cpu if cpu and self._cpu_primed else None
        self.health.record_sample(
            self._sampled_at, self.cpu_sample_s, cpu_now, self._rss, self._fds, reasons if saturated else None
        )
        if saturated and not self._was_saturated:
            log.warning(
                "load generator saturated (%s pid %s): %s -- its latency numbers are inflated; "
                "use more processes (--processes N) or fewer users per process",
                self.role,
                self.pid,
                "; ".join(reasons),
            )
        self._was_saturated = saturated

    def _measure_busy(self, times: Any) -> None:
        """The loop's busy and starved shares since the last CPU sample (the first sample only marks)."""
        mark = (time.perf_counter(), self.loop.idle_now(), times.user + times.system)
        if self._busy_mark is not None and self._cpu_primed:
            wall, idle, cpu = (now - then for now, then in zip(mark, self._busy_mark, strict=True))
            self._busy, self._starved = shares(wall, idle, cpu)
            self.health.record_busy(self._busy)
        self._busy_mark = mark

    # --- reporting
    def snapshot(self) -> dict[str, Any]:
        """This process's latest numbers, its verdict and its run-long record (plain JSON: it travels to the master)."""
        data = self._live()
        data["saturated"], data["reasons"] = assess(data)
        data["run"] = self.health.to_dict() | {"gc": self.gc.to_dict()}
        return data

    def _live(self) -> dict[str, Any]:
        """The latest numbers that :func:`assess` judges."""
        lags = [lag for _, lag in self._lags]
        return {
            "role": self.role,
            "host": self.host,
            "pid": self.pid,
            "cpu_percent": round(self._cpu, 1),
            "host_cpu_percent": round(self._host_cpu, 1),
            "rss_bytes": self._rss,
            "fds": self._fds,
            "fd_limit": self.fd_limit,
            "lag_ms": round(sum(lags) / len(lags), 2) if lags else 0.0,
            "lag_max_ms": round(max(lags), 2) if lags else 0.0,
            "lag_samples": len(lags),
            "lag_stall_ms": round(self._stall, 2),
            "loop_busy_percent": self._busy,
            "loop_starved_percent": self._starved,
            "at": self._sampled_at or time.time(),
        }


def total(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum of several processes: CPU, RSS and descriptors add up, the lag is the worst one."""
    fds = [p["fds"] for p in parts if p.get("fds") is not None]
    data: dict[str, Any] = {
        "role": "total",
        "processes": len(parts),
        "cpu_percent": round(sum(p.get("cpu_percent") or 0.0 for p in parts), 1),
        "rss_bytes": sum(p.get("rss_bytes") or 0 for p in parts),
        "fds": sum(fds) if fds else None,
        "fd_limit": None,  # per process: see each row
        "lag_ms": max((p.get("lag_ms") or 0.0 for p in parts), default=0.0),
        "lag_max_ms": max((p.get("lag_max_ms") or 0.0 for p in parts), default=0.0),
        "loop_busy_percent": max((p.get("loop_busy_percent") or 0.0 for p in parts), default=0.0),
        "loop_starved_percent": max((p.get("loop_starved_percent") or 0.0 for p in parts), default=0.0),
        "saturated": any(p.get("saturated") for p in parts),
    }
    data["reasons"] = [r for p in parts for r in p.get("reasons", [])]
    return data


# ---------------------------------------------------------------------------- Locust wiring
def monitor_of(environment: Any) -> LoadGenMonitor | None:
    return getattr(environment, "lp_loadgen", None)


def register(environment: Any) -> LoadGenMonitor:
    """Start this process's monitor and carry worker snapshots to the master (call from ``init``)."""
    existing = monitor_of(environment)
    if existing is not None:
        return existing
    runner = environment.runner
    role = "worker" if isinstance(runner, WorkerRunner) else "master" if isinstance(runner, MasterRunner) else "local"
    monitor = LoadGenMonitor(role).start()
    environment.lp_loadgen = monitor
    environment.lp_loadgen_parts = {}
    events = environment.events

    def on_report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
        data["lp_loadgen"] = monitor.snapshot()

    def on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
        part = data.get("lp_loadgen")
        if part is not None:
            environment.lp_loadgen_parts[client_id] = {**part, "received_at": time.time()}

    if role == "worker":
        events.report_to_master.add_listener(on_report_to_master)
    if role == "master":
        events.worker_report.add_listener(on_worker_report)
    events.quitting.add_listener(lambda **_: monitor.stop())
    environment.lp_loadgen_samples = []
    sampler: list[gevent.Greenlet] = []

    def on_test_start(**_: Any) -> None:
        monitor.reset_run()
        if role != "worker":  # the coordinator keeps the run over time
            environment.lp_loadgen_samples = []
            environment.lp_loadgen_started = time.time()
            sampler[:] = [gevent.spawn(_sample_every, environment, SAMPLE_INTERVAL_S)]

    def on_test_stop(**_: Any) -> None:
        for greenlet in sampler:
            greenlet.kill(block=False)
        sampler.clear()

    events.test_start.add_listener(on_test_start)
    events.test_stop.add_listener(on_test_stop)
    return monitor


def _sample_every(environment: Any, interval_s: float) -> None:
    while True:
        gevent.sleep(interval_s)
        _take_sample(environment)


def _take_sample(environment: Any) -> None:
    add_sample(environment.lp_loadgen_samples, sample_now(environment))


def sample_now(environment: Any, view: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every process's total now (``view``: :func:`merged`'s, if the caller has it), as one sample of the run."""
    view = view or merged(environment)
    total_ = view["total"]
    return {
        "t_s": round(time.time() - getattr(environment, "lp_loadgen_started", time.time()), 1),
        "cpu_percent": total_["cpu_percent"],
        "loop_lag_ms": total_["lag_ms"],
        "loop_lag_max_ms": total_["lag_max_ms"],
        "loop_busy_percent": total_["loop_busy_percent"],
        "rss_bytes": total_["rss_bytes"],
        "fds": total_["fds"],
        "saturated": view["saturated"],
    }


def summary_section(environment: Any, started: float, ended: float) -> dict[str, Any] | None:
    """``summary.json``'s ``load_generator`` (None where no monitor runs, e.g. a library use)."""
    if monitor_of(environment) is None:
        return None
    view = merged(environment)
    limits = {
        "cpu_percent": CPU_SATURATED,
        "loop_lag_ms": LAG_SATURATED_MS,
        "loop_busy_percent": LOOP_BUSY_SATURATED,
        "loop_starved_percent": STARVED_SATURATED,
        "window_s": WINDOW_S,
    }
    samples = list(getattr(environment, "lp_loadgen_samples", []))
    add_sample(samples, sample_now(environment, view))  # and where the run stands now
    return section(view["processes"], started, ended, samples, SAMPLE_INTERVAL_S, limits)


def merged(environment: Any) -> dict[str, Any]:
    """This process's health, or on a master its own row, one row per worker and the workers' total."""
    monitor = monitor_of(environment)
    own = monitor.snapshot() if monitor is not None else None
    rows: list[dict[str, Any]] = []
    workers: list[dict[str, Any]] = []
    if own is not None:
        rows.append({**own, "id": own["role"], "stale": False})
    parts: dict[str, dict[str, Any]] = getattr(environment, "lp_loadgen_parts", {}) or {}
    if parts:
        clients = getattr(environment.runner, "clients", None)
        live = set(clients.keys()) if clients is not None else set(parts)
        now = time.time()
        for number, client_id in enumerate(sorted(parts), start=1):
            if client_id not in live:
                continue  # a worker that left: its numbers no longer describe the run
            part = parts[client_id]
            stale = now - part.get("received_at", now) > STALE_AFTER_S
            workers.append({**part, "id": f"worker {number}", "client_id": client_id, "stale": stale})
        rows.extend(workers)
    overall = total(workers) if workers else (total([own]) if own is not None else total([]))
    if workers:
        overall["id"] = "workers total"
    else:
        overall["id"] = "total"
    everyone = rows
    saturated = [r for r in everyone if r.get("saturated")]
    warning = None
    if saturated:
        warning = "LOAD GENERATOR SATURATED: " + "; ".join(f"{r['id']}: {', '.join(r['reasons'])}" for r in saturated)
        warning += " -- latencies are inflated; add processes (--processes N) or lower users per process"
    notes = [f"{r['id']}: {reason}" for r in everyone if not r.get("saturated") for reason in r.get("reasons", [])]
    return {
        "processes": rows,
        "total": overall,
        "saturated": bool(saturated),
        "warning": warning,
        "notes": notes,
        "thresholds": {
            "cpu_percent": CPU_SATURATED,
            "lag_ms": LAG_SATURATED_MS,
            "lag_spike_ms": LAG_SPIKE_MS,
            "loop_busy_percent": LOOP_BUSY_SATURATED,
            "loop_starved_percent": STARVED_SATURATED,
            "fd_fraction": FD_WARN_FRACTION,
            "window_s": WINDOW_S,
        },
    }
