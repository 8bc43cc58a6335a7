"""The run's live numbers for Prometheus: ``/metrics`` on the master (or the only process), never on a worker.

A custom collector reads the numbers at scrape time through the functions the summary and the web
UI's tab read -- :func:`~harness.user.state.merged_metrics` (the workers' reports summed once, on
the master), :func:`~harness.user.collect.collect_steps` (Locust's entries, merged by Locust, and the
precise histograms of :mod:`harness.user.precise`) and :func:`~harness.user.loadgen.merged` -- so
a scrape says what ``summary.json`` would say at that moment, and nothing is counted twice or kept
twice. The histogram's buckets are cumulative counts of the precise 1 % log histogram (each of its
buckets counted at its middle, as the summary's percentiles are), and its ``+Inf`` bucket and
``_count`` are the step's count, exactly.

The server is gevent's WSGI server on the users' own loop: a scrape runs between two greenlet
switches, so it never sees a counter half-updated and needs no lock. The last numbers of a headless
run are not lost to the scrape interval: at ``quit`` the process waits, up to
``--lp-prometheus-linger`` seconds, until one scrape that began after the end has been served
(``lp_run_final`` is 1 in it). Metric names, types and labels: docs/monitoring.md.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import gevent
from gevent.event import Event
from gevent.pywsgi import WSGIServer
from locust.env import Environment
from locust.stats import StatsError
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

import harness
from harness.reports import exitcodes, loghist
from harness.user import loadgen
from harness.user.collect import collect_steps, run_metadata
from harness.user.state import has_run, merged_metrics, state_of
from harness.user.steps import STEP_PHASES
from harness.user.target import stop_emulator

log = logging.getLogger("lp-harness")

# Upper bounds in seconds: from a 1 ms ping on loopback to an hour-long soak hold.
BUCKETS_S: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0,
)  # fmt: skip
SERVER_STOP_S: Final = 2.0  # at the end: how long a scrape in flight may take to finish
# Plain counters of the merged metrics: name (without _total), help, (section, key).
COUNTERS: Final = (
    ("lp_sockets_opened", "WebSocket handshakes that succeeded.", ("sockets", "opened")),
    ("lp_socket_drops", "Sockets that ended without a close frame.", ("sockets", "drops")),
    ("lp_pings_sent", "Keepalive ping frames sent.", ("pings", "sent")),
    ("lp_pings_answered", "Pongs received in time.", ("pings", "answered")),
    ("lp_pong_timeouts", "Sessions failed for a missing pong.", ("pings", "timeouts")),
    ("lp_messages_sent", "ContentEvents published and answered with a sequence.", ("messages", "sent")),
    ("lp_messages_received", "The agents' ContentEvents received.", ("messages", "received")),
    ("lp_messages_replied", "Messages sent that an agent answered.", ("messages", "replied")),
    ("lp_messages_lost", "Messages sent that no reply answered in time.", ("messages", "lost")),
    ("lp_reconnect_drops", "Sockets lost mid-hold with --lp-on-drop reconnect.", ("reconnect", "drops")),
    ("lp_reconnects", "Reconnect tries (each a new connection).", ("reconnect", "reconnects")),
    ("lp_reconnect_recovered", "Drops after which the consumer was back on its conversation.", ("reconnect", "recovered")),
    ("lp_reconnect_lost", "Drops that no reconnect try recovered.", ("reconnect", "lost")),
    ("lp_reconnect_interrupted", "Drops whose reconnect the end of the run cut short.", ("reconnect", "interrupted")),
    ("lp_token_refreshes", "LP tokens renewed mid-hold (--lp-token-refresh).", ("reconnect", "refreshes")),
    ("lp_conversations_opened", "Conversations answered with a conversation id.", ("conversations", "opened")),
    ("lp_conversations_closed", "Conversations closed (by the session or the cleanup).", ("conversations", "closed")),
    ("lp_conversations_left_open", "Conversations the run left open.", ("conversations", "left_open")),
    ("lp_backoff_pauses", "Pauses after a failed session.", ("backoff", "pauses")),
    ("lp_breaker_trips", "Times a host was presumed down and the users paused.", ("backoff", "breaker_trips")),
)  # fmt: skip
GAUGES: Final = (
    ("lp_sockets_open", "Sockets open now.", ("sockets", "open")),
    ("lp_sockets_peak_open", "The highest open socket count seen in the run.", ("sockets", "peak_open")),
    ("lp_conversations_open", "Conversations opened (or reused) and not yet closed.", ("conversations", "open")),
)
# The load generator's health per process: name, help, snapshot key, scale.
LOADGEN: Final = (
    ("lp_loadgen_cpu_percent", "CPU of the process, percent of one core.", "cpu_percent", 1.0),
    ("lp_loadgen_loop_lag_seconds", "How late the event loop woke, mean over the last 10 s.", "lag_ms", 0.001),
    ("lp_loadgen_loop_lag_max_seconds", "How late the event loop woke, worst over the last 10 s.", "lag_max_ms", 0.001),
    ("lp_loadgen_rss_bytes", "Resident memory of the process.", "rss_bytes", 1.0),
    ("lp_loadgen_open_files", "Open file descriptors (one per socket).", "fds", 1.0),
    ("lp_loadgen_open_files_limit", "The soft limit on open files of the process.", "fd_limit", 1.0),
    ("lp_loadgen_saturated", "1 while the process is saturated: its latencies are inflated.", "saturated", 1.0),
)  # fmt: skip
_STEP_FAILED = re.compile(r"^StepFailed\((?P<q>['\"])(?P<text>.*)(?P=q)\)$", re.S)
_EXCEPTION = re.compile(r"^(\w+)\(")


# ---------------------------------------------------------------------------- pure helpers
def cumulative_buckets(hist: Mapping[int, int], count: int) -> list[tuple[str, float]]:
    """``(le, samples at or below it)`` for :data:`BUCKETS_S` from a precise histogram (ms), then ``+Inf``: ``count``."""
    counts = [0] * len(BUCKETS_S)
    for key, n in hist.items():
        seconds = loghist.value(key) / 1000.0  # the bucket's middle: within 1 % of each of its samples
        for i, bound in enumerate(BUCKETS_S):
            if seconds <= bound:
                counts[i] += n
                break
    out, running = [], 0
    for bound, n in zip(BUCKETS_S, counts, strict=True):
        running += n
        out.append((floatToGoString(bound), float(min(running, count))))  # never past +Inf, whatever came in
    out.append(("+Inf", float(count)))
    return out


def failure_category(error: str) -> str:
    """The category of one row of Locust's failure table: ``StepFailed('close 4401: ...')`` -> ``close 4401``."""
    match = _STEP_FAILED.match(error)
    if match:
        return match.group("text").split(": ", 1)[0]
    match = _EXCEPTION.match(error)
    return f"error {match.group(1)}" if match else error[:60]


def step_failures(errors: Iterable[StatsError]) -> dict[tuple[str, str], int]:
    """(step, category) -> failures, from Locust's failure table (merged from the workers by Locust)."""
    out: dict[tuple[str, str], int] = {}
    for error in errors:
        if STEP_PHASES.get(error.name) != error.method:
            continue
        key = (error.name, failure_category(StatsError.parse_error(error.error)))
        out[key] = out.get(key, 0) + int(error.occurrences)
    return out


def _at(metrics: Mapping[str, Any], path: tuple[str, str]) -> float:
    return float((metrics.get(path[0]) or {}).get(path[1]) or 0)


# ---------------------------------------------------------------------------- the collector
class HarnessCollector(Collector):
    """Every family on every scrape (empty ones too): the set of names never depends on what happened."""

    def __init__(self, environment: Environment, exporter: Exporter | None = None) -> None:
        self.environment = environment
        self.exporter = exporter

    def describe(self) -> list[Metric]:
        return []  # nothing to collect at registration: the numbers exist only once the runner does

    def collect(self) -> Iterator[Metric]:
        environment = self.environment
        runner = environment.runner
        metrics = merged_metrics(environment) if runner is not None else {}
        yield from self._run(runner)
        yield from self._steps() if runner is not None else ()
        yield from _phases(metrics)
        for name, doc, path in COUNTERS:
            family = CounterMetricFamily(name, doc)
            family.add_metric([], _at(metrics, path))
            yield family
        for name, doc, path in GAUGES:
            yield GaugeMetricFamily(name, doc, value=_at(metrics, path))
        closes = CounterMetricFamily(
            "lp_socket_server_closes", "Sockets the server closed, by close code.", labels=["code"]
        )
        for code, n in sorted(((metrics.get("sockets") or {}).get("server_closes") or {}).items()):
            closes.add_metric([str(code)], float(n))
        yield closes
        yield from _loadgen(loadgen.merged(environment) if loadgen.monitor_of(environment) else None)

    def _run(self, runner: Any) -> Iterator[Metric]:
        state = state_of(self.environment)
        yield GaugeMetricFamily("lp_users", "Users running now.", value=float(getattr(runner, "user_count", 0) or 0))
        target = float(getattr(runner, "target_user_count", 0) or 0)
        yield GaugeMetricFamily(
            "lp_target_users", "Users the run is spawning to (one socket each while it holds).", value=target
        )
        info = InfoMetricFamily(
            "lp_run", "The run these numbers are of.", labels=["run_id", "scenario", "label", "target", "version"]
        )
        if runner is not None and has_run(self.environment):
            run = run_metadata(self.environment)  # the run's id, picked once (the reports' folder name)
            labels = [run["id"], run.get("scenario") or "", run.get("label") or "", run.get("target") or ""]
            info.add_metric([*labels, harness.__version__], {})
            started = GaugeMetricFamily("lp_run_start_time_seconds", "When the run started (Unix time).")
            started.add_metric([], float(state.started_at or runner.stats.start_time))
            yield started
        yield info
        final = 1.0 if self.exporter is not None and self.exporter.final else 0.0
        yield GaugeMetricFamily("lp_run_final", "1 once the process is exiting: the run's final numbers.", value=final)

    def _steps(self) -> Iterator[Metric]:
        steps = collect_steps(self.environment)
        labels = ["step", "phase"]
        duration = HistogramMetricFamily(
            "lp_step_duration_seconds", "Each step's latency (precise to 1 %).", labels=labels
        )
        requests = CounterMetricFamily("lp_step_requests", "Each step's count, failed ones included.", labels=labels)
        for name, step in steps.items():
            hist = loghist.normalize(step.get("histogram_log"))
            count = int(step["count"])
            total_s = (step.get("mean_ms") or 0.0) * count / 1000.0
            duration.add_metric([name, step["phase"]], cumulative_buckets(hist, count), total_s)
            requests.add_metric([name, step["phase"]], float(count))
        yield duration
        yield requests
        failures = CounterMetricFamily(
            "lp_step_failures", "Each step's failures, by category.", labels=["step", "category"]
        )
        for (name, category), n in sorted(step_failures(self.environment.runner.stats.errors.values()).items()):
            failures.add_metric([name, category], float(n))
        yield failures


def _phases(metrics: Mapping[str, Any]) -> Iterator[Metric]:
    sessions = CounterMetricFamily("lp_phase_sessions", "Sessions that started the phase.", labels=["phase"])
    failures = CounterMetricFamily(
        "lp_phase_failures", "Sessions whose phase failed, by category.", labels=["phase", "category"]
    )
    interrupted = CounterMetricFamily(
        "lp_phase_interrupted",
        "Sessions whose phase went wrong only after the stop began (not failures).",
        labels=["phase"],
    )
    lost = CounterMetricFamily("lp_phase_lost", "Sessions in flight on a worker that was lost.", labels=["phase"])
    for phase, counts in (metrics.get("phases") or {}).items():
        sessions.add_metric([phase], float(counts.get("sessions") or 0))
        for category, n in (counts.get("categories") or {}).items():
            failures.add_metric([phase, category], float(n))
        interrupted.add_metric([phase], float(counts.get("interrupted") or 0))
        lost.add_metric([phase], float(counts.get("lost") or 0))
    yield from (sessions, failures, interrupted, lost)


def _loadgen(view: Mapping[str, Any] | None) -> Iterator[Metric]:
    rows = list((view or {}).get("processes") or ())
    for name, doc, key, scale in LOADGEN:
        family = GaugeMetricFamily(name, doc, labels=["process"])
        for row in rows:
            if row.get(key) is not None:
                family.add_metric([str(row["id"])], float(row[key]) * scale)
        yield family


# ---------------------------------------------------------------------------- the server
class Exporter:
    """``/metrics`` over gevent's WSGI server, and the wait for the final numbers' scrape."""

    def __init__(self, environment: Environment, host: str, port: int) -> None:
        self.environment = environment
        self.host, self.port = host, port
        self.final = False  # set at quit: scrapes from then on carry the run's final numbers
        self.final_served = Event()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(HarnessCollector(environment, self))
        self._metrics = make_wsgi_app(registry)
        self.server = WSGIServer((host, port), self._app, log=None)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.server.server_port or self.port}/metrics"

    def start(self) -> None:
        """Bind and serve; OSError (the port in use, an address not of this machine) to the caller."""
        self.server.start()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"lp-harness: the metrics are at /metrics\n"]
        final = self.final  # read before the numbers are: a scrape counts as final only if all of it is
        return _served(self._metrics(environ, start_response), self.final_served if final else None)

    def on_quit(self, **_: Any) -> None:
        """Locust is exiting, the final reports written: wait for one scrape of these numbers, then stop."""
        state = state_of(self.environment)
        linger = state.settings.prometheus_linger_s if state.settings is not None else 0.0
        self.final = True
        try:
            if linger > 0 and has_run(self.environment) and not state.hurry.is_set():
                log.info(
                    "waiting up to %g s for a scrape of the final numbers at %s (--lp-prometheus-linger)",
                    linger,
                    self.url,
                )
                gevent.wait([self.final_served, state.hurry], timeout=linger, count=1)  # a 2nd Ctrl-C: hurry
                if state.hurry.is_set() and not self.final_served.is_set():
                    log.warning("not waiting for a scrape of the final numbers any longer (stop signal)")
                elif not self.final_served.is_set():
                    log.warning(
                        "no scrape of %s within %g s: Prometheus misses the run's last numbers (raise "
                        "--lp-prometheus-linger above the scrape interval)", self.url, linger
                    )  # fmt: skip
        finally:
            self.server.stop(timeout=SERVER_STOP_S)


def _served(body: Iterable[bytes], done: Event | None) -> Iterator[bytes]:
    """The response, then ``done`` set: the server asks for more only once the last chunk is written."""
    yield from body
    if done is not None:
        done.set()


def install(environment: Environment) -> Exporter | None:
    """Master or the only process, after the settings are read: serve ``/metrics`` if a port is set."""
    settings = state_of(environment).settings
    if settings is None or settings.prometheus_listen is None:
        return None
    host, port = settings.prometheus_listen
    exporter = Exporter(environment, host, port)
    try:
        exporter.start()
    except OSError as exc:
        stop_emulator(environment)
        sys.stderr.write(
            f"lp-harness: configuration error: --lp-prometheus-port {host}:{port} cannot be listened on "
            f"({exc.strerror or exc}): give a free port (or HOST:PORT of this machine) with --lp-prometheus-port "
            "or LP_PROMETHEUS_PORT, or 0 for no /metrics\n"
        )
        sys.stderr.flush()
        sys.exit(exitcodes.ERROR)
    environment.events.quit.add_listener(exporter.on_quit)
    log.info("Prometheus metrics at %s (pid %s)", exporter.url, os.getpid())
    return exporter
