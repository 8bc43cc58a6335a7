"""How many consumer sockets one gevent process holds, and at what RSS and CPU, on loopback.

    .venv/bin/python bench/client_hold.py --sockets 10000 --ping 5 --hold 30
    .venv/bin/python bench/client_hold.py --sockets 2000 --mode naive      # the obvious way, to compare

Starts its own emulator (or uses ``--target http://127.0.0.1:PORT``), takes one LP token, opens
``--sockets`` sockets with ``--concurrency`` greenlets (the ramp: connections per second), holds
them for ``--hold`` seconds with pings every ``--ping`` seconds, then closes them all. Prints
one JSON object: ramp rate, RSS per socket, CPU share of one core while holding, pongs and
their RTT percentiles, failures by category. Bounded in count (<= 18,000) and time.

``--mode naive``: websocket-client's own ``create_connection`` per socket and one extra
greenlet per socket that sleeps and pings (what a first Locust user usually does).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import collections  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.client import ConsumerSocket, categorize  # noqa: E402
from harness.emulator.launcher import EmulatorProcess  # noqa: E402
from harness.protocol import idp as contract  # noqa: E402
from harness.protocol import paths  # noqa: E402

ACCOUNT = "qa57221676"
MAX_SOCKETS = 18000


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def token_for(base: str) -> str:
    import requests

    with requests.Session() as http:
        http.trust_env = False
        r = http.post(f"{base}{paths.anonymous_authorize_path(ACCOUNT)}", json=contract.authorize_body(), timeout=10)
        r.raise_for_status()
        body = contract.authenticate_body(contract.token_of(r.json()))
        r = http.post(f"{base}{paths.authenticate_path(ACCOUNT)}", json=body, timeout=10)
        r.raise_for_status()
        return contract.token_of(r.json())


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    v = sorted(values)

    def p(q: float) -> float:
        return round(v[min(len(v) - 1, int(q * len(v)))] * 1000, 3)

    return {"count": len(v), "p50_ms": p(0.5), "p90_ms": p(0.9), "p99_ms": p(0.99), "max_ms": round(v[-1] * 1000, 3)}


class Naive:
    """websocket-client used the obvious way: create_connection, a greenlet per socket for pings."""

    def __init__(self, url: str, token: str, ping: float, rtts: list[float]) -> None:
        import websocket

        self.ws = websocket.create_connection(url, header=[f"Authorization: jwt {token}"], timeout=10)
        self.ws.settimeout(None)
        self.rtts = rtts
        self.sent = 0.0
        self.reader = gevent.spawn(self._read)
        self.pinger = gevent.spawn(self._ping, ping)

    def _read(self) -> None:
        import websocket

        try:
            while True:
                op, _ = self.ws.recv_data(control_frame=True)
                if op == websocket.ABNF.OPCODE_PONG:
                    self.rtts.append(time.perf_counter() - self.sent)
                elif op == websocket.ABNF.OPCODE_CLOSE:
                    return
        except Exception:
            return

    def _ping(self, every: float) -> None:
        while True:
            gevent.sleep(every)
            self.sent = time.perf_counter()
            self.ws.ping()

    def close(self) -> None:
        self.pinger.kill()
        self.ws.close()
        self.reader.kill()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sockets", type=int, default=2000)
    ap.add_argument("--ping", type=float, default=5.0, help="ping interval, seconds")
    ap.add_argument("--hold", type=float, default=20.0, help="seconds to hold after the ramp (<= 600)")
    ap.add_argument("--concurrency", type=int, default=50, help="greenlets opening sockets during the ramp")
    ap.add_argument("--mode", choices=("client", "naive"), default="client")
    ap.add_argument("--target", help="base URL of a running emulator (default: start one)")
    ap.add_argument("--emulator-arg", action="append", default=[], help="extra emulator argument (repeatable)")
    args = ap.parse_args(argv)
    n = max(1, min(args.sockets, MAX_SOCKETS))
    hold = max(1.0, min(args.hold, 600.0))

    emu = None
    if args.target:
        base = args.target
    else:
        emu = EmulatorProcess(args.emulator_arg).start()
        base = emu.url
    try:
        token = token_for(base)
        url = paths.socket_url(base, ACCOUNT)
        rtts: list[float] = []
        failures: collections.Counter[str] = collections.Counter()
        sockets: list = []

        def open_one(_: int) -> None:
            try:
                if args.mode == "naive":
                    sockets.append(Naive(url, token, args.ping, rtts))
                else:
                    sockets.append(
                        ConsumerSocket.connect(url, token, timeout=30, ping_interval=args.ping, on_pong=rtts.append)
                    )
            except Exception as exc:  # counted, reported
                failures[categorize(exc)] += 1

        gc.collect()
        rss0, cpu0, t0 = rss_kb(), cpu_s(), time.perf_counter()
        pool = gevent.pool.Pool(args.concurrency)
        for i in range(n):
            pool.spawn(open_one, i)
        pool.join()
        ramp_s = time.perf_counter() - t0
        ramp_cpu = cpu_s() - cpu0
        gevent.sleep(min(args.ping, hold) + 0.5)  # everything has pinged once: steady state
        gc.collect()
        rss1 = rss_kb()
        rtts.clear()
        cpu1, t1 = cpu_s(), time.perf_counter()
        gevent.sleep(hold)
        hold_cpu = cpu_s() - cpu1
        hold_s = time.perf_counter() - t1
        rss2 = rss_kb()
        held = len(sockets)
        alive = sum(1 for s in sockets if getattr(s, "open", True))
        t2 = time.perf_counter()
        pool = gevent.pool.Pool(200)
        for s in sockets:
            pool.spawn(s.close)
        pool.join()
        close_s = time.perf_counter() - t2
        result = {
            "mode": args.mode,
            "sockets_requested": n,
            "sockets_held": held,
            "sockets_open_at_end": alive,
            "ping_interval_s": args.ping,
            "ramp": {"seconds": round(ramp_s, 3), "per_second": round(held / ramp_s, 1) if ramp_s else None,
                     "cpu_s": round(ramp_cpu, 3), "cpu_ms_per_connect": round(1000 * ramp_cpu / max(held, 1), 3)},
            "rss": {"before_kb": rss0, "held_kb": rss1, "after_hold_kb": rss2,
                    "per_socket_kb": round((rss1 - rss0) / max(held, 1), 2)},
            "hold": {"seconds": round(hold_s, 2), "cpu_core_share": round(hold_cpu / hold_s, 4),
                     "pongs": percentiles(rtts), "pongs_per_s": round(len(rtts) / hold_s, 1)},
            "close_seconds": round(close_s, 3),
            "failures": dict(failures),
        }
        if emu is not None:
            ledger = emu.ledger()
            result["emulator"] = {"sockets": ledger.get("sockets"), "pings": ledger.get("pings")}
        print(json.dumps(result, indent=2))
    finally:
        if emu is not None:
            emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
