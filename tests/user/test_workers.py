"""A worker killed mid-run (``kill -9``): named in the log and the summary, its sessions counted as lost, exit 7.

Real processes: a master and two ``locust --worker`` started here (their PIDs are ours), and
Locust's own ``--processes 2`` fork. Each waits for the master's stats table to show every user
holding a conversation (so the worker's last report has sessions in flight), kills one worker,
waits for the master to say it is lost, then ends the run with SIGTERM (a lost worker outranks
the interrupted code).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import psutil
import pytest

from harness.reports import exitcodes
from harness.reports.loading import load_summary
from tests.user.live import Live, clean_env, free_port

USERS, PER_WORKER = 6, 3
RUN = ["--headless", "-u", str(USERS), "-r", str(USERS), "-t", "60s", "--stop-timeout", "5", "--lp-hold", "30",
       "--lp-ping-interval", "0.5"]  # fmt: skip
HOLDING = rf"^session\s+time-to-conversation\s+{USERS}\s"  # the master's table: every user has its conversation
LOST = r"lp-harness: worker .* lost: no heartbeat"


def _check_lost_run(master: Live, code: int, killed_pid: int, reports: Path) -> None:
    assert code == exitcodes.INCOMPLETE, master.output[-3000:]
    line = master.wait_for(LOST, timeout=1)
    assert f"pid {killed_pid}" in line and f"{PER_WORKER} in flight" in line, line
    folder = next(p for p in reports.iterdir() if (p / "summary.json").is_file())
    summary = json.loads((folder / "summary.json").read_text())
    lost = summary["run"]["lost_workers"]
    assert [w["pid"] for w in lost] == [killed_pid], lost
    assert lost[0]["in_flight"] == PER_WORKER and lost[0]["last_report"]["users"] == PER_WORKER, lost
    assert lost[0]["last_report"]["socket_sessions"] >= PER_WORKER and lost[0]["lost_at"], lost
    assert summary["phases"]["socket"]["lost"] == PER_WORKER, summary["phases"]["socket"]
    assert summary["run"]["processes"] == 2
    # the generator's health: the master's own and each worker's, sent with its reports (the lost
    # one's until it was lost)
    rows = {r["id"]: r for r in summary["load_generator"]["processes"]}
    assert "master" in rows and any(i.startswith("worker") for i in rows), rows
    assert all(r["loop_lag_p99_ms"] is not None for r in rows.values()), json.dumps(list(rows.values()))
    assert f"pid {killed_pid}" in (folder / "summary.txt").read_text()
    assert load_summary(folder)["run"]["lost_workers"] == lost  # the readers take the new fields
    assert "Traceback" not in master.output


def _distributed(port: int) -> tuple[list[str], list[str]]:
    """A master expecting two workers on 127.0.0.1:``port``, and the options of each worker."""
    master = ["--master", "--expect-workers", "2", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)]
    return master, ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]


def test_a_killed_worker_of_master_and_two_workers_is_reported(tmp_path: Path) -> None:
    port, env = free_port(), clean_env(tmp_path)
    master_args, worker_args = _distributed(port)
    with Live([*master_args, *RUN], env) as master, Live(worker_args, env) as one, Live(worker_args, env) as two:
        master.wait_for(HOLDING)
        one.kill()  # kill -9, by the PID of the process this test started
        master.wait_for(LOST, timeout=30)
        master.signal(signal.SIGTERM)
        code = master.finish(timeout=60)
        assert two.finish(timeout=30) == 0  # the master told the other worker to quit
    _check_lost_run(master, code, one.pid, tmp_path)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="kill -9")
def test_a_killed_worker_of_processes_2_is_reported(tmp_path: Path) -> None:
    with Live(["--processes", "2", *RUN], clean_env(tmp_path)) as master:
        master.wait_for(HOLDING)
        forked = [c for c in psutil.Process(master.pid).children() if "locust" in " ".join(c.cmdline())]
        assert len(forked) == 2, forked
        forked[0].send_signal(signal.SIGKILL)  # a worker Locust forked from the process this test started
        master.wait_for(LOST, timeout=30)
        master.signal(signal.SIGTERM)
        code = master.finish(timeout=60)
    _check_lost_run(master, code, forked[0].pid, tmp_path)


def test_a_workers_target_down_abort_ends_the_distributed_run(emulator, tmp_path: Path) -> None:
    """Every call reset on the target: a worker's breaker trips under ``--lp-on-target-down abort``; it tells
    the master, which ends the whole run with the reason and exit code 2 long before the time limit."""
    emu = emulator()
    target = {"LP_ACCOUNT": "test-account", "LP_IDP": emu.url, "LP_ASYNCMESSAGINGENT": emu.url}
    port, env = free_port(), clean_env(tmp_path, target)
    fast = ["--lp-hold", "0.2", "--lp-retry-pauses", "0.05", "--lp-backoff-base", "0.1", "--lp-backoff-cap", "0.2"]
    run = ["--headless", "-u", "4", "-r", "4", "-t", "60s", "--lp-on-target-down", "abort", *fast]
    master_args, worker_args = _distributed(port)
    with Live([*master_args, *run], env) as master, Live(worker_args, env) as one, Live(worker_args, env) as two:
        emu.wait_until(lambda led: led["conversations"]["closed"] >= 4, timeout=30)
        emu.set_faults({"faults": {"anonymous-authorize": ["reset"], "connect": ["reset"]}})
        assert master.finish(timeout=40) == exitcodes.ERROR, master.output[-3000:]
        one.finish(timeout=30), two.finish(timeout=30)
    line = master.wait_for(r"TARGET DOWN on worker \S+: .*; aborting the run", timeout=1)
    assert "got no answer" in line, line
    folder = next(p for p in tmp_path.iterdir() if (p / "summary.json").is_file())
    assert load_summary(folder)["run"]["end_reason"] == "target down"
    assert "Traceback" not in master.output + one.output + two.output
