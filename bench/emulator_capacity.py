"""How much one emulator process serves on one core: full flows/s, handshakes/s, IDP requests/s, held sockets.

    .venv/bin/python bench/emulator_capacity.py                 # everything, 3 repeats (~4 min)
    .venv/bin/python bench/emulator_capacity.py --quick         # a smoke run in < 30 s
    .venv/bin/python bench/emulator_capacity.py --only flow --flows-seconds 10 --concurrency 300
    .venv/bin/python bench/emulator_capacity.py --only hold --hold-sockets 18000 --hold-seconds 25
    .venv/bin/python bench/emulator_capacity.py --only flow --emulator-processes 2 \\
        --emulator-cpus 0,1 --load-cpus 0,1 --load-procs 2            # does --processes 2 scale?
    .venv/bin/python bench/emulator_capacity.py --only flow --emulator-env LP_EMULATOR_FASTLANE=0  # aiohttp only

Starts its own emulator (``python -m harness.emulator``, pinned like ``taskset -c 0``: the
affinity is set before exec) or measures ``--target URL`` (its pid is read from
/admin/health). The load runs in forked worker processes pinned to ``--load-cpus`` (core 1 by
default): a lean uvloop client over raw sockets -- pre-built HTTP requests on keep-alive
connections, Content-Length parsing only, a minimal WebSocket handshake and masked frame
writer/reader -- so that the client is not what limits the number.

A *full flow* is: POST anonymous/authorize, POST authenticate {"authCode"}, WebSocket
connect with ``Authorization: jwt <LP token>``, cm.ConsumerRequestConversation and its
response, cm.UpdateConversationField CLOSE and its response, close handshake (the client
waits for the server's close frame and its FIN, so TIME_WAIT stays on the server side).

Every phase: warm up, then a measured window in which the completed operations of all load
workers and the CPU seconds (psutil ``cpu_times`` user+system) of the emulator and of every
load worker are taken at both ends; the emulator's ledger is reset at the window's start and
read at its end as a cross-check. CPU % is of one core (100 = one core busy). A process at
>= 90 % of the cores it may use is reported as saturated. Per-core machine load during the
window is reported too, so interference from other work on the machine shows.

Held sockets: ``--hold-sockets`` sockets (each with its own identity: authorize +
authenticate + connect) opened in a ramp by ``--hold-procs`` client processes (each side of
the loopback needs its own descriptor), held idle for ``--hold-seconds``, checked with
/admin/ledger (sockets.open), the emulator's RSS and CPU taken while holding, then closed.

Output: one JSON document (``--out``; default bench/results/emulator-capacity.json, and
emulator-capacity-quick.json for --quick) and a short summary on stderr. Everything is on
127.0.0.1, bounded in count and time; only processes this script started are stopped, by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import signal
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.emulator.launcher import EmulatorProcess  # noqa: E402
from harness.protocol import handshake, paths  # noqa: E402
from harness.protocol import idp as contract  # noqa: E402
from harness.protocol.envelope import encode_request  # noqa: E402
from harness.protocol.messages import MessageType, close_conversation_body  # noqa: E402

ACCOUNT = "qa57221676"
WS_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample nonce ...
WS_ACCEPT = handshake.accept_key(WS_KEY)  # ... and the Sec-WebSocket-Accept it must produce
_compact = json.JSONEncoder(separators=(",", ":")).encode
MASK_KEY = b"\x37\xfa\x21\x3d"
STEP_TIMEOUT_S = 10.0  # a flow making no progress for this long is aborted and counted as "timeout"
MAX_SOCKETS = 18_500  # hard bound on --hold-sockets
MAX_SECONDS = 120.0  # hard bound on any one measured window

# Shared counters, one row per load worker.
C_OK, C_FAIL, C_OPEN, C_STEPS = 0, 1, 2, 3
N_COUNTERS = 4


# ====================================================================== the lean client
class BenchError(Exception):
    """A step that did not get the answer it should; ``category`` is short."""

    def __init__(self, category: str) -> None:
        super().__init__(category)
        self.category = category


def mask_frame(opcode: int, payload: bytes) -> bytes:
    """A final, masked client frame (RFC 6455 5.2/5.3)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    if n:
        key = (MASK_KEY * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + MASK_KEY + payload


CLOSE_FRAME = mask_frame(0x8, (1000).to_bytes(2, "big"))
REQ_CONV_FRAME = mask_frame(0x1, encode_request(1, MessageType.REQUEST_CONVERSATION, {}).encode())


def close_conv_frame(conv_id: bytes) -> bytes:
    body = close_conversation_body(conv_id.decode())
    return mask_frame(0x1, encode_request(2, MessageType.UPDATE_CONVERSATION_FIELD, body).encode())


class Conn(asyncio.Protocol):
    """One TCP connection with a byte buffer and one waiter: the reads below are all we need."""

    __slots__ = ("transport", "buf", "waiter", "lost", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.lost = False

    # protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def eof_received(self) -> bool:
        self._gone()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()

    def _gone(self) -> None:
        self.lost = True
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _more(self) -> None:
        if self.lost:
            raise BenchError("dropped")
        self.waiter = w = self.loop.create_future()
        await w
        self.waiter = None

    # reads
    async def http(self) -> tuple[int, bytes, bytes]:
        """(status, head, body) of one HTTP/1.1 response (Content-Length bodies only)."""
        while True:
            buf = self.buf
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(buf[:end])
                at = head.find(b"Content-Length: ")
                if at < 0:
                    at = head.lower().find(b"content-length: ")
                length = int(head[at + 16 : head.find(b"\r\n", at)]) if at >= 0 else 0
                total = end + 4 + length
                while len(self.buf) < total:
                    await self._more()
                body = bytes(self.buf[end + 4 : total])
                del self.buf[:total]
                return int(head[9:12]), head, body
            await self._more()

    async def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of one unmasked, unfragmented server frame."""
        while True:
            buf = self.buf
            have = len(buf)
            if have >= 2:
                n = buf[1] & 0x7F
                hl = 2
                if n == 126:
                    hl = 4
                    n = int.from_bytes(buf[2:4], "big") if have >= 4 else 1 << 62
                elif n == 127:
                    hl = 10
                    n = int.from_bytes(buf[2:10], "big") if have >= 10 else 1 << 62
                if have >= hl + n:
                    op = buf[0] & 0x0F
                    payload = bytes(buf[hl : hl + n])
                    del buf[: hl + n]
                    return op, payload
            await self._more()

    async def until_closed(self) -> None:
        while not self.lost:
            await self._more_or_lost()

    async def _more_or_lost(self) -> None:
        self.waiter = w = self.loop.create_future()
        await w
        self.waiter = None

    def write(self, data: bytes) -> None:
        if self.lost or self.transport is None:
            raise BenchError("dropped")
        self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._gone()


class Target:
    """Pre-built request bytes for one emulator address (paths and headers from harness.protocol)."""

    def __init__(self, host: str, port: int, account: str = ACCOUNT) -> None:
        self.host, self.port = host, port
        self.host_port = f"{host}:{port}"
        h = f"Host: {self.host_port}\r\n".encode()
        self.authorize = (
            f"POST {paths.anonymous_authorize_path(account)} HTTP/1.1\r\n".encode() + h + b"Content-Length: 0\r\n\r\n"
        )
        self.auth_head = (
            f"POST {paths.authenticate_path(account)} HTTP/1.1\r\n".encode()
            + h
            + b"Content-Type: application/json\r\nContent-Length: "
        )
        self.resource = paths.consumer_socket_path(account)

    def authenticate(self, token: bytes) -> bytes:
        body = _compact(contract.authenticate_body(token.decode())).encode()
        return self.auth_head + str(len(body)).encode() + b"\r\n\r\n" + body

    def ws_upgrade(self, lp_token: bytes) -> bytes:
        return handshake.upgrade_request(self.resource, self.host_port, WS_KEY, lp_token.decode())


def token_of(status: int, body: bytes, step: str) -> bytes:
    if status != 200:
        raise BenchError(f"{step} http {status}")
    try:
        return contract.token_of(json.loads(body)).encode()
    except ValueError:  # not JSON, or no token in it (BodyError)
        raise BenchError(f"{step} bad json") from None


class User:
    """One virtual user: a keep-alive IDP connection and, per flow, a fresh socket."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.idp: Conn | None = None
        self.ws: Conn | None = None
        self.stamp = 0.0

    async def _connect(self) -> Conn:
        c = self.client
        _, conn = await c.loop.create_connection(lambda: Conn(c.loop), c.target.host, c.target.port)
        return conn

    async def _idp(self) -> Conn:
        if self.idp is None or self.idp.lost:
            self.idp = await self._connect()
        return self.idp

    async def authorize(self) -> bytes:
        conn = await self._idp()
        conn.write(self.client.target.authorize)
        status, _, body = await conn.http()
        return token_of(status, body, "authorize")

    async def authenticate(self, anon: bytes) -> bytes:
        conn = await self._idp()
        conn.write(self.client.target.authenticate(anon))
        status, _, body = await conn.http()
        return token_of(status, body, "authenticate")

    async def open_socket(self, lp: bytes) -> Conn:
        self.ws = ws = await self._connect()
        ws.write(self.client.target.ws_upgrade(lp))
        status, head, _ = await ws.http()
        if status != 101:
            raise BenchError(f"handshake {status}")
        if WS_ACCEPT not in head:
            raise BenchError("handshake bad accept")
        return ws

    async def close_socket(self, ws: Conn) -> None:
        ws.write(CLOSE_FRAME)
        while True:
            op, payload = await ws.frame()
            if op == 0x8:
                break
        await ws.until_closed()  # the server's FIN: TIME_WAIT lands on the server's side
        if ws.transport is not None:
            ws.transport.close()
        self.ws = None

    async def flow(self) -> None:
        self.stamp = self.client.loop.time()
        lp = await self.authenticate(await self.authorize())
        ws = await self.open_socket(lp)
        ws.write(REQ_CONV_FRAME)
        op, payload = await ws.frame()
        if op != 0x1 or b'"code":200' not in payload:
            raise BenchError("resp conversation")
        at = payload.find(b'"conversationId":"')
        if at < 0:
            raise BenchError("resp no conversationId")
        conv = payload[at + 18 : payload.index(b'"', at + 18)]
        ws.write(close_conv_frame(conv))
        op, payload = await ws.frame()
        if op != 0x1 or b'"code":200' not in payload:
            raise BenchError("resp close")
        await self.close_socket(ws)

    def abort(self) -> None:
        for conn in (self.idp, self.ws):
            if conn is not None:
                conn.abort()
        self.idp = self.ws = None


class Client:
    """The load of one worker process: ``concurrency`` users looping one operation until told to stop."""

    def __init__(self, target: Target, counters: Any, row: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.target = target
        self.counters = counters
        self.base = row * N_COUNTERS
        self.failures: dict[str, int] = {}
        self.stopping = False
        self.users: list[User] = []

    def fail(self, exc: BaseException) -> None:
        cat = exc.category if isinstance(exc, BenchError) else f"error {type(exc).__name__}"
        self.failures[cat] = self.failures.get(cat, 0) + 1
        self.counters[self.base + C_FAIL] += 1

    async def watchdog(self) -> None:
        """Abort users stuck on one step (a hang must not stall the bench)."""
        while True:
            await asyncio.sleep(1.0)
            now = self.loop.time()
            for user in self.users:
                if user.stamp and now - user.stamp > STEP_TIMEOUT_S:
                    self.failures["timeout"] = self.failures.get("timeout", 0) + 1
                    user.stamp = now
                    user.abort()

    async def loop_users(self, concurrency: int, make_op: Callable[[User], Callable[[], Any]]) -> None:
        counters, ok = self.counters, self.base + C_OK

        async def run(user: User) -> None:
            op = make_op(user)
            while not self.stopping:
                user.stamp = self.loop.time()
                try:
                    await op()
                except (BenchError, OSError, ValueError) as exc:
                    self.fail(exc)
                    user.abort()
                    await asyncio.sleep(0.05)
                else:
                    counters[ok] += 1
            user.stamp = 0.0

        self.users = [User(self) for _ in range(concurrency)]
        dog = asyncio.ensure_future(self.watchdog())
        try:
            await asyncio.gather(*(run(u) for u in self.users))
        finally:
            dog.cancel()
            for u in self.users:
                u.abort()


def make_operation(mode: str) -> Callable[[User], Callable[[], Any]]:
    if mode == "flow":
        return lambda user: user.flow
    if mode == "authorize":
        return lambda user: user.authorize

    if mode == "idp":  # authorize + authenticate with a fresh token: the HTTP half of a flow (2 requests)

        def idp(user: User) -> Callable[[], Any]:
            async def op() -> None:
                await user.authenticate(await user.authorize())

            return op

        return idp

    if mode == "handshake":  # connect + close handshake with the user's own LP token (got once)

        def handshake(user: User) -> Callable[[], Any]:
            lp: list[bytes] = []

            async def op() -> None:
                if not lp:
                    lp.append(await user.authenticate(await user.authorize()))
                ws = await user.open_socket(lp[0])
                await user.close_socket(ws)

            return op

        return handshake
    raise ValueError(mode)


# ====================================================================== worker processes
def _pin(cpus: list[int] | None) -> None:
    if cpus:
        os.sched_setaffinity(0, set(cpus))


def _orphaned(parent: int) -> bool:
    """The orchestrator is gone (killed): stop rather than load the machine for nobody."""
    return os.getppid() != parent


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def load_worker(
    row: int,
    mode: str,
    host: str,
    port: int,
    concurrency: int,
    cpus: list[int] | None,
    counters: Any,
    stop: Any,
    out: Any,
) -> None:
    """A forked load process: run ``mode`` with ``concurrency`` users until ``stop`` is set."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parent = os.getppid()
    _pin(cpus)
    loop = _new_loop()
    asyncio.set_event_loop(loop)

    async def main() -> dict[str, Any]:
        client = Client(Target(host, port), counters, row)
        work = asyncio.ensure_future(client.loop_users(concurrency, make_operation(mode)))
        while not stop.is_set() and not work.done() and not _orphaned(parent):
            await asyncio.sleep(0.05)
        client.stopping = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(work), STEP_TIMEOUT_S)
        if not work.done():
            work.cancel()
        return {"failures": client.failures}

    try:
        out.send(loop.run_until_complete(main()))
    finally:
        loop.close()


def hold_worker(
    row: int,
    host: str,
    port: int,
    sockets: int,
    ramp_concurrency: int,
    cpus: list[int] | None,
    counters: Any,
    stop: Any,
    out: Any,
) -> None:
    """Open ``sockets`` sockets (each its own identity), keep them idle until ``stop``, close them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parent = os.getppid()
    _pin(cpus)
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    base = row * N_COUNTERS

    async def main() -> dict[str, Any]:
        client = Client(Target(host, port), counters, row)
        held: list[Conn] = []
        remaining = [sockets]
        t0 = time.monotonic()

        async def opener() -> None:
            user = User(client)
            while remaining[0] > 0 and not stop.is_set():
                remaining[0] -= 1
                try:
                    lp = await user.authenticate(await user.authorize())
                    held.append(await user.open_socket(lp))
                    counters[base + C_OPEN] += 1
                except (BenchError, OSError, ValueError) as exc:
                    client.fail(exc)
                    if user.ws is not None:
                        user.ws.abort()
                    if isinstance(exc, OSError):
                        await asyncio.sleep(0.2)
            if user.idp is not None:
                user.idp.abort()

        await asyncio.gather(*(opener() for _ in range(ramp_concurrency)))
        ramp_s = time.monotonic() - t0
        while not stop.is_set() and not _orphaned(parent):
            await asyncio.sleep(0.05)
        still_open = sum(1 for c in held if not c.lost)
        # Close them all with a close handshake, in bounded batches.
        t1 = time.monotonic()
        closed_ok = 0

        async def close_one(conn: Conn) -> bool:
            try:
                conn.write(CLOSE_FRAME)
                while True:
                    op, _ = await conn.frame()
                    if op == 0x8:
                        break
                await conn.until_closed()
                return True
            except BenchError:
                return False
            finally:
                conn.abort()

        for i in range(0, len(held), 2000):
            batch = held[i : i + 2000]
            done = await asyncio.wait_for(asyncio.gather(*(close_one(c) for c in batch)), 30.0)
            closed_ok += sum(done)
        return {
            "opened": len(held),
            "ramp_s": round(ramp_s, 3),
            "still_open_at_stop": still_open,
            "closed_cleanly": closed_ok,
            "close_s": round(time.monotonic() - t1, 3),
            "failures": client.failures,
            "nofile": [soft, hard],
        }

    try:
        out.send(loop.run_until_complete(main()))
    finally:
        loop.close()


# ====================================================================== orchestration
def http_json(url: str, method: str = "GET") -> Any:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=15) as answer:
        return json.loads(answer.read())


def cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


class Emu:
    """The emulator under test: our own pinned subprocess, or --target's (pid from /admin/health)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.proc: EmulatorProcess | None = None
        if args.target:
            self.url = args.target.rstrip("/")
            self.pid = int(http_json(self.url + "/admin/health")["pid"])
        else:
            cpus = _cpus(args.emulator_cpus)
            emu_args = ["--log-level", "WARNING", "--processes", str(args.emulator_processes), *args.emulator_arg]
            env = dict(os.environ)
            for item in args.emulator_env:
                key, _, value = item.partition("=")
                env[key] = value
            self.proc = EmulatorProcess(emu_args, stderr=sys.stderr, env=env, preexec_fn=lambda: _pin(cpus)).start()
            self.url, self.pid = self.proc.url, self.proc.pid
        host_port = self.url.split("://", 1)[1]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        parent = psutil.Process(self.pid)
        kids = parent.children(recursive=True)
        # --processes N: the parent only waits; the workers serve.
        self.procs = kids if kids else [parent]
        self.affinity = sorted(self.procs[0].cpu_affinity())

    def cpu(self) -> list[float]:
        return [cpu_s(p) for p in self.procs]

    def sys_cpu(self) -> float:
        return sum(p.cpu_times().system for p in self.procs)

    def rss_mb(self) -> float:
        return sum(p.memory_info().rss for p in self.procs) / 2**20

    def ledger(self) -> dict[str, Any]:
        return http_json(self.url + "/admin/ledger")

    def reset(self) -> None:
        http_json(self.url + "/admin/ledger/reset", "POST")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def _cpus(text: str | None) -> list[int] | None:
    return [int(c) for c in text.split(",")] if text else None


def machine_load() -> dict[str, Any]:
    return {"loadavg": [round(x, 2) for x in os.getloadavg()], "per_cpu_busy_pct": psutil.cpu_percent(percpu=True)}


def _sum_counter(counters: Any, rows: int, col: int) -> int:
    return sum(counters[r * N_COUNTERS + col] for r in range(rows))


def wait_quiet(emu: Emu, ours: list[psutil.Process], budget_s: float, threshold_pct: float) -> float:
    """Wait (up to ``budget_s``) until other work on the machine uses < ``threshold_pct`` of a core.

    Other processes may share the machine; a window measured while they run says more
    about them than about the emulator. Returns the seconds waited.
    """
    t0 = time.monotonic()
    while True:
        procs = emu.procs + ours
        before = [cpu_s(p) for p in procs]
        psutil.cpu_percent(percpu=True)
        time.sleep(0.5)
        busy = sum(psutil.cpu_percent(percpu=True))
        mine = 100 * sum(cpu_s(p) - b for p, b in zip(procs, before, strict=True)) / 0.5
        if busy - mine < threshold_pct or time.monotonic() - t0 >= budget_s:
            return round(time.monotonic() - t0, 1)


def run_phase(emu: Emu, args: argparse.Namespace, mode: str, seconds: float, concurrency: int) -> dict[str, Any]:
    """One measured window of ``mode``: rate, CPU of both sides, ledger cross-check."""
    ctx = mp.get_context("fork")
    procs_n = args.load_procs
    counters = ctx.RawArray("q", procs_n * N_COUNTERS)
    stop = ctx.Event()
    load_cpus = _cpus(args.load_cpus)
    workers, pipes = [], []
    per = max(1, concurrency // procs_n)
    for row in range(procs_n):
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(
            target=load_worker,
            args=(row, mode, emu.host, emu.port, per, load_cpus, counters, stop, send),
            daemon=True,
        )
        p.start()
        workers.append(p)
        pipes.append(recv)
    wprocs = [psutil.Process(p.pid) for p in workers]
    try:
        time.sleep(args.warmup)
        waited = wait_quiet(emu, wprocs, args.quiet_wait, args.quiet_threshold)
        psutil.cpu_percent(percpu=True)  # start the machine-load window
        emu.reset()
        t0 = time.monotonic()
        n0 = _sum_counter(counters, procs_n, C_OK)
        f0 = _sum_counter(counters, procs_n, C_FAIL)
        e0, l0, s0 = emu.cpu(), [cpu_s(p) for p in wprocs], emu.sys_cpu()
        time.sleep(min(seconds, MAX_SECONDS))
        t1 = time.monotonic()
        n1 = _sum_counter(counters, procs_n, C_OK)
        f1 = _sum_counter(counters, procs_n, C_FAIL)
        e1, l1, s1 = emu.cpu(), [cpu_s(p) for p in wprocs], emu.sys_cpu()
        load = machine_load()
        ledger = emu.ledger()
        rss = emu.rss_mb()
    finally:
        stop.set()
        results = []
        for p, pipe in zip(workers, pipes, strict=True):
            if pipe.poll(STEP_TIMEOUT_S + 10):
                results.append(pipe.recv())
            p.join(5)
            if p.is_alive():
                p.kill()  # our own child, by PID
    wall = t1 - t0
    done = n1 - n0
    emu_pct = [round(100 * (b - a) / wall, 1) for a, b in zip(e0, e1, strict=True)]
    load_pct = [round(100 * (b - a) / wall, 1) for a, b in zip(l0, l1, strict=True)]
    failures: dict[str, int] = {}
    for r in results:
        for k, v in r["failures"].items():
            failures[k] = failures.get(k, 0) + v
    foreign = round(sum(load["per_cpu_busy_pct"]) - sum(emu_pct) - sum(load_pct), 1)
    emu_cores = len(emu.affinity)
    load_cores = len(load_cpus) if load_cpus else os.cpu_count() or 1
    saturated = []
    if sum(emu_pct) >= 90 * min(emu_cores, len(emu.procs)):
        saturated.append("emulator")
    if sum(load_pct) >= 90 * min(load_cores, procs_n):
        saturated.append("load")
    eps = ledger["endpoints"]
    server_side = {
        k: eps.get(k, {}).get("ok", 0)
        for k in (
            "anonymous-authorize",
            "authenticate",
            "connect",
            "cm.ConsumerRequestConversation",
            "cm.UpdateConversationField",
        )
    }
    per_op = {"flow": 1, "authorize": 1, "idp": 2, "handshake": 1}[mode]
    return {
        "mode": mode,
        "concurrency": concurrency,
        "window_s": round(wall, 3),
        "completed": done,
        "per_s": round(done / wall, 1),
        "requests_per_s": round(done * per_op / wall, 1) if mode in ("authorize", "idp") else None,
        "failed": f1 - f0,
        "failures": failures,
        "emulator_cpu_pct": emu_pct,
        "load_cpu_pct": load_pct,
        "emulator_kernel_share_pct": round(100 * (s1 - s0) / max(1e-9, sum(e1) - sum(e0)), 1),
        "emulator_cpu_ms_per_op": round(1000 * sum(b - a for a, b in zip(e0, e1, strict=True)) / done, 4)
        if done
        else None,
        "load_cpu_ms_per_op": round(1000 * sum(b - a for a, b in zip(l0, l1, strict=True)) / done, 4) if done else None,
        "saturated": saturated,
        "emulator_rss_mb": round(rss, 1),
        "ledger_ok_in_window": server_side,
        "ledger_sockets": ledger["sockets"],
        "machine": load,
        "foreign_cpu_pct": foreign,
        "quiet_wait_s": waited,
        "contended": foreign > args.quiet_threshold,
    }


def run_hold(emu: Emu, args: argparse.Namespace) -> dict[str, Any]:
    """Open --hold-sockets sockets, hold them idle, check the ledger, close them."""
    n = min(args.hold_sockets, MAX_SOCKETS)
    ctx = mp.get_context("fork")
    procs_n = max(1, args.hold_procs)
    counters = ctx.RawArray("q", procs_n * N_COUNTERS)
    stop = ctx.Event()
    load_cpus = _cpus(args.load_cpus)
    workers, pipes = [], []
    emu.reset()
    rss0 = emu.rss_mb()
    t0 = time.monotonic()
    for row in range(procs_n):
        share = n // procs_n + (1 if row < n % procs_n else 0)
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(
            target=hold_worker,
            args=(row, emu.host, emu.port, share, args.hold_ramp_concurrency, load_cpus, counters, stop, send),
            daemon=True,
        )
        p.start()
        workers.append(p)
        pipes.append(recv)
    out: dict[str, Any] = {"requested": n, "client_processes": procs_n}
    try:
        deadline = t0 + args.hold_ramp_timeout
        while time.monotonic() < deadline:
            opened = _sum_counter(counters, procs_n, C_OPEN)
            failed = _sum_counter(counters, procs_n, C_FAIL)
            if opened + failed >= n or not any(p.is_alive() for p in workers):
                break
            time.sleep(0.1)
        ramp_s = time.monotonic() - t0
        opened = _sum_counter(counters, procs_n, C_OPEN)
        out["opened"] = opened
        out["ramp_s"] = round(ramp_s, 2)
        out["ramp_per_s"] = round(opened / ramp_s, 1)
        time.sleep(1.0)  # let the last handshakes settle before the hold window
        psutil.cpu_percent(percpu=True)
        h0 = time.monotonic()
        c0 = emu.cpu()
        samples = []
        mid_ledger = None
        while time.monotonic() - h0 < min(args.hold_seconds, MAX_SECONDS):
            time.sleep(min(1.0, args.hold_seconds))
            samples.append(emu.rss_mb())
            if mid_ledger is None and time.monotonic() - h0 >= args.hold_seconds / 2:
                mid_ledger = emu.ledger()["sockets"]
        h1 = time.monotonic()
        c1 = emu.cpu()
        end_ledger = emu.ledger()
        out["hold_s"] = round(h1 - h0, 2)
        out["ledger_sockets_mid"] = mid_ledger
        out["ledger_sockets_end"] = end_ledger["sockets"]
        out["held_ok"] = end_ledger["sockets"]["open"] >= n and end_ledger["sockets"]["accepted"] >= n
        out["emulator_rss_mb_before"] = round(rss0, 1)
        out["emulator_rss_mb_holding"] = round(max(samples), 1)
        out["emulator_rss_kb_per_socket"] = round((max(samples) - rss0) * 1024 / max(1, opened), 2)
        out["emulator_cpu_pct_holding"] = [round(100 * (b - a) / (h1 - h0), 2) for a, b in zip(c0, c1, strict=True)]
        out["emulator_fds"] = sum(p.num_fds() for p in emu.procs)
        out["machine"] = machine_load()
    finally:
        stop.set()
        results = []
        for p, pipe in zip(workers, pipes, strict=True):
            if pipe.poll(90):
                results.append(pipe.recv())
            p.join(10)
            if p.is_alive():
                p.kill()  # our own child, by PID
    out["clients"] = results
    # Every socket closed again?
    t = time.monotonic()
    after = emu.ledger()["sockets"]
    while after["open"] > 0 and time.monotonic() - t < 15:
        time.sleep(0.25)
        after = emu.ledger()["sockets"]
    out["ledger_sockets_after_close"] = after
    return out


def summarise_runs(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    values = [r[key] for r in runs if r.get(key) is not None]
    if not values:
        return {}
    quiet = [r[key] for r in runs if r.get(key) is not None and not r.get("contended")]
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,
        "median_quiet_runs": statistics.median(quiet) if quiet else None,
        "quiet_runs": len(quiet),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--target", help="measure a running emulator (http://127.0.0.1:PORT) instead of starting one")
    p.add_argument(
        "--only",
        action="append",
        choices=("flow", "handshake", "authorize", "idp", "hold"),
        help="run only these phases (repeatable; default all)",
    )
    p.add_argument(
        "--flows-seconds", type=float, default=10.0, help="measured window per phase and repeat (default 10)"
    )
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each window (default 2)")
    p.add_argument("--concurrency", type=int, default=300, help="users in flight (default 300)")
    p.add_argument("--repeats", type=int, default=3, help="windows per phase; median and spread reported (default 3)")
    p.add_argument("--load-procs", type=int, default=1, help="load worker processes (default 1)")
    p.add_argument("--load-cpus", default="1", help="CPUs of the load workers (default 1; '' = any)")
    p.add_argument("--emulator-cpus", default="0", help="CPUs of the emulator (default 0; '' = any)")
    p.add_argument("--emulator-processes", type=int, default=1, help="emulator --processes (default 1)")
    p.add_argument("--emulator-arg", action="append", default=[], help="extra emulator option (repeatable)")
    p.add_argument(
        "--emulator-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment of the emulator (repeatable), e.g. LP_EMULATOR_FASTLANE=0 for aiohttp only",
    )
    p.add_argument(
        "--hold-sockets", type=int, default=18_000, help=f"sockets to hold (default 18000, max {MAX_SOCKETS})"
    )
    p.add_argument("--hold-seconds", type=float, default=25.0, help="how long to hold them idle (default 25)")
    p.add_argument("--hold-procs", type=int, default=3, help="client processes for the held sockets (default 3)")
    p.add_argument("--hold-ramp-concurrency", type=int, default=100, help="openers per hold process (default 100)")
    p.add_argument("--hold-ramp-timeout", type=float, default=90.0, help="give up opening after this long (default 90)")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each window, wait up to this long for other work on the machine to stop (default 30)",
    )
    p.add_argument(
        "--quiet-threshold",
        type=float,
        default=15.0,
        help="CPU %% (of one core) of other work below which the machine counts as quiet (default 15)",
    )
    p.add_argument("--quick", action="store_true", help="a smoke run that finishes in < 30 s")
    p.add_argument("--out", help="JSON result file (default bench/results/emulator-capacity[-quick].json)")
    args = p.parse_args(argv)
    if args.quick:
        args.flows_seconds = min(args.flows_seconds, 2.0)
        args.warmup = min(args.warmup, 1.0)
        args.repeats = 1
        args.hold_sockets = min(args.hold_sockets, 2000)
        args.hold_seconds = min(args.hold_seconds, 2.0)
        args.hold_procs = 1
        args.quiet_wait = 0.0
    phases = args.only or ["flow", "handshake", "authorize", "idp", "hold"]
    out_path = (
        Path(args.out)
        if args.out
        else ROOT / "bench" / "results" / ("emulator-capacity-quick.json" if args.quick else "emulator-capacity.json")
    )
    started = time.time()

    def _terminate(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminate)
    emu = Emu(args)
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"python": platform.python_version(), "cpus": os.cpu_count(), "machine_before": machine_load()},
        "emulator": {
            "url": emu.url,
            "pid": emu.pid,
            "processes": len(emu.procs),
            "cpus": emu.affinity,
            "env": args.emulator_env,
        },
        "load": {"processes": args.load_procs, "cpus": _cpus(args.load_cpus), "concurrency": args.concurrency},
        "phases": {},
    }
    try:
        for phase in phases:
            if phase == "hold":
                res = run_hold(emu, args)
                report["phases"]["hold"] = res
                print(
                    f"hold: {res.get('opened')} opened in {res.get('ramp_s')} s; ledger open "
                    f"{res.get('ledger_sockets_end', {}).get('open')}; RSS {res.get('emulator_rss_mb_holding')} MB; "
                    f"CPU {res.get('emulator_cpu_pct_holding')} %",
                    file=sys.stderr,
                )
                continue
            runs = []
            for i in range(args.repeats):
                r = run_phase(emu, args, phase, args.flows_seconds, args.concurrency)
                runs.append(r)
                print(
                    f"{phase} #{i + 1}: {r['per_s']}/s  failed {r['failed']}  emulator CPU {r['emulator_cpu_pct']} %  "
                    f"load CPU {r['load_cpu_pct']} %  saturated {r['saturated']}  other work {r['foreign_cpu_pct']} %",
                    file=sys.stderr,
                )
            report["phases"][phase] = {
                "per_s": summarise_runs(runs, "per_s"),
                "requests_per_s": summarise_runs(runs, "requests_per_s"),
                "emulator_cpu_ms_per_op": summarise_runs(runs, "emulator_cpu_ms_per_op"),
                "runs": runs,
            }
    finally:
        emu.stop()
    report["elapsed_s"] = round(time.time() - started, 1)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out_path} ({report['elapsed_s']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
