"""Lost workers: a worker that stops sending heartbeats mid-run is named, counted and makes the run incomplete.

Locust's master marks a worker ``missing`` after a few silent heartbeat intervals (its
``heartbeat_worker``) but fires no event for it and, once the worker is gone, the summary would
say nothing: its last reported numbers stay in the totals and the sessions it had in flight
simply vanish. This module watches the master's worker list, and for each worker that goes
missing during a run it logs one line (which worker, when it was last heard from, its last
numbers), records it in ``state.lost_workers`` -- from there the summary's ``run.lost_workers``,
the socket phase's ``lost`` count (:func:`harness.user.state.merged_metrics`) and exit code 7
(:mod:`harness.reports.exitcodes`) follow. A worker that comes back is taken off the list.

What a lost worker did after its last report (Locust's report interval, 3 s) is in no count at
all; that is why the run's exit code says the report is incomplete rather than trying to guess.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import datetime, timezone
from typing import Any, Final

import gevent
from locust.env import Environment
from locust.runners import STATE_MISSING, MasterRunner

from harness.user.state import state_of

log = logging.getLogger("lp-harness")
WATCH_INTERVAL_S: Final = 1.0  # Locust's own heartbeat interval: a missing worker is seen within a second
REPORT_KEY: Final = "lp_worker"  # what each worker adds to its stats report: who it is


def identity() -> dict[str, Any]:
    """What a worker tells the master about itself with every report (so a lost one can be named)."""
    return {"pid": os.getpid(), "hostname": socket.gethostname()}


def install(environment: Environment) -> None:
    """On a master: remember each worker's last report and heartbeat, and watch for missing ones."""
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return
    last: dict[str, dict[str, Any]] = {}  # client id -> what we last heard from it
    events = environment.events

    def on_report(client_id: str, data: dict[str, Any]) -> None:
        seen = last.setdefault(client_id, {})
        seen.update(reported_at=time.time(), users=data.get("user_count"), **(data.get(REPORT_KEY) or {}))

    def on_heartbeat(client_id: str, timestamp: float) -> None:
        last.setdefault(client_id, {})["heard_at"] = timestamp

    events.worker_report.add_listener(on_report)
    events.heartbeat_sent.add_listener(on_heartbeat)
    events.test_start.add_listener(lambda **_: _forget_lost(environment))
    runner.greenlet.spawn(_watch, environment, last)


def _forget_lost(environment: Environment) -> None:
    """A new run: workers lost in an earlier one (web UI) are not part of it."""
    state = state_of(environment)
    for client_id in list(state.lost_workers):
        state.worker_parts.pop(client_id, None)
    state.lost_workers.clear()


def _watch(environment: Environment, last: dict[str, dict[str, Any]]) -> None:
    runner = environment.runner
    state = state_of(environment)
    while True:
        gevent.sleep(WATCH_INTERVAL_S)
        if state.started_at is None:
            continue  # no run yet: a worker that drops while we wait for workers is Locust's business
        for client_id in list(runner.clients):
            node = runner.clients.get(client_id)
            if node is None:
                continue
            if node.state == STATE_MISSING and client_id not in state.lost_workers:
                record = lost_record(client_id, last.get(client_id, {}), state.worker_parts.get(client_id))
                record["index"] = runner.worker_indexes.get(client_id)
                state.lost_workers[client_id] = record
                log.error(describe(record))
            elif node.state != STATE_MISSING and client_id in state.lost_workers:
                state.lost_workers.pop(client_id)
                log.warning("worker %s is back (heartbeats again): no longer counted as lost", client_id)


def lost_record(client_id: str, seen: dict[str, Any], part: dict[str, Any] | None) -> dict[str, Any]:
    """One lost worker as the summary shows it: who, when, and its last reported numbers."""
    part = part or {}
    phases = part.get("phases") or {}
    token, sock = phases.get("token") or {}, phases.get("socket") or {}
    in_flight = int((part.get("sockets") or {}).get("open") or 0)
    return {
        "id": client_id,
        "index": None,
        "pid": seen.get("pid"),
        "hostname": seen.get("hostname"),
        "last_heard_at": _iso(seen.get("heard_at") or seen.get("reported_at")),
        "last_report_at": _iso(seen.get("reported_at")),
        "lost_at": _iso(time.time()),
        "in_flight": in_flight,  # sessions holding a socket at its last report: counted as lost
        "last_report": {
            "users": seen.get("users"),
            "token_sessions": token.get("sessions", 0),
            "token_failures": token.get("failures", 0),
            "socket_sessions": sock.get("sessions", 0),
            "socket_failures": sock.get("failures", 0),
            "sockets_open": in_flight,
        },
    }


def describe(record: dict[str, Any]) -> str:
    """The log line (and summary.txt line) for one lost worker."""
    numbers = record["last_report"]
    who = f"worker {record.get('index') if record.get('index') is not None else '?'} ({record['id']}"
    who += f", pid {record['pid']})" if record.get("pid") else ")"
    return (
        f"{who} lost: no heartbeat since {record['last_heard_at'] or 'its start'}; at its last report "
        f"({record['last_report_at'] or 'none'}) it ran {numbers['users'] if numbers['users'] is not None else '?'} "
        f"users, {numbers['token_sessions']} token / {numbers['socket_sessions']} socket sessions, "
        f"{numbers['token_failures'] + numbers['socket_failures']} failed, {record['in_flight']} in flight "
        "(counted as lost); the report is incomplete (exit code 7)"
    )


def annotate(environment: Environment, summary: dict[str, Any]) -> None:
    """Put the lost workers into the summary's run section (a master's summary always has the list)."""
    state = state_of(environment)
    if isinstance(environment.runner, MasterRunner) or state.lost_workers:
        summary["run"]["lost_workers"] = [dict(r) for r in state.lost_workers.values()]


def lost_lines(summary: dict[str, Any]) -> str:
    """Lines for summary.txt under the tables: one per lost worker, empty when none was lost."""
    lost = summary.get("run", {}).get("lost_workers") or []
    return "".join(f"\nINCOMPLETE: {describe(record)}" for record in lost)


def _iso(ts: float | None) -> str | None:
    if not ts:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
