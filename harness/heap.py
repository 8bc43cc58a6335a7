"""Keep the garbage collector's pauses out of the numbers: freeze what start-up made.

Python's full collection walks every tracked object in one pause of the whole process. Both the
load generator and the emulator are single event loops, so every request in flight during it
is measured that much longer, on either side. Most of what a full collection walks was made at
start-up (modules, functions, classes, Locust's runner, the emulator's agents) and lives as long
as the process: :func:`gc.freeze` moves it out of the collector's sight for good. A process that
then makes no cyclic garbage per session (the client breaks its one cycle: ``framing.detach``)
keeps its full collections to the objects its sessions hold now. Measured with 1,000 held
sessions (``bench/results/truth-2026-12-02.md``): the generator's full collections went from
85-112 ms to 18-34 ms, its loop lag p99 from 130 ms to 23-24 ms.
"""

from __future__ import annotations

import gc
import time
from typing import Any


def freeze_startup() -> int:
    """Collect once, then exempt every object alive now from later collections; how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class Pauses:
    """The collector's pauses in this process, timed by :data:`gc.callbacks` (the load generator's health).

    A pause stops the whole loop, so its length is added to every latency measured across it: the
    report shows the longest, and how many full collections the run had.
    """

    def __init__(self) -> None:
        self._began = 0.0
        self.reset()

    def reset(self) -> None:
        """A new run counts from zero."""
        self.full_collections = 0
        self.total_ms = 0.0
        self.max_ms = 0.0

    def install(self) -> Pauses:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)
        return self

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        pause_ms = (time.perf_counter() - self._began) * 1000.0
        self.full_collections += info.get("generation") == 2
        self.total_ms += pause_ms
        self.max_ms = max(self.max_ms, pause_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "full_collections": self.full_collections,
            "pause_total_ms": round(self.total_ms, 2),
            "pause_max_ms": round(self.max_ms, 2),
        }
