"""The live tab in a real browser: Debian's chromium driven by Playwright, a real locust, the real emulator.

The test starts ``locust -f locustfile.py`` with its web UI on a free loopback port, pointed at an
emulator of its own; fills the start form (users, ramp, run time, hold time, ping interval);
starts the run from the UI; waits until the "LP harness" tab shows every user holding its socket;
checks the tab against the emulator's ledger, and that the tab catches up with the ledger within
one refresh; stops the run from the UI, reloads, and checks the final numbers again. Screenshots go
to ``test-artifacts/`` (git-ignored). The same runs with ``--processes 2`` (master + 2 workers).

Needs ``/usr/bin/chromium`` (Debian package ``chromium``) and the ``playwright`` Python package;
the browser Playwright would download is never used (``executable_path``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
    pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium", allow_module_level=True)
playwright_sync = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]' (or pip install playwright)"
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USERS = 6
PING_INTERVAL_S = 0.5
HOLD_S = 40  # longer than the test: every user holds one session while we compare
UI_REFRESH_S = 2.0  # Locust's UI polls /stats/requests every 2 s while a test runs
WORKER_REPORT_S = 3.0  # locust.runners.WORKER_REPORT_INTERVAL: how stale a worker's part can be on the master
STARTUP_TIMEOUT_S = 30.0

# The value cell of the tab's row (group, measure), as a number, or null while absent.
CELL_JS = """
([group, measure]) => {
  for (const tr of document.querySelectorAll('table tbody tr')) {
    const tds = tr.querySelectorAll('td');
    if (tds.length >= 3 && tds[0].innerText.trim() === group && tds[1].innerText.trim() === measure) {
      const n = parseFloat(tds[2].innerText.replace(/,/g, ''));
      return Number.isNaN(n) ? tds[2].innerText.trim() : n;
    }
  }
  return null;
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _locust(target: str, tmp_path: Path, extra: list[str]) -> Iterator[tuple[subprocess.Popen, str, Path]]:
    """``locust -f locustfile.py`` with the UI on a free port; stopped by PID (its workers too) at exit."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LP_", "LOCUST_"))}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "LP_ACCOUNT": "webui-test",
            "LP_IDP": target,
            "LP_ASYNCMESSAGINGENT": target,
            "LP_REPORTS_DIR": str(tmp_path / "reports"),
        }
    )
    log_path = tmp_path / "locust.log"
    command = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py")]
    command += ["--web-host", "127.0.0.1", "--web-port", str(port), *extra]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _await_http(url + "/", proc, log_path)
        yield proc, url, log_path
    finally:
        _stop(proc)


def _await_http(url: str, proc: subprocess.Popen, log_path: Path) -> None:
    """Wait until the UI answers (or locust exits, which fails the test with its output)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"locust exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"locust's UI did not answer in {STARTUP_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)  # a connection refused returns at once: back off a little between tries


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the locust we started (it stops its workers); then SIGKILL it and any worker left, by PID."""
    import psutil

    try:
        children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.Error:
        children = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for pid in children:
        with contextlib.suppress(psutil.Error):
            child = psutil.Process(pid)
            child.wait(timeout=5)
    for pid in children:
        with contextlib.suppress(ProcessLookupError, psutil.Error):
            if psutil.pid_exists(pid) and psutil.Process(pid).ppid() in (proc.pid, 1):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _browser() -> Iterator[object]:
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


def _cell(page, group: str, measure: str):
    return page.evaluate(CELL_JS, [group, measure])


def _await_cell(page, group: str, measure: str, op: str, value: float, timeout_s: float) -> None:
    """Wait (in the page, no sleeps) until the tab's cell satisfies ``op value``."""
    js = "([g, m, v]) => { const c = (" + CELL_JS + f")([g, m]); return typeof c === 'number' && c {op} v; }}"
    try:
        page.wait_for_function(js, arg=[group, measure, value], timeout=timeout_s * 1000, polling=100)
    except playwright_sync.TimeoutError:
        raise AssertionError(
            f"the tab's {group}/{measure} = {_cell(page, group, measure)!r}, not {op} {value} after {timeout_s}s"
        ) from None


def _fill_and_start(page, users: int) -> None:
    page.fill("input[name=userCount]", str(users))
    page.fill("input[name=spawnRate]", str(users))
    page.get_by_text("Advanced options").click()
    page.fill("input[name=runTime]", "90s")  # a bound, in case the test dies before it stops the run
    page.get_by_text("Custom parameters").click()
    page.fill("input[name=lpHold]", str(HOLD_S))
    page.fill("input[name=lpPingInterval]", str(PING_INTERVAL_S))
    page.get_by_role("button", name="Start").click()


def _open_tab(page) -> None:
    page.get_by_role("tab", name="LP harness").click()
    page.wait_for_selector("table tbody tr")


def _check_run(emulator, tmp_path: Path, extra: list[str], shot_name: str) -> None:
    emu = emulator()
    ARTIFACTS.mkdir(exist_ok=True)
    with _locust(emu.url, tmp_path, extra) as (_proc, url, log_path), _browser() as page:
        try:
            _drive(page, emu, url, log_path, extra, shot_name)
        except BaseException:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(ARTIFACTS / f"{shot_name}-failed.png"), full_page=True)
            print(f"locust output (last 3000 chars):\n{log_path.read_text()[-3000:]}")
            raise


def _drive(page, emu, url: str, log_path: Path, extra: list[str], shot_name: str) -> None:
    lag = UI_REFRESH_S + (WORKER_REPORT_S if extra else 0.0)  # how stale the tab may be
    page.goto(url + "/")
    if extra:  # distributed: wait for both workers before starting
        _poll(lambda: _get_json(url + "/worker-count")["worker_count"] == 2, STARTUP_TIMEOUT_S, "2 workers")
    _fill_and_start(page, USERS)
    _open_tab(page)

    # every user holds its socket: the tab and the emulator agree
    _await_cell(page, "sockets", "open", "===", USERS, 20)
    _await_cell(page, "pings", "answered", ">", 0, lag + 2 * PING_INTERVAL_S + 1)
    _await_cell(page, "ping RTT (ms)", "count", ">", 0, lag + 1)
    # each open socket holds one conversation (a request-conversation may still be in flight: ask again)
    _poll(lambda: emu.ledger()["conversations"]["open"] == USERS, 5, f"{USERS} open conversations on the emulator")
    ledger = emu.ledger()
    assert ledger["sockets"]["open"] == USERS, ledger["sockets"]
    assert _cell(page, "token phase", "sessions") == ledger["endpoints"]["anonymous-authorize"]["received"] == USERS
    assert _cell(page, "socket phase", "sessions") == ledger["endpoints"]["connect"]["received"] == USERS
    assert _cell(page, "sockets", "target users") == USERS
    assert _cell(page, "token phase", "failures") == 0 and _cell(page, "socket phase", "failures") == 0
    # pongs keep coming: the tab reaches what the emulator had answered within one refresh
    ponged = emu.ledger()["pings"]["ponged"]
    assert ponged > 0
    _await_cell(page, "pings", "answered", ">=", ponged, lag + 1)
    assert isinstance(_cell(page, "ping RTT (ms)", "p50"), float | int)
    assert str(_cell(page, "load generator", "status")) in ("OK", "⚠ SATURATED")
    process_rows = ("worker 1", "worker 2", "workers total", "master") if extra else ("this process",)
    for label in process_rows:
        cpu = _cell(page, "load generator", label)
        assert isinstance(cpu, str) and cpu.startswith("CPU "), (label, cpu)
    page.screenshot(path=str(ARTIFACTS / f"{shot_name}-running.png"), full_page=True)

    # stop from the UI; the final numbers match the ledger once the run has wound down
    page.get_by_role("button", name="Stop").click()
    _poll(lambda: _get_json(url + "/stats/requests")["state"] == "stopped", 20, "the run to stop")
    final = _await_final_ledger(emu)

    # the harness has the final numbers within one refresh (plus the workers' last report)...
    def settled() -> bool:
        view = _get_json(url + "/lp-harness/stats")
        return view["pings"]["sent"] == final["pings"]["received"] and view["sockets"]["open"] == 0

    _poll(settled, lag + 1, f"the harness's final numbers to match the ledger {final['pings']}")
    # ...and the tab shows them: Locust's UI stops polling once stopped, a reload fetches them
    page.reload()
    _open_tab(page)
    assert _cell(page, "pings", "sent") == final["pings"]["received"]
    assert _cell(page, "pings", "answered") == final["pings"]["ponged"]
    assert _cell(page, "ping RTT (ms)", "count") == final["pings"]["ponged"]  # one 'ping' stats entry per pong
    assert _cell(page, "sockets", "open") == final["sockets"]["open"] == 0
    assert _cell(page, "token phase", "sessions") == final["endpoints"]["anonymous-authorize"]["received"]
    # a user stopped mid-close closes its conversation over a new connection: the cleanup's, not a session's
    cleanup_connects = _get_json(url + "/lp-harness/stats")["conversations"]["cleanup"]["calls"].get("connect", 0)
    assert _cell(page, "socket phase", "sessions") + cleanup_connects == final["endpoints"]["connect"]["received"]
    assert _cell(page, "conversations", "left open") == 0
    page.screenshot(path=str(ARTIFACTS / f"{shot_name}-stopped.png"), full_page=True)
    # the report download carries our summary
    report = page.request.get(url + "/stats/report?download=1").text()
    assert 'id="lp-harness-summary"' in report, log_path.read_text()[-2000:]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _poll(condition, timeout_s: float, what: str) -> None:
    """Wait for a condition only a request can tell (no event to await): ask every 0.1 s, bounded."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.1)


def _await_final_ledger(emu, timeout_s: float = 15.0) -> dict:
    """The ledger once the emulator has seen every socket close (the users close them on stop)."""
    last: dict = {}

    def closed() -> bool:
        last.update(emu.ledger())
        return last["sockets"]["open"] == 0 and last["conversations"]["open"] == 0

    _poll(closed, timeout_s, "every socket and conversation to close on the emulator")
    return last


@pytest.mark.timeout(120)
def test_tab_matches_the_emulator(emulator, tmp_path):
    _check_run(emulator, tmp_path, [], "webui-local")


@pytest.mark.timeout(120)
def test_tab_matches_the_emulator_with_two_processes(emulator, tmp_path):
    _check_run(emulator, tmp_path, ["--processes", "2"], "webui-processes2")
