"""The client in a gevent-monkey-patched process, as under Locust (patched before anything else)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()

    import json, sys
    import gevent, gevent.event
    from harness.client import ConsumerSocket
    from harness.protocol import MessageType
    from tests.client.support import lp_token, ws_url

    base = sys.argv[1]
    token = lp_token(base)
    pong = gevent.event.AsyncResult()
    sockets = [ConsumerSocket.connect(ws_url(base), token, timeout=5, ping_interval=0.05, on_pong=pong.set)
               for _ in range(20)]
    conv = sockets[0].request(MessageType.REQUEST_CONVERSATION)
    clocks = gevent.joinall([gevent.spawn(s.request, MessageType.GET_CLOCK) for s in sockets], raise_error=True)
    rtt = pong.get(timeout=5)
    infos = [s.close() for s in sockets]
    print(json.dumps({"conversation": bool(conv.body.get("conversationId")),
                      "clocks": sum(g.value.ok for g in clocks), "rtt": rtt,
                      "kinds": sorted({i.kind for i in infos})}))
    """
)


def test_flow_in_a_monkey_patched_process(emulator) -> None:
    emu = emulator()
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, emu.url], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["conversation"] is True
    assert result["clocks"] == 20
    assert 0 < result["rtt"] < 1
    assert result["kinds"] == ["clean"]
    ledger = emu.ledger()
    assert ledger["sockets"]["accepted"] == 20
