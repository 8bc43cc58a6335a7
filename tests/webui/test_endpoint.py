"""The tab's data, endpoints and downloads, through Flask's test client on a real Locust WebUI."""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import gevent
import pytest
from locust import LoadTestShape, User, argument_parser, task
from locust.env import Environment

from harness import webui
from harness.options import add_arguments
from harness.reports.thresholds import parse_cli_rule
from harness.settings import Settings
from harness.user import breakpoint, loadgen, state
from harness.user.arrival import Pacer, Plan
from harness.webui.report import augment_report_html, extract_summary


class _Idle(User):
    @task
    def idle(self) -> None:  # never runs: these tests do not spawn users
        pass


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["locust"])  # Locust's UI reads its extra options from the command line
    environment = Environment(user_classes=[_Idle])
    environment.create_local_runner()
    environment.create_web_ui("127.0.0.1", 0, delayed_start=True)  # never started: the test client is enough
    webui.register(environment)
    yield environment
    loadgen.monitor_of(environment).stop()
    environment.runner.quit()


def _fire_ping(environment: Environment, ms: float) -> None:
    environment.events.request.fire(
        request_type="socket",
        name="ping",
        response_time=ms,
        response_length=0,
        exception=None,
        context={},
        start_time=time.time(),
        url=None,
    )


def _rows(data: dict) -> dict[tuple[str, str], dict]:
    return {(r["group"], r["measure"]): r for r in data}


def test_tab_is_declared_with_locusts_extension_points(env):
    args = env.web_ui.template_args
    assert args["extended_tabs"] == [{"title": "LP harness", "key": "lp-harness"}]
    assert [c["key"] for c in args["extended_tables"][0]["structure"]] == ["group", "measure", "value", "detail"]
    assert any(f["href"].endswith("summary.json") for f in args["extended_csv_files"])
    page = env.web_ui.app.test_client().get("/")
    assert page.status_code == 200 and b'"extended_tabs"' in page.data  # survives update_template_args


def test_stats_requests_carries_the_tab_rows(env):
    metrics = state.metrics_of(env)
    for _ in range(4):
        metrics.start_phase("token")
    metrics.fail_phase("token", "http 503")
    metrics.start_phase("socket")
    metrics.socket_opened()
    metrics.pings_sent, metrics.pings_answered = 7, 6
    for ms in (1, 2, 3, 40):
        _fire_ping(env, ms)
    client = env.web_ui.app.test_client()
    body = client.get("/stats/requests").get_json()
    assert body["stats"]  # Locust's own data is untouched
    (extended,) = body["extended_stats"]
    assert extended["key"] == "lp-harness"
    rows = _rows(extended["data"])
    assert rows["token phase", "sessions"]["value"] == 4
    assert rows["token phase", "failures"]["value"] == 1
    assert rows["token phase", "failures"]["detail"] == "http 503 ×1"
    assert rows["token phase", "fail ratio"]["value"] == "25.00%"
    assert rows["sockets", "open"]["value"] == 1
    assert rows["pings", "sent"]["value"] == 7
    assert rows["ping RTT (ms)", "count"]["value"] == 4
    assert rows["ping RTT (ms)", "max"]["value"] == 40
    assert rows["load generator", "status"]["value"] in ("OK", "⚠ SATURATED")  # this machine's load decides
    assert rows["load generator", "this process"]["value"].startswith("CPU ")
    # the structured endpoint says the same
    view = client.get("/lp-harness/stats").get_json()
    assert view["phases"]["token"]["sessions"] == 4
    assert view["pings"]["rtt"]["count"] == 4
    assert view["rows"] == extended["data"]
    assert view["loadgen"]["processes"][0]["pid"] > 0


def test_the_tab_shows_the_run_so_fars_generator_verdict_with_when(env):
    client = env.web_ui.app.test_client()
    assert ("load generator", "this run") not in _rows(client.get("/stats/requests").get_json()["extended_stats"][0]["data"])
    monitor = loadgen.monitor_of(env)
    state.state_of(env).started_at = monitor.health.started_at = time.time() - 30
    monitor.health.record_sample(time.time() - 10, 2.0, 97.0, 1, 1, ["CPU 97% >= 90%"])  # saturated 18-20 s in
    rows = _rows(client.get("/stats/requests").get_json()["extended_stats"][0]["data"])
    cell = rows["load generator", "this run"]
    assert cell["value"] == "saturated" and cell["detail"].startswith("saturated 6.") and "18-20 s" in cell["detail"]


def test_ping_rtt_shows_p50_to_p99(env):
    """The percentiles come from harness.reports.percentiles; the tab keeps its rows and keys."""
    for ms in (1, 2, 3):
        _fire_ping(env, ms)
    view = env.web_ui.app.test_client().get("/lp-harness/stats").get_json()
    measures = [r["measure"] for r in view["rows"] if r["group"] == "ping RTT (ms)"]
    assert measures == ["count", "p50", "p90", "p95", "p99", "max"]
    rtt = view["pings"]["rtt"]
    assert set(rtt) == {"count", "failures", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms"}


def test_summary_download_and_report(env):
    client = env.web_ui.app.test_client()
    assert client.get("/lp-harness/summary.json").status_code == 404  # no run yet: no invented run id
    report = client.get("/stats/report?download=1").get_data(as_text=True)
    assert extract_summary(report) is None
    state.state_of(env).started_at = time.time()
    state.metrics_of(env).start_phase("token")
    download = client.get("/lp-harness/summary.json")
    assert download.status_code == 200
    assert "attachment" in download.headers["Content-Disposition"]
    summary = download.get_json()
    assert summary["format"] == "lp-harness/summary" and summary["phases"]["token"]["sessions"] == 1
    report = client.get("/stats/report?download=1").get_data(as_text=True)
    embedded = extract_summary(report)
    assert embedded is not None and embedded["phases"]["token"]["sessions"] == 1
    assert "lp-harness summary" in report and report.rstrip().endswith("</html>")


def test_report_json_cannot_break_out_of_its_script_element():
    summary = {"run": {"label": "</script><script>alert(1)</script>"}}
    html = augment_report_html("<html><body><div id=root></div></body></html>", summary)
    assert html.count("</script>") == 1  # only our element's own end tag
    assert extract_summary(html) == summary


def test_saturation_is_flagged_and_explained():
    saturated, reasons = loadgen.assess({"cpu_percent": 97.0, "lag_ms": 1.0, "lag_max_ms": 3.0})
    assert saturated and "CPU 97%" in reasons[0]
    saturated, reasons = loadgen.assess({"cpu_percent": 20.0, "lag_ms": 80.0, "lag_max_ms": 300.0})
    assert saturated and "event loop" in reasons[0]
    saturated, reasons = loadgen.assess({"cpu_percent": 20.0, "lag_ms": 2.0, "lag_max_ms": 300.0})
    assert not saturated and "stalled" in reasons[0]
    saturated, reasons = loadgen.assess({"cpu_percent": 5.0, "lag_ms": 1.0, "fds": 19000, "fd_limit": 20000})
    assert not saturated and "file descriptors" in reasons[0]


def test_master_view_sums_workers_and_warns():
    master = loadgen.LoadGenMonitor("master")
    worker = {"role": "worker", "pid": 11, "cpu_percent": 95.0, "rss_bytes": 100 << 20, "fds": 1000}
    worker.update({"fd_limit": 20000, "lag_ms": 4.0, "lag_max_ms": 9.0})
    worker["saturated"], worker["reasons"] = loadgen.assess(worker)
    other = {**worker, "pid": 12, "cpu_percent": 30.0, "fds": 500, "lag_ms": 1.0, "lag_max_ms": 2.0}
    other["saturated"], other["reasons"] = loadgen.assess(other)
    now = time.time()
    environment = SimpleNamespace(
        lp_loadgen=master,
        lp_loadgen_parts={"b": {**other, "received_at": now}, "a": {**worker, "received_at": now}, "gone": worker},
        runner=SimpleNamespace(clients={"a": 1, "b": 2}),
    )
    health = loadgen.merged(environment)
    assert [p["id"] for p in health["processes"]] == ["master", "worker 1", "worker 2"]
    total = health["total"]
    assert total["id"] == "workers total" and total["processes"] == 2
    assert total["cpu_percent"] == 125.0 and total["fds"] == 1500 and total["rss_bytes"] == 200 << 20
    assert total["lag_max_ms"] == 9.0
    assert health["saturated"] and "worker 1: CPU 95%" in health["warning"]
    rows = _rows(webui.table_rows({**_empty_view(), "loadgen": health}))
    assert rows["load generator", "status"]["value"] == "⚠ SATURATED"
    assert rows["load generator", "worker 1"]["detail"].startswith("⚠ SATURATED")
    assert rows["load generator", "workers total"]["value"] == "CPU 125%"


def _empty_view() -> dict:
    """phases/sockets/pings absent: those rows are skipped."""
    return {"state": "running", "users": 0, "target_users": 0, "distributed": True, "workers": 2}


def test_monitor_measures_a_blocked_loop():
    monitor = loadgen.LoadGenMonitor("local", tick_s=0.02).start()
    try:
        monitor.ticked.clear()
        assert monitor.ticked.wait(5), "the lag timer never fired"
        blocked_until = time.perf_counter() + 0.2
        while time.perf_counter() < blocked_until:  # hold the loop: no greenlet can run
            pass
        monitor.ticked.clear()
        assert monitor.ticked.wait(5)
        snap = monitor.snapshot()
        assert snap["lag_max_ms"] >= 150, snap
        assert snap["rss_bytes"] > 0 and snap["pid"] > 0
        assert snap["fds"] is None or snap["fds"] > 0
    finally:
        monitor.stop()
    gevent.sleep(0)


class _Shape(LoadTestShape):
    def tick(self) -> None:  # never ticks: the test drives the breakpoint's steps itself
        return None


def _tab(env) -> dict[tuple[str, str], dict]:
    return _rows(env.web_ui.app.test_client().get("/stats/requests").get_json()["extended_stats"][0]["data"])


def _so_far(open_sockets: int) -> dict:
    """The run's summary at a step's end, as far as a sockets rule reads it."""
    sockets = {"open": open_sockets, "peak_open": open_sockets, "opened": open_sockets, "drops": 0,
               "server_closes": {}, "drops_per_hour": 0.0}  # fmt: skip
    return {"run": {"users": 1}, "steps": {}, "phases": {}, "sockets": sockets,
            "pings": {"sent": 0, "answered": 0, "timeouts": 0}}  # fmt: skip


def test_the_tab_follows_a_breakpoint_step_by_step(env):
    assert not [key for key in _tab(env) if key[0] == "breakpoint"]  # no shape, no rows
    env.shape_class = _Shape()
    run = breakpoint.BreakpointRun(steps=4, step_s=10.0, max_users=8, owner=env.shape_class)
    breakpoint.attach(env, run)
    rules = [parse_cli_rule("sockets:open<7")]
    assert run.advance(0.0, lambda: _so_far(0), rules) == 2
    rows = _tab(env)
    assert rows["breakpoint", "step"]["value"] == "1 of 4" and rows["breakpoint", "users"]["value"] == 2
    assert rows["breakpoint", "held so far"]["value"] == 0 and rows["breakpoint", "knee so far"]["value"] == "-"
    assert run.advance(10.0, lambda: _so_far(2), rules) == 4  # step 1 held
    rows = _tab(env)
    assert rows["breakpoint", "step"]["value"] == "2 of 4" and rows["breakpoint", "step"]["detail"].startswith("since 10 s")
    assert rows["breakpoint", "held so far"]["value"] == 1 and rows["breakpoint", "held so far"]["detail"] == "2 held, 4 running"
    assert rows["breakpoint", "knee so far"]["value"] == 2 and ("breakpoint", "broke at") not in rows
    assert run.advance(20.0, lambda: _so_far(8), rules) is None  # step 2 ended with 8 sockets open: broken
    rows = _tab(env)
    assert rows["breakpoint", "step"]["detail"].startswith("knee at 2 users (step 1 of 4); 4 users broke sockets: open < 7")
    assert rows["breakpoint", "broke at"]["value"] == 4 and "open = 8" in rows["breakpoint", "broke at"]["detail"]
    view = env.web_ui.app.test_client().get("/lp-harness/stats").get_json()
    assert view["breakpoint"]["knee_users"] == 2 and view["breakpoint"]["verdict"] == "knee"
    env.shape_class = _Shape()  # a later test with another shape: that breakpoint is not this run's
    assert not [key for key in _tab(env) if key[0] == "breakpoint"]


def _open_model(rate: str) -> Settings:
    parser = argument_parser.get_parser()
    add_arguments(parser)
    target = ["--lp-account", "a", "--lp-idp", "http://127.0.0.1:1", "--lp-asyncmessagingent", "http://127.0.0.1:1"]
    return Settings.from_options(parser.parse_args([*target, "--lp-arrival-rate", rate]))


def _sessions(pacer: Pacer) -> None:
    """A user of the open model: one session per arrival (each over at once)."""
    while True:
        pacer.take()
        pacer.ended()


def test_the_tab_follows_the_arrival_pacer_and_says_when_the_rate_is_missed(env):
    assert not [key for key in _tab(env) if key[0] == "arrival"]  # the closed model: no rows
    state.state_of(env).settings = _open_model("10")
    pacer = env.lp_arrival_pacer = Pacer(Plan(10.0, 10.0))
    users = [gevent.spawn(_sessions, pacer) for _ in range(3)]
    gevent.sleep(0)  # every user waits for an arrival
    pacer.begin()
    try:
        gevent.sleep(0.45)
        rows = _tab(env)
        assert rows["arrival", "target rate"]["value"] == "10.0/s" and rows["arrival", "dropped"]["value"] == 0
        started = int(rows["arrival", "achieved so far"]["detail"].split()[0])
        assert started >= 3 and rows["arrival", "achieved so far"]["value"].endswith("/s")
        late = rows["arrival", "late"]["value"]  # a busy machine may start one late: then the rate was missed
        assert rows["arrival", "status"]["value"] == ("kept" if late == 0 else "⚠ NOT KEPT")
        gevent.killall(users)  # no free user from now on: every arrival is dropped
        gevent.sleep(0.35)
        rows = _tab(env)
        assert rows["arrival", "dropped"]["value"] >= 2 and rows["arrival", "status"]["value"] == "⚠ NOT KEPT"
        assert "raise -u" in rows["arrival", "status"]["detail"]
        view = env.web_ui.app.test_client().get("/lp-harness/stats").get_json()["arrival"]
        # an arrival handed to a user the moment it was stopped is neither started nor dropped
        assert view["due"] - 1 <= view["started"] + view["dropped"] <= view["due"], view
        assert view["dropped"] == rows["arrival", "dropped"]["value"]
    finally:
        pacer.stop()
        gevent.killall(users)
