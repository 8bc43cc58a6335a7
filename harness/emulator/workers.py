"""``--processes N``: N emulator workers on one port (SO_REUSEPORT), one summed ledger.

The parent makes the signing keys (and the TLS certificate) once, so a token issued by one
worker is valid on every other, then forks the workers. Each worker also listens on a private
loopback port; an admin request on the shared port, whichever worker the kernel hands it
to, asks its siblings there (``?local=1``) and answers with the sum, and a PUT/reset is passed
on to all of them. Conversation state stays per worker (see docs/emulator.md).
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

from harness.emulator.config import EmulatorConfig
from harness.emulator.ledger import merge_snapshots

log = logging.getLogger("lp-emulator")


async def _fetch(session: Any, method: str, url: str, data: bytes | None = None) -> Any:
    async with session.request(method, url, data=data, ssl=False) as answer:
        return await answer.json()


async def gather_ledgers(own: dict[str, Any], peers: list[str]) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        others = await asyncio.gather(*(_fetch(session, "GET", p + "/admin/ledger?local=1") for p in peers))
    return merge_snapshots([own, *others])


async def broadcast(peers: list[str], method: str, path: str, data: bytes | None = None) -> None:
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(*(_fetch(session, method, p + path, data) for p in peers))


def _worker(config: EmulatorConfig, index: int, lp_pem: bytes, anon_pem: bytes, port: int, conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    from harness.emulator.cli import run_loop

    try:
        sys.exit(run_loop(_worker_main(config, index, lp_pem, anon_pem, port, conn)))
    except KeyboardInterrupt:
        sys.exit(0)


async def _worker_main(config: EmulatorConfig, index: int, lp_pem: bytes, anon_pem: bytes, port: int, conn: Any) -> int:
    from aiohttp import web

    from harness.emulator.cli import install_stop_signals, listen_socket, url_for
    from harness.emulator.idp import ANON_KID
    from harness.emulator.runner import start
    from harness.emulator.server import Emulator
    from harness.protocol import tokens

    emulator = Emulator(
        config, lp_key=tokens.load_private_key(lp_pem), anon_key=tokens.load_private_key(anon_pem, kid=ANON_KID)
    )
    emulator.worker_index = index
    emulator.plan = config.plan.with_worker(index)
    emulator.public_plan = config.plan
    running = await start(config, sock=listen_socket(config.host, port, reuse_port=True), emulator=emulator)
    private_sock = listen_socket("127.0.0.1", 0)
    site = web.SockSite(running.runner, private_sock, ssl_context=running.ssl_context)
    await site.start()
    private_url = url_for("127.0.0.1", private_sock.getsockname()[1], config.tls)
    loop = asyncio.get_running_loop()
    conn.send(private_url)
    peers: list[str] = await loop.run_in_executor(None, conn.recv)
    emulator.peers = [p for p in peers if p != private_url]
    conn.send("ready")
    log.info("worker %d serving %s (private admin %s)", index, running.url, private_url)
    stop = asyncio.Event()
    install_stop_signals(loop, stop)
    await stop.wait()
    await running.stop()
    return 0


def run_workers(config: EmulatorConfig) -> int:
    """The parent: keys, port, workers, the URL line, then wait for SIGTERM/SIGINT."""
    from harness.emulator.cli import lifeline_fd, listen_socket, url_for
    from harness.emulator.idp import ANON_KID
    from harness.protocol import tokens

    lp_key = tokens.generate_signing_key(config.key_bits)
    anon_key = tokens.generate_signing_key(config.key_bits, kid=ANON_KID)
    lp_pem, anon_pem = (_private_pem(k) for k in (lp_key, anon_key))
    if config.tls and not config.tls_cert:
        from harness.emulator.tls import make_self_signed

        cert, key = make_self_signed(config.host, config.tls_dir)
        config = replace(config, tls_cert=str(cert), tls_key=str(key))
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


def _private_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
