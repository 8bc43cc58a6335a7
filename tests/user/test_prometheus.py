"""``/metrics`` tells what ``summary.json`` tells: scraped by a real Prometheus, and read by the test itself.

Real processes on loopback: Debian's ``prometheus`` (started here on a free port with a temporary
config and storage, killed by its PID) scrapes a real headless ``locust`` run on the embedded
emulator every second; at the end its HTTP API must give the summary's numbers exactly. A second
run (``--processes 2``: the master sums its workers) is scraped by the test: every metric the
Grafana dashboard queries is there, and the scrape with ``lp_run_final 1`` equals the summary and
lets the run exit at once, long before its linger is over.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from argparse import Namespace
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.reports import exitcodes, loghist
from harness.settings import Settings, SettingsError
from harness.settings_address import listen_address
from harness.user.prometheus import BUCKETS_S, cumulative_buckets, failure_category
from tests.tools import parse_options, system_binary
from tests.user.live import Live, clean_env, free_port
from tests.user.runs import ROOT, run_locust

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboard.json"
FAULTS = "--fault authenticate=status:503,p=0.15 --fault hold=close:4401,after=0.2,p=0.25"
LOAD = [
    *("-u", "4", "-r", "20", "--stop-timeout", "5", "--lp-hold", "0.5", "--lp-ping-interval", "0.2"),
    *("--lp-retry-pauses", "0.05", "--lp-backoff-base", "0.1", "--lp-backoff-cap", "0.2", "--lp-emulator-args", FAULTS),
]
NAME = re.compile(r"\blp_[a-z0-9_]+")
SUFFIXES = ("_bucket", "_count", "_sum")


# ---------------------------------------------------------------------------- a real Prometheus
def _prometheus_binary() -> str:
    return system_binary("prometheus")


def _get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (127.0.0.1 only)
        return response.read().decode()


def _poll(what: str, read: Callable[[], Any], done: Callable[[Any], bool], timeout: float) -> Any:
    """``read()`` until ``done(value)``, or fail after ``timeout`` seconds saying what was awaited."""
    deadline, last, error = time.monotonic() + timeout, None, None
    while time.monotonic() < deadline:
        try:
            value = read()
        except OSError as exc:  # not listening yet
            error = exc
        else:
            if done(value):
                return value
            last = value
        time.sleep(0.1)  # a poll's pace, with a deadline: the thing awaited is in another process
    raise AssertionError(f"{what}: not within {timeout} s; last read: {str(last)[:3000]}; last error: {error}")


class Prometheus:
    """One ``prometheus`` process of this test, scraping ``target`` every second."""

    def __init__(self, binary: str, folder: Path, target: str) -> None:
        folder.mkdir(parents=True)
        config = folder / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
            f"scrape_configs:\n  - job_name: lp-harness\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = folder / "prometheus.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
                 f"--web.listen-address={self.url.removeprefix('http://')}"],
                stdout=log, stderr=subprocess.STDOUT, cwd=folder,
            )  # fmt: skip

    def wait_ready(self) -> None:
        _poll("prometheus ready", lambda: self.proc.poll() is None and _get(f"{self.url}/-/ready"), bool, 30)

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr, **({"time": repr(at)} if at is not None else {})}
        answer = json.loads(_get(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"))
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    def values(self, expr: str, at: float, *labels: str) -> dict[Any, float]:
        """The instant vector at ``at``, keyed by ``labels`` (one label: its value; none: ``()``)."""
        out = {}
        for series in self.query(expr, at):
            key = tuple(series["metric"].get(label, "") for label in labels)
            out[key[0] if len(key) == 1 else key] = float(series["value"][1])
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the process this test started, by its PID
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str], Prometheus]]:
    started: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        server = Prometheus(_prometheus_binary(), tmp_path / f"prometheus-{len(started)}", target)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


def test_prometheus_holds_the_summary_s_numbers_exactly(
    prometheus: Callable[[str], Prometheus], tmp_path: Path
) -> None:
    port = free_port()
    prom = prometheus(f"127.0.0.1:{port}")
    run = run_locust([*LOAD, "-t", "8s", "--lp-prometheus-port", str(port)], tmp_path / "reports", timeout=90)
    assert run.returncode in (exitcodes.OK, exitcodes.FAILURES) and "Traceback" not in run.output, run.output[-3000:]
    assert "no scrape of" not in run.output, run.output[-3000:]  # the run waited for its final scrape, and got it
    summary = run.summary

    def final_at() -> float | None:  # the time of the scrape with the final numbers (in the TSDB once seen)
        series = prom.query("lp_run_final[5m]")
        return next((float(t) for s in series for t, v in s["values"] if v == "1"), None)

    at = _poll("the final scrape in Prometheus", final_at, lambda t: t is not None, 20)
    steps, phases, sockets, pings = summary["steps"], summary["phases"], summary["sockets"], summary["pings"]
    assert prom.values("lp_run_info", at, "run_id") == {summary["run"]["id"]: 1.0}
    counts = prom.values("lp_step_duration_seconds_count", at, "step")
    assert counts == {name: float(s["count"]) for name, s in steps.items()}, (counts, steps)
    assert prom.values("lp_step_requests_total", at, "step") == counts
    assert prom.values('lp_step_duration_seconds_bucket{le="+Inf"}', at, "step") == counts
    failed = prom.values("sum by (step) (lp_step_failures_total)", at, "step")
    assert failed == {n: float(s["failures"]) for n, s in steps.items() if s["failures"]}, (failed, steps)
    totals = prom.values("lp_step_duration_seconds_sum", at, "step")
    for name, s in steps.items():
        assert totals[name] == pytest.approx(s["mean_ms"] * s["count"] / 1000.0, rel=1e-9), name
    assert prom.values("lp_phase_sessions_total", at, "phase") == {p: float(v["sessions"]) for p, v in phases.items()}
    by_category = prom.values("lp_phase_failures_total", at, "phase", "category")
    expected = {(p, c): float(n) for p, v in phases.items() for c, n in v["categories"].items()}
    assert by_category == expected and phases["token"]["failures"] and phases["socket"]["failures"], (
        by_category,
        phases,
    )
    assert prom.values("sum by (phase) (lp_phase_failures_total)", at, "phase") == {
        p: float(v["failures"]) for p, v in phases.items() if v["failures"]
    }
    assert prom.values("lp_sockets_peak_open", at) == {(): float(sockets["peak_open"])} and sockets["peak_open"] >= 1
    assert prom.values("lp_sockets_opened_total", at) == {(): float(sockets["opened"])}
    assert prom.values("lp_socket_drops_total", at) == {(): float(sockets["drops"])}
    closes = prom.values("lp_socket_server_closes_total", at, "code")
    assert closes == {c: float(n) for c, n in sockets["server_closes"].items()} and "4401" in closes, closes
    for name, key in (
        ("lp_pings_sent_total", "sent"),
        ("lp_pings_answered_total", "answered"),
        ("lp_pong_timeouts_total", "timeouts"),
    ):
        assert prom.values(name, at) == {(): float(pings[key])}, name
    # every query of the dashboard is valid PromQL and the main panels have data at the end of the run
    for expr in _dashboard_queries(interval="4s"):
        result = prom.query(expr, at)
        if "histogram_quantile(0.95" in expr or "lp_loadgen_cpu_percent" in expr or "lp_sockets_open" in expr:
            assert result, expr


# ---------------------------------------------------------------------------- the test as the scraper
def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _dashboard_queries(interval: str = "$__rate_interval") -> list[str]:
    """Every panel's PromQL, Grafana's variables filled in as "all" (the test's Prometheus has one job)."""
    exprs = [t["expr"] for p in _dashboard()["panels"] for t in p.get("targets", [])]
    fill = {"$__rate_interval": interval, "$job": ".*", "$instance": ".*", "$step": ".*"}
    out = []
    for expr in exprs:
        for var, value in fill.items():
            expr = expr.replace(var, value)
        out.append(expr)
    return out


def _scrape(url: str) -> dict[str, list[Any]]:
    """Sample name -> samples, and each family's own sample names (present even where it has none yet)."""
    names: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(_get(url)):
        own = {"counter": [f"{family.name}_total"], "histogram": [family.name + s for s in SUFFIXES]}
        for name in own.get(family.type, [family.name]):
            names.setdefault(name, [])
        for sample in family.samples:
            names.setdefault(sample.name, []).append(sample)
    return names


def _value(scrape: dict[str, list[Any]], name: str, **labels: str) -> float | None:
    found = [s.value for s in scrape.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    return found[0] if found else None


def test_the_dashboard_is_importable_and_uses_its_datasource_variable() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])  # Grafana keys panels by id
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
    titles = " ".join(p["title"] for p in panels)
    for wanted in ("p95 per step", "Phase failure rate", "Open sockets vs target users", "per hour", "CPU"):
        assert wanted in titles, wanted


def test_a_live_run_exposes_every_dashboard_metric_and_ends_on_the_summary(tmp_path: Path) -> None:
    port, linger = free_port(), 60
    args = ["--headless", "--processes", "2", *LOAD, "-t", "5s", "--lp-prometheus-port", str(port),
            "--lp-prometheus-linger", str(linger)]  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"
    seen: set[str] = set()  # the processes of the load generator rows, over every scrape

    def scrape() -> dict[str, list[Any]]:
        found = _scrape(url)
        seen.update(s.labels["process"] for s in found["lp_loadgen_cpu_percent"])
        return found

    with Live(args, clean_env(tmp_path)) as live:
        live.wait_for(rf"Prometheus metrics at {re.escape(url)}")
        try:  # the test is the only scraper: the first scrape after the end lets the run exit
            final = _poll("the final scrape", scrape, lambda s: _value(s, "lp_run_final") == 1.0, 60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlocust:\n{live.output[-3000:]}") from None
        scraped_at = time.monotonic()
        code = live.finish(timeout=30)
        assert time.monotonic() - scraped_at < linger / 4, "the run waited for its linger, not for the scrape"
    assert seen == {"master", "worker 1", "worker 2"}, (seen, live.output[-3000:])
    wanted = {n for q in _dashboard_queries() for n in NAME.findall(q)}
    wanted |= {n for v in _dashboard()["templating"]["list"] for n in NAME.findall(str(v.get("definition", "")))}
    assert wanted and wanted <= set(final), sorted(wanted - set(final))  # every family is in every scrape
    assert _value(final, "lp_step_duration_seconds_count", step="hold"), final.get("lp_step_duration_seconds_count")
    assert code in (exitcodes.OK, exitcodes.FAILURES) and "Traceback" not in live.output, live.output[-3000:]
    summary = json.loads(next(tmp_path.glob("*/summary.json")).read_text())
    assert summary["run"]["processes"] == 2
    for name, step in summary["steps"].items():
        assert _value(final, "lp_step_duration_seconds_count", step=name) == step["count"], name
    for phase, counts in summary["phases"].items():
        assert _value(final, "lp_phase_sessions_total", phase=phase) == counts["sessions"], phase
        for category, n in counts["categories"].items():
            assert _value(final, "lp_phase_failures_total", phase=phase, category=category) == n, (phase, category)
    assert _value(final, "lp_sockets_peak_open") == summary["sockets"]["peak_open"]
    assert _value(final, "lp_pings_sent_total") == summary["pings"]["sent"]


# ---------------------------------------------------------------------------- a port in use, the settings
def test_a_port_in_use_is_one_configuration_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = run_locust(["-u", "1", "-t", "2s", "--lp-prometheus-port", str(port)], tmp_path, timeout=60)
    assert run.returncode == exitcodes.ERROR, run.output[-3000:]
    errors = [line for line in run.output.splitlines() if "configuration error" in line]
    assert len(errors) == 1 and f"--lp-prometheus-port 127.0.0.1:{port}" in errors[0], run.output[-3000:]
    assert "LP_PROMETHEUS_PORT" in errors[0] and "Traceback" not in run.output


@pytest.mark.parametrize(
    ("raw", "address"),
    [("0", None), ("", None), ("9646", ("127.0.0.1", 9646)), ("0.0.0.0:9646", ("0.0.0.0", 9646)),
     ("localhost:1", ("localhost", 1)), ("[::1]:9646", ("::1", 9646))],
)  # fmt: skip
def test_listen_addresses(raw: str, address: tuple[str, int] | None) -> None:
    assert listen_address(Namespace(lp_prometheus_port=raw), "lp_prometheus_port") == address


@pytest.mark.parametrize("raw", ["http", "70000", "-1", ":9646", "::1:9646", "127.0.0.1:"])
def test_bad_listen_addresses_name_the_setting(raw: str) -> None:
    with pytest.raises(SettingsError, match="--lp-prometheus-port"):
        listen_address(Namespace(lp_prometheus_port=raw), "lp_prometheus_port")


parse = parse_options


def test_the_settings_come_from_the_environment_too(monkeypatch: pytest.MonkeyPatch) -> None:
    target = {"LP_ACCOUNT": "1", "LP_IDP": "http://127.0.0.1:1", "LP_ASYNCMESSAGINGENT": "http://127.0.0.1:1"}
    off = Settings.from_options(parse([], monkeypatch, target))
    assert off.prometheus_listen is None and off.prometheus_linger_s == 15.0
    on = Settings.from_options(parse([], monkeypatch, {"LP_PROMETHEUS_PORT": "9646", "LP_PROMETHEUS_LINGER": "2"}))
    assert (on.prometheus_listen, on.prometheus_linger_s) == (("127.0.0.1", 9646), 2.0)
    with pytest.raises(SettingsError, match="--lp-prometheus-linger"):
        Settings.from_options(parse(["--lp-prometheus-linger", "-1"]))


# ---------------------------------------------------------------------------- the pure parts
def test_buckets_are_cumulative_and_end_on_the_count() -> None:
    latencies_ms = [0.4, 1.5, 1.5, 7.0, 480.0, 31_000.0, 7_200_000.0]  # the last beyond the largest bound
    hist = loghist.merge(*({loghist.bucket(ms): 1} for ms in latencies_ms))
    buckets = dict(cumulative_buckets(hist, len(latencies_ms)))
    assert list(buckets)[-1] == "+Inf" and len(buckets) == len(BUCKETS_S) + 1
    assert (buckets["0.001"], buckets["0.0025"], buckets["0.01"], buckets["0.5"]) == (1, 3, 4, 5)
    assert (buckets["30.0"], buckets["60.0"], buckets["3600.0"], buckets["+Inf"]) == (5, 6, 6, 7)
    values = list(buckets.values())
    assert values == sorted(values)


@pytest.mark.parametrize(
    ("error", "category"),
    [("StepFailed('close 4401: server closed the socket')", "close 4401"), ("StepFailed('pong timeout')", "pong timeout"),
     ('StepFailed("http 503: it\'s down")', "http 503"), ("ConnectionResetError(104, 'reset')", "error ConnectionResetError")],
)  # fmt: skip
def test_failure_categories_from_locust_s_failure_table(error: str, category: str) -> None:
    assert failure_category(error) == category
