"""An idle client beside the load (bench/truth.py): one socket, a GetClock every 20 ms, its round trips.

    .venv/bin/python bench/truth_probe.py URL DELAY_S SECONDS OUT.json

It shares nothing with the locust process under test but the emulator and the machine, so its round
trip is what the target, the kernel and waking an idle process cost under that load; the loaded
harness's client time above it is the generator's own.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import client_hold  # noqa: E402

from harness.client import ConsumerSocket  # noqa: E402
from harness.protocol import paths  # noqa: E402
from harness.protocol.messages import MessageType  # noqa: E402

ACCOUNT = "truth"
GAP_S = 0.02


def probe(url: str, delay_s: float, seconds: float) -> dict[str, float]:
    gevent.sleep(delay_s)
    client_hold.ACCOUNT = ACCOUNT
    sock = ConsumerSocket.connect(paths.socket_url(url, ACCOUNT), client_hold.token_for(url), timeout=10, ping_interval=None)
    rtts: list[float] = []
    try:
        until = time.perf_counter() + seconds
        while time.perf_counter() < until:
            started = time.perf_counter()
            sock.request(MessageType.GET_CLOCK, None, timeout=10)
            rtts.append((time.perf_counter() - started) * 1000.0)
            gevent.sleep(GAP_S)
    finally:
        sock.close()
    rtts.sort()
    return {"count": len(rtts), "p50_ms": round(rtts[len(rtts) // 2], 3), "p99_ms": round(rtts[int(0.99 * len(rtts))], 3)}


if __name__ == "__main__":
    url, delay, seconds, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    Path(out).write_text(json.dumps(probe(url, delay, seconds)))
