"""The harness's own overhead: each step as the client timed it, against the server's time and the wire.

The emulator's ledger keeps the server-side time of every request (from reading it to having written
the answer). A step the client timed at ``c`` whose request the server spent ``s`` on, over a
loopback whose round trip is ``r``, cost the harness ``c - s - r`` of its own: parsing, framing,
greenlet switches, and the server's stack outside its handler. Below saturation that difference
should be small (the target: 1 ms at p50, 5 ms at p99); when it grows, the numbers measure the
generator as well as the target. Pure: a summary and a ledger in, rows out (bench/truth.py and
tests/user/test_truth.py use it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from harness.protocol.messages import MessageType

# step -> the ledger target that answers it (a request the server times end to end)
STEP_TARGETS: Final = {
    "anonymous-authorize": "anonymous-authorize",
    "authenticate": "authenticate",
    "request-conversation": MessageType.REQUEST_CONVERSATION,
    "close-conversation": MessageType.UPDATE_CONVERSATION_FIELD,
    "publish": MessageType.PUBLISH_EVENT,
    "get-clock": MessageType.GET_CLOCK,
}
TARGET_P50_MS: Final = 1.0
TARGET_P99_MS: Final = 5.0


def overhead_rows(summary: Mapping[str, Any], ledger: Mapping[str, Any], rtt: Mapping[str, float]) -> list[dict[str, Any]]:
    """Per step: client p50/p99, server p50/p99, the loopback round trip, and what is left (the overhead).

    ``rtt``: the loopback round trip's ``p50`` and ``p99`` in ms, measured apart from the harness.
    """
    rows = []
    for step, target in STEP_TARGETS.items():
        client = (summary.get("steps") or {}).get(step) or {}
        server = ((ledger.get("endpoints") or {}).get(target) or {}).get("latency_ms") or {}
        if not client.get("count") or not server.get("count"):
            continue
        row: dict[str, Any] = {"step": step, "target": target, "count": client["count"], "server_count": server["count"]}
        for q in ("p50", "p99"):
            c, s = client.get(f"{q}_ms"), server.get(q)
            row[f"client_{q}_ms"], row[f"server_{q}_ms"], row[f"rtt_{q}_ms"] = c, s, rtt[q]
            row[f"overhead_{q}_ms"] = None if c is None or s is None else round(c - s - rtt[q], 3)
        row["within_target"] = (
            row["overhead_p50_ms"] is not None
            and row["overhead_p50_ms"] <= TARGET_P50_MS
            and row["overhead_p99_ms"] is not None
            and row["overhead_p99_ms"] <= TARGET_P99_MS
        )
        rows.append(row)
    return rows
