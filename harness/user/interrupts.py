"""The way out of a run stopped from outside: SIGTERM, Ctrl-C, and a second one during a slow stop.

Locust ends a run on SIGTERM (its own handler) and on Ctrl-C (a ``KeyboardInterrupt`` in its main
greenlet); both fire ``quitting``, where :func:`finish_run` stops the users (they close their
conversations and sockets, which can take a while when the target hangs) and writes the final
reports. Left to Python, a second Ctrl-C during that stop raises ``KeyboardInterrupt`` inside the
``quitting`` listener: a traceback and no reports at all. So the harness takes SIGINT itself, on
every process (a terminal's Ctrl-C reaches ``--processes`` workers too): the first one still raises
``KeyboardInterrupt`` where Locust expects it (its way out, unchanged); any later stop signal sets
``state.hurry`` -- stop waiting for the users, write every report now, exit with the interrupted
code (a worker stops its users at once). A third stops the embedded emulator and exits at once,
for a stop that hangs even so.

Both signals record the end reason (``sigint``/``sigterm``) when they arrive during a test; the
exit code then says the run was interrupted (:mod:`harness.reports.exitcodes`).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from types import FrameType
from typing import Final

import gevent
import greenlet
from gevent.event import Event
from locust.env import Environment
from locust.exception import RPCError
from locust.rpc import Message
from locust.runners import MasterRunner, WorkerRunner

from harness.reports import exitcodes
from harness.user.collect import end_reason
from harness.user.reporting import write_reports
from harness.user.state import state_of
from harness.user.target import stop_emulator

log = logging.getLogger("lp-harness")
KILL_WAIT_S: Final = 2.0  # after a second interrupt: how long users get to unwind before the reports are written
REENTRY_WAIT_S: Final = 30.0  # a second way out waits this long for the first one's reports
RUNNING: Final = ("spawning", "running")


def install(environment: Environment) -> None:
    """Every process: record outside stops, and make the second one hurry the stop (a terminal's
    Ctrl-C reaches ``--processes`` workers too)."""
    state = state_of(environment)

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if _count(environment, "sigint"):
            _interrupt_main_greenlet()  # the first: Locust's own way out (shutdown -> quitting)

    def on_sigterm() -> None:
        _count(environment, "sigterm")  # Locust's handler (registered after this one) shuts down

    def on_quit(**_: object) -> None:
        # Locust is exiting (reports written, exit code set): a signal now must not raise into the
        # teardown; it counts as a second one (harmless now), and a further one still exits at once.
        state.stop_signals = max(state.stop_signals, 1)

    signal.signal(signal.SIGINT, on_sigint)
    gevent.signal_handler(signal.SIGTERM, on_sigterm)
    environment.events.quit.add_listener(on_quit)
    state.stop_signals = 0


def _count(environment: Environment, reason: str) -> bool:
    """Count an outside stop signal; True for the first. Never blocks (it may run inside any greenlet)."""
    state = state_of(environment)
    state.stop_signals += 1
    runner = environment.runner
    if state.stop_signals == 1:
        if state.end_reason is None and runner is not None and runner.state in RUNNING:
            state.end_reason = reason
        return True
    if state.stop_signals == 2:
        worker = isinstance(runner, WorkerRunner)
        log.warning(
            "%s again: not waiting for the users to finish closing; %s (once more: exit at once)",
            reason.upper(),
            "stopping them now" if worker else "writing the reports now",
        )
        state.hurry.set()
        if worker:  # a worker's slow part is Locust's own stop of its users: end it (the master writes reports)
            gevent.spawn(_kill_users, runner)
        return False
    log.error("%s a third time: exiting now (the reports already written stay)", reason.upper())
    _exit_now(environment)
    return False


def _release_stopped_workers(runner: object, workers: list[str]) -> None:
    """A master's stop removes each worker that reports "stopped" from its list, so the "quit" of
    its own shutdown never reaches them and they would wait for a master that is gone: tell them."""
    if not isinstance(runner, MasterRunner):
        return
    for client_id in workers:
        if client_id not in runner.clients:
            try:
                runner.server.send_to_client(Message("quit", None, client_id))
            except RPCError:
                log.debug("worker %s did not take the quit message", client_id, exc_info=True)


def _interrupt_main_greenlet() -> None:
    """``KeyboardInterrupt`` where Locust waits for it, not in whichever user happened to be running.

    Python raises it in the current frame; inside a user's greenlet that kills the user with a
    traceback on the way. gevent's own route for a system error is a callback from the hub that
    throws it into the main greenlet; this takes that route directly.
    """
    hub = gevent.get_hub()
    main = hub.parent
    if greenlet.getcurrent() is main:
        raise KeyboardInterrupt
    hub.loop.run_callback(main.throw, KeyboardInterrupt)


def _exit_now(environment: Environment) -> None:
    """A stop that hangs even after the second interrupt: the emulator goes, the process ends."""
    try:
        stop_emulator(environment)
    finally:
        code = environment.process_exit_code
        os._exit(code if code is not None else exitcodes.INTERRUPTED)


def finish_run(environment: Environment) -> None:
    """``quitting`` on the master/local runner: stop the users, then write the final reports.

    Re-entered (Locust runs its shutdown again on a second SIGTERM): hurry the first, wait for its
    reports, and let this way out carry on.
    """
    state = state_of(environment)
    if state.finishing is not None:
        state.hurry.set()
        state.finishing.wait(timeout=REENTRY_WAIT_S)
        return
    state.finishing = Event()
    try:
        state.ended_at = state.ended_at or time.time()
        if state.end_reason is None:
            state.end_reason = end_reason(environment)
        runner = environment.runner
        if runner is not None and runner.state in RUNNING:
            _stop_users(environment)
        write_reports(environment, final=True)
    finally:
        state.finishing.set()


def _stop_users(environment: Environment) -> None:
    """Users close their conversations and sockets before the target goes away -- unless told to hurry."""
    state, runner = state_of(environment), environment.runner
    log.info("stopping: users close their conversations and sockets (Ctrl-C or SIGTERM again: write the reports now)")
    workers = list(getattr(runner, "clients", ()))
    stopper = gevent.spawn(runner.stop)
    gevent.wait([stopper, state.hurry], count=1)
    _release_stopped_workers(runner, workers)
    if stopper.ready():
        return
    deadline = _kill_users(runner)
    stopper.join(timeout=max(0.0, deadline - time.monotonic()))


def _kill_users(runner: object) -> float:
    """Kill this process's users, again and again for up to KILL_WAIT_S; returns the deadline.

    A master has none (its workers stop their own). A user killed mid-close starts its own cleanup
    (a close it already sent gets a few seconds more): killed again, it ends there.
    """
    greenlets = getattr(runner, "user_greenlets", None)
    deadline = time.monotonic() + KILL_WAIT_S
    while greenlets is not None and len(greenlets) and time.monotonic() < deadline:
        greenlets.kill(block=True, timeout=KILL_WAIT_S / 4)
    return deadline
