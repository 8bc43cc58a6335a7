"""An idle client beside the load (bench/truth.py): an anonymous authorize on a new connection, then on one socket
GetClock, a conversation's request and its close, 20 ms apart.

    .venv/bin/python bench/truth_probe.py URL DELAY_S SECONDS OUT.json

It shares nothing with the locust process under test but the emulator and the machine, so its round
trip is what the target, the kernel and waking an idle process cost under that load; the loaded
harness's client time above it is the generator's own.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import gevent  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import client_hold  # noqa: E402

from harness.client import ConsumerSocket  # noqa: E402
from harness.protocol import paths  # noqa: E402
from harness.protocol.messages import MessageType, close_conversation_body  # noqa: E402

ACCOUNT = "truth"
GAP_S = 0.02


def probe(url: str, delay_s: float, seconds: float) -> dict[str, dict[str, float]]:
    """Round trips of GetClock and of a conversation's request and close, one after another, 20 ms apart."""
    gevent.sleep(delay_s)
    client_hold.ACCOUNT = ACCOUNT
    sock = ConsumerSocket.connect(paths.socket_url(url, ACCOUNT), client_hold.token_for(url), timeout=10, ping_interval=None)
    rtts: dict[str, list[float]] = {
        "anonymous-authorize": [], "get-clock": [], "request-conversation": [], "close-conversation": [],
    }  # fmt: skip
    where = urlsplit(url)
    authorize = (
        f"POST {paths.anonymous_authorize_path(ACCOUNT)} HTTP/1.1\r\nHost: {where.netloc}\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n"
    ).encode()

    def timed_authorize() -> None:
        """As the harness's token phase does it: a new connection, one POST, its whole answer read."""
        started = time.perf_counter()
        with socket.create_connection((where.hostname, where.port), timeout=10) as http:
            http.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            http.sendall(authorize)
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += http.recv(65536)
            head, _, body = answer.partition(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            while len(body) < length:
                body += http.recv(65536)
        rtts["anonymous-authorize"].append((time.perf_counter() - started) * 1000.0)
        gevent.sleep(GAP_S)

    def timed(name: str, type_: str, body: object = None) -> object:
        started = time.perf_counter()
        response = sock.request(type_, body, timeout=10)
        rtts[name].append((time.perf_counter() - started) * 1000.0)
        gevent.sleep(GAP_S)
        return response

    try:
        until = time.perf_counter() + seconds
        while time.perf_counter() < until:
            timed_authorize()
            timed("get-clock", MessageType.GET_CLOCK)
            opened = timed("request-conversation", MessageType.REQUEST_CONVERSATION)
            conversation = opened.body["conversationId"]  # type: ignore[attr-defined]
            timed("close-conversation", MessageType.UPDATE_CONVERSATION_FIELD, close_conversation_body(conversation))
    finally:
        sock.close()
    return {name: _percentiles(values) for name, values in rtts.items() if values}


def _percentiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"count": len(values), "p50_ms": round(values[len(values) // 2], 3), "p99_ms": round(values[int(0.99 * len(values))], 3)}


if __name__ == "__main__":
    url, delay, seconds, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    Path(out).write_text(json.dumps(probe(url, delay, seconds)))
