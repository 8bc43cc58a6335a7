"""``--processes N``: N emulator workers on one port (SO_REUSEPORT), one summed ledger.

The parent makes the signing keys (and the TLS certificate) once, so a token issued by one
worker is valid on every other, then forks the workers. Each worker also listens on a private
loopback port, where its siblings' admin API reaches it (:mod:`.peers`). Conversation state
stays per worker (see docs/emulator.md).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import select
import signal
import sys
import time
from dataclasses import replace
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization

from harness import heap
from harness.emulator.config import EmulatorConfig
from harness.emulator.idp import ANON_KID
from harness.emulator.process import install_stop_signals, lifeline_fd, listen_socket, run_loop, url_for
from harness.emulator.runner import start
from harness.emulator.server import Emulator
from harness.emulator.tls import SelfSigned, self_signed
from harness.protocol import tokens

log = logging.getLogger("lp-emulator")


def _worker(config: EmulatorConfig, index: int, lp_pem: bytes, anon_pem: bytes, port: int, conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        sys.exit(run_loop(_worker_main(config, index, lp_pem, anon_pem, port, conn)))
    except KeyboardInterrupt:
        sys.exit(0)


async def _worker_main(config: EmulatorConfig, index: int, lp_pem: bytes, anon_pem: bytes, port: int, conn: Any) -> int:
    emulator = Emulator(
        config, lp_key=tokens.load_private_key(lp_pem), anon_key=tokens.load_private_key(anon_pem, kid=ANON_KID)
    )
    emulator.use_plan(config.plan, worker=index)
    running = await start(config, sock=listen_socket(config.host, port, reuse_port=True), emulator=emulator)
    private_sock = listen_socket("127.0.0.1", 0)
    site = web.SockSite(running.runner, private_sock, ssl_context=running.ssl_context)
    await site.start()
    private_url = url_for("127.0.0.1", private_sock.getsockname()[1], config.tls)
    loop = asyncio.get_running_loop()
    conn.send(private_url)
    peers: list[str] = await loop.run_in_executor(None, conn.recv)
    emulator.peers = [p for p in peers if p != private_url]
    heap.freeze_startup()  # as a single process does (runner.serve)
    conn.send("ready")
    log.info("worker %d serving %s (private admin %s)", index, running.url, private_url)
    stop = asyncio.Event()
    install_stop_signals(loop, stop)
    await stop.wait()
    await running.stop()
    return 0


def run_workers(config: EmulatorConfig) -> int:
    """The parent: keys, port, workers, the URL line, then wait for SIGTERM/SIGINT."""
    lp_key = tokens.generate_signing_key(config.key_bits)
    anon_key = tokens.generate_signing_key(config.key_bits, kid=ANON_KID)
    lp_pem, anon_pem = (_private_pem(k) for k in (lp_key, anon_key))
    made: SelfSigned | None = None
    if config.tls and not config.tls_cert:
        made = self_signed(config.host, config.tls_dir)
        config = replace(config, tls_cert=str(made.cert), tls_key=str(made.key))
    try:
        return _serve_workers(config, lp_pem, anon_pem, made)
    finally:
        if made is not None:
            made.remove()


def _serve_workers(config: EmulatorConfig, lp_pem: bytes, anon_pem: bytes, made: SelfSigned | None) -> int:
    try:
        holder = listen_socket(config.host, config.port, reuse_port=True)  # fixes the port; never listens
    except OSError as exc:
        print(f"lp-harness emulator: error: {exc}", file=sys.stderr)
        return 1
    port = holder.getsockname()[1]
    ctx = multiprocessing.get_context("fork")
    workers = []
    pipes = []
    for index in range(config.processes):
        parent_end, child_end = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(config, index, lp_pem, anon_pem, port, child_end), daemon=False)
        proc.start()
        workers.append(proc)
        pipes.append(parent_end)
    privates = []
    for pipe, proc in zip(pipes, workers, strict=True):
        deadline = time.monotonic() + 60
        while not pipe.poll(0.1):
            if not proc.is_alive() or time.monotonic() > deadline:
                log.error("worker %s did not start (exit code %s)", proc.pid, proc.exitcode)
                _stop_all(workers)
                return 1
        privates.append(pipe.recv())
    for pipe in pipes:
        pipe.send(privates)
    for pipe in pipes:
        if not pipe.poll(30) or pipe.recv() != "ready":
            log.error("a worker did not confirm its peers")
            _stop_all(workers)
            return 1
    holder.close()
    if made is not None:
        made.forget_key()  # every worker has loaded it
    sys.stdout.write(url_for(config.host, port, config.tls) + "\n")
    sys.stdout.flush()
    log.info("%d workers on port %d (pids %s)", len(workers), port, ", ".join(str(w.pid) for w in workers))
    stopping = {"flag": False}

    def on_signal(signum: int, _frame: Any) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    lifeline = lifeline_fd()
    while not stopping["flag"] and all(w.is_alive() for w in workers):
        if lifeline is None:
            time.sleep(0.2)  # the signal handler sets the flag
        elif select.select([lifeline], [], [], 0.2)[0] and not os.read(lifeline, 4096):
            log.warning("the process that started this emulator is gone: stopping")
            break
    _stop_all(workers)
    return 0


def _stop_all(workers: list[Any]) -> None:
    for w in workers:
        if w.is_alive() and w.pid is not None:
            os.kill(w.pid, signal.SIGTERM)
    for w in workers:
        w.join(5)
        if w.is_alive() and w.pid is not None:
            os.kill(w.pid, signal.SIGKILL)
            w.join(5)


def _private_pem(key: tokens.SigningKey) -> bytes:
    return key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
